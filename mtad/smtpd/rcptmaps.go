package smtpd

import (
	"context"
	"fmt"

	"sqlmta/mtad/rewrite"
)

// The address tables' names in "User unknown in … table", and the reply
// code parameter of each class (check_rcpt_maps in Postfix's smtpd_check.c).
var unknownTable = map[rewrite.Class]string{
	rewrite.ClassLocal:   "local recipient",
	rewrite.ClassVirtual: "virtual mailbox",
	rewrite.ClassRelay:   "relay recipient",
}

// checkUnlisted is reject_unlisted_recipient (sender=false) and
// reject_unlisted_sender: the address, as the client gave it, must be
// listed in the recipient table of its class, unless canonical or virtual
// alias maps rewrite it. Each is checked once per command; warn_if_reject
// leaves it unchecked for a later, real check.
func (s *session) checkUnlisted(addr string, sender bool) int {
	if s.cfg.Validate == nil || addr == "" {
		return dunno
	}
	done := &s.chk.rcptChecked
	class, dsn := classRecipient, "5.1.1"
	if sender {
		done, class, dsn = &s.chk.senderChecked, classSender, "5.1.0"
	}
	if *done {
		return dunno
	}
	if s.chk.warnIfReject == 0 {
		*done = true
	}
	qualified := addr
	if s.cfg.Qualify != nil {
		qualified = s.cfg.Qualify(addr)
	}
	v, err := s.cfg.Validate(context.Background(), qualified, sender)
	if err != nil {
		s.logf("warning: %s: recipient table lookup problem for %s: %v", s.queueIDOr(), qualified, err)
		return s.checkRejectf(451, "4.3.0", "<%s>: Temporary lookup failure", addr)
	}
	c := &s.cfg.Codes
	if v.Error != "" {
		edsn, text := dsnSplit(dsn, v.Error)
		code := 550
		if v.Class == rewrite.ClassAlias {
			// An address in a virtual alias domain that no alias matches.
			code = c.UnknownVirtualAlias
			if s.cfg.HideUnknownTable {
				text = "User unknown"
			}
		}
		// Resolving to the error transport is a bounce class error.
		return s.checkReject(errBounce, code, dsnFix(edsn, class), fmt.Sprintf("<%s>: %s rejected: %s", addr, class, text))
	}
	if !v.Unlisted {
		return dunno
	}
	code := c.UnknownLocalRecipient
	switch v.Class {
	case rewrite.ClassVirtual:
		code = c.UnknownVirtualMailbox
	case rewrite.ClassRelay:
		code = c.UnknownRelayRecipient
	}
	suffix := ""
	if !s.cfg.HideUnknownTable {
		suffix = " in " + unknownTable[v.Class] + " table"
	}
	return s.checkReject(errBounce, code, dsn, fmt.Sprintf("<%s>: %s rejected: User unknown%s", addr, class, suffix))
}
