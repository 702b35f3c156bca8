package store

import (
	"context"
	"time"
)

// Postfix's queue names, as mailq, postqueue -j, postsuper and qshape use them. The SQL queue keeps a state
// per recipient, not a directory per message; QueueOf maps the one onto the other.
const (
	QueueIncoming = "incoming"
	QueueActive   = "active"
	QueueDeferred = "deferred"
	QueueHold     = "hold"
)

// Queues are the queue names in the order Postfix's showq scans them (maildrop has no rows here: sendmail's
// submissions wait outside the SQL queue until pickup).
var Queues = []string{QueueActive, QueueIncoming, QueueDeferred, QueueHold}

// QueueOf says which Postfix queue a message with recipients rs is in at now:
//
//   - active, when a delivery holds a live lease on any recipient (Postfix: the message is in the active
//     queue while qmgr works on it; a lease that expired is simply due again and does not count);
//   - hold, when any other recipient is on hold (postsuper -h holds the whole message; a recipient that was
//     being delivered at that moment is left to finish, and must not make the message look deliverable);
//   - deferred, when any recipient was tried before (attempts > 0 or state deferred);
//   - incoming otherwise: never tried, waiting for a qmgr to claim it (Postfix's incoming queue).
func QueueOf(rs []Recipient, now time.Time) string {
	hold, tried := false, false
	for _, r := range rs {
		switch {
		case r.State == StateActive && r.LeaseExpires.After(now):
			return QueueActive
		case r.State == StateHold:
			hold = true
		case r.State == StateDeferred || r.Attempts > 0:
			tried = true
		}
	}
	switch {
	case hold:
		return QueueHold
	case tried:
		return QueueDeferred
	}
	return QueueIncoming
}

// QueuedMessage is a message as the admin commands see it: its envelope, every recipient still queued
// (ordered by ID), its Postfix queue and whether postsuper -e/-f forced its expiry.
type QueuedMessage struct {
	Message
	Queue        string
	ForcedExpire bool
}

// ScanParams select what MessagesScan reads.
type ScanParams struct {
	// Queues, when not empty, keeps only messages in these queues (QueueActive, …).
	Queues []string
	// Page is how many messages one query reads (default 1000).
	Page int
	// Now classifies leases (zero: time.Now()).
	Now time.Time
}

// FlushParams select what RecipientsFlush makes due: everything (both empty), one message, or one
// recipient domain (postqueue -s site).
type FlushParams struct {
	QueueID string
	Site    string
}

// Admin is the queue administration behind mailq, postqueue, postsuper, postcat and qshape. It sees the
// whole database, i.e. every node's queue. Operations on a list of IDs return the IDs they changed, in
// order; an ID that names no message (or a message the operation does not apply to) is skipped, as
// postsuper does. ALL is a scan followed by these calls in batches, so that "ALL deferred" can filter by
// queue and the command can log each message.
type Admin interface {
	// MessagesScan calls fn for each message with its recipients, in queue-ID order, reading p.Page
	// messages per query by keyset pagination: no transaction or cursor stays open between pages, so a
	// listing of a large queue neither loads it whole nor pins the database, and the first message is
	// printed before the last is read. An error from fn stops the scan and is returned.
	MessagesScan(ctx context.Context, p ScanParams, fn func(*QueuedMessage) error) error
	// MessagesDelete removes messages with their content and recipients (postsuper -d), including
	// recipients under a live lease: as in Postfix, a running delivery may still complete, but its
	// completion then finds nothing to update and the message is not retried.
	MessagesDelete(ctx context.Context, ids []string) ([]string, error)
	// MessagesHold puts every recipient not under a live lease on hold (postsuper -h); it returns the
	// messages that had such a recipient.
	MessagesHold(ctx context.Context, ids []string) ([]string, error)
	// MessagesRelease moves held recipients back to deferred (queued when never tried), due now (-H).
	MessagesRelease(ctx context.Context, ids []string) ([]string, error)
	// MessagesRequeue (postsuper -r) makes every recipient not under a live lease new again: queued,
	// attempts and reason cleared, due now, released from hold; the forced expiry is cleared too. The
	// arrival time, hence the queue lifetime, is kept. Unlike Postfix the message keeps its queue ID and is
	// not rewritten again.
	MessagesRequeue(ctx context.Context, ids []string) ([]string, error)
	// MessagesExpire (postsuper -e, and -f with release) marks messages for return to the sender at
	// their next delivery attempt and makes their waiting recipients due now. It returns the messages
	// newly marked and, with release, those released from hold.
	MessagesExpire(ctx context.Context, ids []string, release bool) (expired, released []string, err error)
	// RecipientsFlush makes waiting (queued or deferred, not held, not leased) recipients due now and
	// wakes the nodes where the database can (PostgreSQL's NOTIFY). It returns how many it changed.
	RecipientsFlush(ctx context.Context, p FlushParams) (int, error)
}

// AdminStore is a store that offers Admin (every dialect does).
type AdminStore interface {
	Admin() Admin
}

// Wanted reports whether a message in queue q passes the filter qs (empty: all).
func (p ScanParams) Wanted(q string) bool {
	if len(p.Queues) == 0 {
		return true
	}
	for _, x := range p.Queues {
		if x == q {
			return true
		}
	}
	return false
}

// PageSize is p.Page or its default.
func (p ScanParams) PageSize() int {
	if p.Page <= 0 {
		return 1000
	}
	return p.Page
}

// ScanNow is p.Now, or the current time when unset.
func (p ScanParams) ScanNow() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}
