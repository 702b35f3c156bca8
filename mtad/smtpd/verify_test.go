package smtpd

import (
	"context"
	"errors"
	"testing"
)

// TestRejectUnverified drives reject_unverified_sender and _recipient with
// a fixed verification answer per address (the real service is tested end
// to end against Postfix in cmd/mtad): reply codes, enhanced codes, texts,
// the reason override and the tempfail action.
func TestRejectUnverified(t *testing.T) {
	answers := map[string][3]string{
		"ok@local.test":      {"ok", "250 2.1.5 Ok"},
		"gone@local.test":    {"bounce", "host mx said: 550 5.1.1 no such user (in reply to RCPT TO command)"},
		"later@local.test":   {"defer", "connect to mx[192.0.2.1]:25: Connection refused"},
		"broken@local.test":  {"", "", "error"},
		"s-gone@remote.test": {"bounce", "host mx said: 550 5.1.1 unknown"},
	}
	verify := func(_ context.Context, addr string) (string, string, error) {
		a := answers[addr]
		if a[2] != "" {
			return "", "", errors.New("database down")
		}
		return a[0], a[1], nil
	}
	ts := start(t, func(c *Config) {
		c.Verify = verify
		c.SenderRestrictions = []string{"reject_unverified_sender"}
		c.RecipientRestrictions = []string{"reject_unverified_recipient", "permit_mynetworks", "reject_unauth_destination"}
		c.Codes.UnverifiedSenderReject = 550
		c.UnverifiedRecipientTempfailAction = "defer"
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.example", "250 mx.test")
	c.cmd("MAIL FROM:<s-gone@remote.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<ok@local.test>", "550 5.1.7 <s-gone@remote.test>: Sender address rejected: undeliverable address: host mx said: 550 5.1.1 unknown")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<ok@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<gone@local.test>", "450 4.1.1 <gone@local.test>: Recipient address rejected: unverified address: host mx said: 550 5.1.1 no such user (in reply to RCPT TO command)")
	c.cmd("RCPT TO:<later@local.test>", "450 4.1.1 <later@local.test>: Recipient address rejected: unverified address: connect to mx[192.0.2.1]:25: Connection refused")
	c.cmd("RCPT TO:<broken@local.test>", "450 4.1.1 <broken@local.test>: Recipient address rejected: address verification problem")
	c.cmd("QUIT", "221 2.0.0 Bye")
	ts.log.wait(t, "warning: verify service failure: database down")

	// unverified_recipient_reject_reason replaces the probe's words.
	ts = start(t, func(c *Config) {
		c.Verify = verify
		c.RecipientRestrictions = []string{"reject_unverified_recipient", "permit_mynetworks", "reject_unauth_destination"}
		c.Codes.UnverifiedRecipientReject = 550
		c.UnverifiedRecipientReason = "Address lookup failed"
	})
	c = ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.example", "250 mx.test")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<gone@local.test>", "550 5.1.1 <gone@local.test>: Recipient address rejected: undeliverable address: Address lookup failed")
	c.cmd("QUIT", "221 2.0.0 Bye")
}
