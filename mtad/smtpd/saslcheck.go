package smtpd

import (
	"context"
	"fmt"
	"strings"

	"sqlmta/mtad/rewrite"
)

// The restrictions that look at the SASL login: permit_sasl_authenticated,
// check_sasl_access and the sender-login-mismatch family with
// smtpd_sender_login_maps (smtpd_check.c).

// saslRestriction evaluates one of them; ok is false for other names.
func (s *session) saslRestriction(lname, table, replyName, replyClass string) (st int, ok bool) {
	sender := s.chk.sender
	haveSender := s.chk.haveSender && sender != ""
	switch lname {
	case "permit_sasl_authenticated":
		if s.auth.user != "" {
			return permit, true
		}
		return dunno, true
	case "check_sasl_access":
		// The login name only, no parent or partial keys.
		if s.auth.user == "" {
			return dunno, true
		}
		st, _ := s.checkAccess(table, s.auth.user, true, replyName, replyClass)
		return st, true
	case "reject_sender_login_mismatch":
		if !haveSender {
			return dunno, true
		}
		if st := s.rejectAuthSenderLoginMismatch(sender, false); st != dunno {
			return st, true
		}
		return s.rejectUnauthSenderLoginMismatch(sender), true
	case "reject_authenticated_sender_login_mismatch":
		if !haveSender {
			return dunno, true
		}
		return s.rejectAuthSenderLoginMismatch(sender, false), true
	case "reject_known_sender_login_mismatch":
		if !haveSender {
			return dunno, true
		}
		if s.auth.user != "" {
			return s.rejectAuthSenderLoginMismatch(sender, true), true
		}
		return s.rejectUnauthSenderLoginMismatch(sender), true
	case "reject_unauthenticated_sender_login_mismatch":
		if !haveSender {
			return dunno, true
		}
		return s.rejectUnauthSenderLoginMismatch(sender), true
	}
	return dunno, false
}

// senderOwners looks the sender up in smtpd_sender_login_maps as Postfix
// does: the address in its resolved form, by mail_addr_find's keys. A table
// that fails ends the check with 451.
func (s *session) senderOwners(sender string) (owners string, found bool) {
	if len(s.cfg.senderLogin.Maps) == 0 {
		return "", false
	}
	key := sender
	if s.cfg.Qualify != nil {
		key = s.cfg.Qualify(key)
	}
	key = strings.TrimSuffix(key, ".")
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	owners, _, found, err := rewrite.FindAddr(ctx, &s.cfg.senderLogin, key, s.cfg.RecipientDelimiter, s.cfg.LocalpartLookup)
	if err != nil {
		s.dictRetry(sender, err)
		return "", false
	}
	return owners, found
}

// rejectAuthSenderLoginMismatch: an authenticated client may use a sender
// only if the table lists its login among the sender's owners. With
// allowUnknown a sender the table does not know passes.
func (s *session) rejectAuthSenderLoginMismatch(sender string, allowUnknown bool) int {
	if len(s.cfg.senderLogin.Maps) == 0 || s.auth.user == "" {
		return dunno
	}
	owners, found := s.senderOwners(sender)
	if !found && allowUnknown {
		return dunno
	}
	for _, name := range strings.FieldsFunc(owners, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n' }) {
		if strings.EqualFold(name, s.auth.user) {
			return dunno
		}
	}
	return s.checkReject(errPolicy, 553, "5.7.1", fmt.Sprintf("<%s>: Sender address rejected: not owned by user %s", sender, s.auth.user))
}

// rejectUnauthSenderLoginMismatch: a client that has not authenticated may
// not use a sender that has owners.
func (s *session) rejectUnauthSenderLoginMismatch(sender string) int {
	if len(s.cfg.senderLogin.Maps) == 0 || s.auth.user != "" {
		return dunno
	}
	if _, found := s.senderOwners(sender); !found {
		return dunno
	}
	return s.checkReject(errPolicy, 553, "5.7.1", fmt.Sprintf("<%s>: Sender address rejected: not logged in", sender))
}

// openSenderLoginMaps opens smtpd_sender_login_maps through OpenMap.
func (c *compiled) openSenderLoginMaps() error {
	c.senderLogin = rewrite.Tables{Title: "smtpd_sender_login_maps"}
	for _, spec := range c.SenderLoginMaps {
		if err := c.openMap("smtpd_sender_login_maps", spec); err != nil {
			return err
		}
		c.senderLogin.Maps = append(c.senderLogin.Maps, c.maps[spec])
	}
	return nil
}
