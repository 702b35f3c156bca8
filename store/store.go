// Package store defines the mail queue's storage: one interface that every SQL dialect (store/postgres,
// store/mysql, store/sqlite) implements, and the types that cross it. It is the only layer that speaks SQL;
// store/open picks a dialect from a database_url.
//
// The queue has three tables: queue_message (envelope and metadata), queue_content (the message in chunks of
// at most ChunkSize bytes, so that neither enqueue nor delivery holds a whole message in memory) and
// queue_recipient (one row per recipient, with its state, next attempt time, attempt count, last reason and
// lease). A claimed recipient is 'active' with a lease owner, and both its lease_expires_at and its
// next_attempt_at are set to the lease expiry: an expired lease is simply due again, so a node that dies loses
// nothing and no separate rescuer is needed.
package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ChunkSize bounds one queue_content row. 256 KiB keeps a row well under MariaDB's default
// max_allowed_packet and PostgreSQL's TOAST sweet spot, and a message in a few rows.
const ChunkSize = 256 << 10

// Recipient states, as stored in queue_recipient.state (a CHECK constraint allows exactly these).
const (
	StateQueued   = "queued"
	StateDeferred = "deferred"
	StateActive   = "active"
	StateHold     = "hold"
)

var (
	// ErrNotFound is returned when a queue ID names no message.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicateID is returned by Enqueue when the queue ID is taken; the caller picks a new one.
	ErrDuplicateID = errors.New("store: duplicate queue ID")
)

// Store is the queue storage. Every method is safe for concurrent use; each runs one short transaction
// (or none) and never holds a transaction open across calls.
type Store interface {
	// Enqueue writes message, content (streamed in chunks from m.Content) and recipients in ONE short
	// transaction. It returns only after commit. Recipients start 'queued' with next_attempt_at = now
	// (due at once), or 'hold' when m.Hold. m.Size is overwritten with the number of content bytes read.
	Enqueue(ctx context.Context, m *NewMessage) error
	// RecipientsClaim leases up to p.Limit due recipients to p.Owner for p.Lease, in one short transaction.
	// Two claimers never get the same recipient. Returned rows carry the message fields the qmgr needs,
	// ordered by queue ID, then recipient ID.
	RecipientsClaim(ctx context.Context, p ClaimParams) ([]ClaimedRecipient, error)
	// RecipientsComplete removes delivered (or bounced-and-notified) recipients that owner still holds,
	// then deletes every message left with no recipients (content cascades). Returns the queue IDs of
	// the messages removed (the qmgr logs "ID: removed").
	RecipientsComplete(ctx context.Context, owner string, ids []int64) (removed []string, err error)
	// RecipientsDefer sets state='deferred', attempts+1, last_reason and next_attempt_at, and clears the
	// lease, for rows still held by owner.
	RecipientsDefer(ctx context.Context, owner string, ds []Deferral) error
	// RecipientsRenew extends the lease of rows that owner still holds to until (and makes them due then),
	// so that work claimed by a live node is not taken over while it waits or runs. It returns the IDs
	// still held: a row missing from it was lost to another node.
	RecipientsRenew(ctx context.Context, owner string, ids []int64, until time.Time) (held []int64, err error)
	// RecipientsRelease gives claimed rows back (state back to queued, or deferred when attempted before;
	// due now; lease cleared): the SIGTERM drain.
	RecipientsRelease(ctx context.Context, owner string, ids []int64) error
	// ContentOpen streams a message's content in order, one chunk query at a time: no connection or
	// transaction is held between reads, so a slow delivery does not pin the database.
	ContentOpen(ctx context.Context, queueID string) (io.ReadCloser, error)
	// MessageGet returns one message with its recipients (ordered by ID). ErrNotFound when absent.
	MessageGet(ctx context.Context, queueID string) (*Message, error)
	// NextDue returns the earliest next_attempt_at among non-hold recipients (ok=false if none).
	NextDue(ctx context.Context) (t time.Time, ok bool, err error)
	// MessageDelayWarnedSet sets (or clears) a message's delay-warning mark. changed is true only for the
	// call that flipped it, so of several nodes that see a message due for its warning one sends it; a
	// node whose warning could not be sent clears the mark again. A missing message changes nothing.
	MessageDelayWarnedSet(ctx context.Context, queueID string, warned bool) (changed bool, err error)
	// DeadDestinationSet marks a destination dead until d.Until (inserting its row or replacing it), so
	// that every node defers its mail without trying it.
	DeadDestinationSet(ctx context.Context, d DeadDestination) error
	// DeadDestinationList returns every mark, those whose Until has passed included: a node probes such
	// a destination with one delivery before it trusts it again.
	DeadDestinationList(ctx context.Context) ([]DeadDestination, error)
	// DeadDestinationDelete removes a destination's mark (a delivery there worked); none is no error.
	DeadDestinationDelete(ctx context.Context, transport, nexthop string) error

	// VerifyGet returns addr's address verification entry; found is false when there is none.
	VerifyGet(ctx context.Context, addr string) (e VerifyEntry, found bool, err error)
	// VerifyProbeClaim notes that a probe for addr goes out at now, unless one went out after since
	// (an unknown address gets a 'todo' entry). True for the one caller that is to send it, so that
	// nodes and sessions asking at the same time send one probe.
	VerifyProbeClaim(ctx context.Context, addr string, now, since time.Time) (bool, error)
	// VerifyUpdate stores a probe's outcome for addr.
	VerifyUpdate(ctx context.Context, addr, status, reason string, now time.Time) error
	// Dialect is "postgres", "mysql" or "sqlite".
	Dialect() string
	Close() error
}

// Holder puts messages on hold and releases them (postsuper -h/-H). Every dialect implements it; it is kept
// out of Store until the admin commands settle their needs.
type Holder interface {
	// MessageHold moves a message's recipients to 'hold' (never claimed, never due), except those under a
	// live lease. It returns the number of recipients held; ErrNotFound when no such message.
	MessageHold(ctx context.Context, queueID string) (int, error)
	// MessageRelease moves held recipients back to queued (or deferred when attempted), due now.
	MessageRelease(ctx context.Context, queueID string) (int, error)
}

// NewMessage is what Enqueue writes.
type NewMessage struct {
	QueueID    string // at most 32 characters
	Sender     string // "" is the null sender <>
	Arrival    time.Time
	Size       int64 // content length; Enqueue overwrites it with the bytes it read
	ClientName string
	ClientAddr string
	Helo       string
	Protocol   string
	MessageID  string // Message-ID header value
	BodyType   string // 7BIT, 8BITMIME, BINARYMIME or ""
	SMTPUTF8   bool
	EnvID      string // DSN ENVID
	Ret        string // DSN RET: FULL, HDRS or ""
	// Hold writes every recipient in state 'hold' (a HOLD action): never claimed until MessageRelease.
	Hold bool
	// Filter is the message's content filter, "transport:nexthop" ("" = none): content_filter or FILTER.
	Filter string
	// VerifyProbe: an address verification probe, never delivered; its outcome goes to the verify cache.
	VerifyProbe bool
	// Due is when the recipients are first due (zero: now). cleanup sets it queue_run_delay in the past, so
	// that new mail is claimed before deferred mail that became due less than that long ago, and deferred
	// mail never waits longer than that behind new mail (Postfix serves incoming mail first and scans the
	// deferred queue every queue_run_delay).
	Due        time.Time
	Recipients []NewRecipient
	Content    io.Reader
}

// NewRecipient is one envelope recipient of a NewMessage.
type NewRecipient struct {
	Address string
	Orig    string // address before rewriting
	Notify  string // DSN NOTIFY
	ORCPT   string // DSN ORCPT, e.g. "rfc822;user@example.org"
}

// ClaimParams says who claims, how many, for how long, and what time it is (tests move the clock).
type ClaimParams struct {
	Owner string
	Limit int
	Lease time.Duration
	Now   time.Time // zero means time.Now()
}

// ClaimedRecipient is one leased recipient with the message fields the qmgr needs.
type ClaimedRecipient struct {
	ID         int64
	QueueID    string
	Address    string
	Orig       string
	Notify     string
	ORCPT      string
	Domain     string
	Attempts   int
	LastReason string
	// Message fields.
	Sender    string
	Arrival   time.Time
	Size      int64
	NRcpt     int
	MessageID string
	Filter    string // content filter, "transport:nexthop"; "" = none
	// ExpireForced: postsuper -e/-f marked the message; it is returned to its sender at this attempt.
	ExpireForced bool
	// DelayWarned: the sender was sent its delay warning (delay_warning_time) already.
	DelayWarned bool
	// Flushed: a flush made this attempt (postqueue -f, sendmail -q, ETRN): defer_transports do not hold it.
	Flushed bool
	// TakenOver: the recipient was still being delivered by a node whose lease ran out (it died); that
	// delivery may have happened.
	TakenOver bool
	// VerifyProbe: the message is an address verification probe.
	VerifyProbe bool
}

// DeadDestination is a destination (transport and next hop, Postfix's per-destination queue) that
// failed as a whole: its mail is deferred with Reason ("delivery temporarily suspended: …") and DSN
// until Until.
type DeadDestination struct {
	Transport string
	Nexthop   string
	Until     time.Time
	DSN       string // 4.X.Y of the failure that killed it
	Reason    string
}

// Deferral is one recipient's failed attempt.
type Deferral struct {
	ID          int64
	Reason      string
	NextAttempt time.Time
}

// Message is a stored message without its content.
type Message struct {
	QueueID    string
	Sender     string
	Arrival    time.Time
	Size       int64
	ClientName string
	ClientAddr string
	Helo       string
	Protocol   string
	MessageID  string
	BodyType   string
	SMTPUTF8   bool
	EnvID      string
	Ret        string
	Filter     string // content filter, "transport:nexthop"; "" = none
	NRcpt      int
	CreatedAt  time.Time
	Recipients []Recipient
}

// Recipient is a stored recipient. LeaseExpires is zero when no lease is held.
type Recipient struct {
	ID           int64
	Address      string
	Orig         string
	Notify       string
	ORCPT        string
	Domain       string
	State        string
	Attempts     int
	NextAttempt  time.Time
	LastReason   string
	LeaseOwner   string
	LeaseExpires time.Time
}

// Notifier is a store that can tell idle nodes that mail was enqueued
// (PostgreSQL's LISTEN/NOTIFY). Stores without it are polled.
type Notifier interface {
	// Notifications receives a value after other nodes enqueue, until ctx ends.
	Notifications(ctx context.Context) <-chan struct{}
}

// Backoff is the delay before the next attempt after attempts failures: min doubled per earlier attempt,
// capped at max (attempts=1 → min, 2 → 2·min, …).
func Backoff(attempts int, min, max time.Duration) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := min
	for i := 1; i < attempts; i++ {
		if d >= max || d > max/2 {
			return max
		}
		d *= 2
	}
	if d > max {
		return max
	}
	return d
}

// Domain is the lowercased domain part of an address ("" when it has none), stored per recipient for
// per-destination grouping.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// DBTime is how times go into the database: UTC, truncated to the microseconds every dialect keeps, so a
// value read back compares equal to the one written.
func DBTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// ClaimNow is p.Now, or the current time when unset.
func (p ClaimParams) ClaimNow() time.Time {
	if p.Now.IsZero() {
		return DBTime(time.Now())
	}
	return DBTime(p.Now)
}

// The statuses of an address verification entry (Postfix's DEL_RCPT_STAT_*).
const (
	VerifyTodo   = "todo"   // a probe is on its way
	VerifyOK     = "ok"     // deliverable
	VerifyDefer  = "defer"  // the last probe failed for now
	VerifyBounce = "bounce" // undeliverable
)

// VerifyEntry is one address's verification status, shared by every node (Postfix's address_verify_map).
type VerifyEntry struct {
	Address string
	Status  string
	Reason  string    // the probe's outcome text
	Updated time.Time // when Status was learned
	Probed  time.Time // when the last probe went out
}
