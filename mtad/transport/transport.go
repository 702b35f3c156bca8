// Package transport defines the seam between the queue manager and the
// delivery agents (smtp, maildir, …): one Delivery in, one Result per
// recipient out. The qmgr writes the Postfix log line from each Result, so a
// Result carries everything that line needs (relay, dsn, text, delays).
package transport

import (
	"context"
	"io"
	"time"
)

// Recipient is one recipient of a Delivery.
type Recipient struct {
	ID      int64  // the store's recipient row, echoed in Result.RecipientID
	Address string // envelope recipient to deliver to
	Orig    string // original recipient (orig_to, X-Original-To); "" = same as Address
	Notify  string // DSN NOTIFY, e.g. "FAILURE,DELAY"; "" if none
	ORCPT   string // DSN ORCPT, e.g. "rfc822;bob@example.com"; "" if none
	// TakenOver: a node died while delivering this recipient, so the mail
	// may be there already. Transports that can look (Maildir) do, rather
	// than deliver a second copy.
	TakenOver bool
}

// Delivery is one delivery request: one message, recipients that share the
// same transport and nexthop.
type Delivery struct {
	QueueID    string
	Sender     string // "" = null sender
	Recipients []Recipient
	// Nexthop as resolved. smtp: "[host]:port", "[host]", "host:port" or
	// "domain"; maildir: unused.
	Nexthop  string
	Size     int64
	Arrival  time.Time
	SMTPUTF8 bool
	BodyType string // "", "7BIT", "8BITMIME"
	EnvID    string // DSN ENVID
	Ret      string // DSN RET: "", "FULL", "HDRS"
	// Open streams the stored content (CRLF line ends), header first. It may
	// be called more than once (one per delivery attempt or mailbox).
	Open func(ctx context.Context) (io.ReadCloser, error)
	// VerifyOnly marks an address verification probe: find out whether
	// each recipient would be delivered (Sent), refused (Bounced) or not
	// known yet (Deferred), and deliver nothing. Only transports that
	// implement Verifier get such a request.
	VerifyOnly bool
}

// Verifier is implemented by transports that handle VerifyOnly requests
// (smtp and lmtp stop after RCPT TO, virtual looks the mailbox up). The
// qmgr answers a probe for any other transport as deliverable itself,
// without calling it, so that a probe is never delivered.
type Verifier interface {
	Verifies()
}

// Status is the outcome for one recipient.
type Status int

const (
	Sent     Status = iota // delivered; remove the recipient
	Deferred               // temporary failure; retry later
	Bounced                // permanent failure; return to sender
)

// String is the word the log line uses after "status=".
func (s Status) String() string {
	switch s {
	case Sent:
		return "sent"
	case Deferred:
		return "deferred"
	case Bounced:
		return "bounced"
	}
	return "unknown"
}

// LogWord is the word after "status=" in a delivery agent's log line; an
// address verification probe's outcome is deliverable or undeliverable, as
// Postfix logs it.
func (s Status) LogWord(verifyOnly bool) string {
	if verifyOnly {
		switch s {
		case Sent:
			return "deliverable"
		case Bounced:
			return "undeliverable"
		}
	}
	return s.String()
}

// Result is the outcome of a Delivery for one recipient.
type Result struct {
	RecipientID int64
	Status      Status
	DSN         string // RFC 3463 code, e.g. "2.0.0", "4.4.1", "5.1.1"
	// Text is what goes in the log's parentheses and into the deferral
	// reason or bounce, worded as Postfix words it.
	Text string
	// Relay is "host[ip]:port" for smtp (when a session existed), "none"
	// when no connection was made, or the transport's name ("virtual",
	// "local").
	Relay string
	// ConnUse is how many deliveries this connection has carried, this one
	// included (1 on a fresh connection); 0 when there was no connection.
	// The log shows ", conn_use=N" only when N > 1, as Postfix does.
	ConnUse   int
	ConnSetup time.Duration // delays "c": DNS, connect, greeting, EHLO, TLS
	Transmit  time.Duration // delays "d": the transaction itself
	// Logged: the transport wrote this recipient's log lines itself (local
	// logs one per address an alias or .forward expanded into), so the qmgr
	// writes none.
	Logged bool
}

// Transport delivers messages.
type Transport interface {
	// Deliver returns exactly one Result per recipient, in the order of
	// d.Recipients. It never returns early without results: failures are
	// Results too.
	Deliver(ctx context.Context, d *Delivery) []Result
}

// FailAll returns the same outcome for every recipient of d, for failures
// that happen before any per-recipient work (DNS, connect, a bad nexthop).
func FailAll(d *Delivery, st Status, dsn, text, relay string, setup time.Duration) []Result {
	rs := make([]Result, len(d.Recipients))
	for i, r := range d.Recipients {
		rs[i] = Result{RecipientID: r.ID, Status: st, DSN: dsn, Text: text, Relay: relay, ConnSetup: setup}
	}
	return rs
}

// StatusForDSN maps an RFC 3463 code to a Status by its class digit:
// 2 → Sent, 4 → Deferred, anything else → Bounced.
func StatusForDSN(dsn string) Status {
	if dsn == "" {
		return Bounced
	}
	switch dsn[0] {
	case '2':
		return Sent
	case '4':
		return Deferred
	}
	return Bounced
}
