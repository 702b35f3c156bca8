package smtpd

import (
	"context"
	"fmt"
	"time"
)

// VerifyFunc asks address verification about addr: status is one of
// "todo", "ok", "defer", "bounce" (store.Verify*), reason the probe's
// text. It may wait a few seconds for a probe it sent.
type VerifyFunc func(ctx context.Context, addr string) (status, reason string, err error)

// rejectUnverified is reject_unverified_recipient and _sender, as Postfix
// 3.7's reject_unverified_address: a deliverable address passes; an
// undeliverable one gets unverified_*_reject_code ("undeliverable
// address" when that is 5xx, else the 4xx "unverified address" under the
// tempfail action); one not known yet gets unverified_*_defer_code.
func (s *session) rejectUnverified(addr, class string) int {
	dsn := "4.1.1"
	codes := &s.cfg.Codes
	dcode, rcode := codes.UnverifiedRecipientDefer, codes.UnverifiedRecipientReject
	action, alt := s.cfg.UnverifiedRecipientTempfailAction, s.cfg.UnverifiedRecipientReason
	if class == classSender {
		dsn = "4.1.7"
		dcode, rcode = codes.UnverifiedSenderDefer, codes.UnverifiedSenderReject
		action, alt = s.cfg.UnverifiedSenderTempfailAction, s.cfg.UnverifiedSenderReason
	}
	if action == "" {
		action = "defer_if_permit"
	}
	if s.cfg.Verify == nil {
		s.logf("warning: reject_unverified_*: address verification is not configured")
		return s.serverError()
	}
	qualified, _ := s.qualified(addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, why, err := s.cfg.Verify(ctx, qualified)
	if err != nil {
		s.logf("warning: verify service failure: %v", err)
		return s.tempfail(action, 450, dsn, fmt.Sprintf("<%s>: %s rejected: address verification problem", addr, class))
	}
	code := 0
	switch status {
	case "todo", "defer":
		code = dcode
	case "bounce":
		code = rcode
	}
	if code >= 400 && alt != "" {
		why = alt
	}
	if len(why) > 250 {
		why = why[:250]
	}
	switch code / 100 {
	case 4:
		return s.tempfail(action, code, dsn, fmt.Sprintf("<%s>: %s rejected: unverified address: %s", addr, class, why))
	case 5:
		return s.checkReject(0, code, dsn, fmt.Sprintf("<%s>: %s rejected: undeliverable address: %s", addr, class, why))
	}
	return dunno
}
