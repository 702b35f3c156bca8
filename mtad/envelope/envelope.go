// Package envelope holds the envelope of one message as it moves from smtpd
// (or pickup) through cleanup into the store.
package envelope

import "time"

// Envelope is what the receiving side knows of a message besides its content.
type Envelope struct {
	QueueID    string // assigned by smtpd when the first recipient is accepted
	Sender     string // "" is the null sender <>
	Recipients []Recipient
	Arrival    time.Time // when MAIL FROM was accepted

	ClientName string // verified client host name, or "unknown"
	ClientAddr string // client IP address, without brackets
	Helo       string // HELO/EHLO argument, "" if none
	Protocol   string // "SMTP" or "ESMTP"
	TLS        bool   // received over TLS: the Received header says ESMTPS
	SASLUser   string // the client's SASL login, "" if none (ESMTPA)
	SASLHeader bool   // smtpd_sasl_authenticated_header: name SASLUser in Received
	// UID is the submitting user's uid for mail from the maildrop (the
	// file's owner), for pickup's "Received: … (Postfix, from userid N)";
	// "" for everything else.
	UID string

	BodyType string // "", "7BIT" or "8BITMIME" from MAIL FROM BODY=
	SMTPUTF8 bool   // MAIL FROM SMTPUTF8
	EnvID    string // DSN ENVID, "" if none
	Ret      string // DSN RET: "", "FULL" or "HDRS"

	// Actions that smtpd's access maps asked for (reference §3); cleanup
	// and qmgr carry them out.
	Hold     bool     // HOLD: put the message on hold
	Discard  bool     // DISCARD: accept and silently drop
	Redirect string   // REDIRECT user@domain: replaces every recipient (last one wins)
	Filter   string   // FILTER transport:destination: overrides content_filter (last one wins)
	Bcc      []string // BCC user@domain: extra recipients
	Prepend  []string // PREPEND header: value, in the order they were triggered

	// Internal marks mail the system made or forwards itself (bounces,
	// local forwarding): it gets no automatic BCC (always_bcc,
	// sender_bcc_maps, recipient_bcc_maps), which could loop.
	Internal bool
	// VerifyProbe marks an address verification probe: queued, routed and
	// tried like mail, never delivered.
	VerifyProbe bool
}

// Recipient is one envelope recipient.
type Recipient struct {
	Address string // as accepted (after smtpd's own rewriting, if any)
	Orig    string // original recipient as the client gave it
	Notify  string // DSN NOTIFY, e.g. "FAILURE,DELAY"; "" if none
	ORCPT   string // DSN ORCPT as given, e.g. "rfc822;bob@example.com"; "" if none
}
