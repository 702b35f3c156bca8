// Package postgres is the queue store on PostgreSQL, through a pgx connection pool. The claim is one
// statement (FOR UPDATE SKIP LOCKED + UPDATE … RETURNING), and a small message is enqueued in one round trip:
// a pgx batch runs as one implicit transaction.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"sqlmta/store"
	"sqlmta/store/internal/sqlq"
)

// Store is the PostgreSQL queue store.
type Store struct {
	pool *pgxpool.Pool
	// lastNotify is when this node last sent a wake-up (unix nanoseconds):
	// NOTIFY serialises committing transactions, so a storm sends one per
	// notifyEvery, not one per message.
	lastNotify atomic.Int64
}

// notifyChannel is the LISTEN/NOTIFY channel that wakes idle nodes.
const notifyChannel = "sqlmta_queue"

// notifyEvery bounds how often one node wakes the others.
const notifyEvery = 20 * time.Millisecond

// wantNotify reports whether this enqueue should carry a wake-up.
func (s *Store) wantNotify() bool {
	now := time.Now().UnixNano()
	last := s.lastNotify.Load()
	return now-last >= int64(notifyEvery) && s.lastNotify.CompareAndSwap(last, now)
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Holder = (*Store)(nil)
)

// Open connects to databaseURL (postgres:// or postgresql://, pgx pool parameters allowed). It does not
// migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Pool exposes the pool to tests and to the LISTEN/NOTIFY wake-up.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func (s *Store) Dialect() string { return "postgres" }

func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func (s *Store) Enqueue(ctx context.Context, m *store.NewMessage) error {
	rcpt := recipientArrays(m.Recipients)
	now := store.DBTime(time.Now())
	due := now
	if !m.Due.IsZero() {
		due = store.DBTime(m.Due)
	}
	buf := make([]byte, store.ChunkSize)
	var n int
	var eof = true
	if m.Content != nil {
		var err error
		n, eof, err = sqlq.ReadChunk(m.Content, buf)
		if err != nil {
			return fmt.Errorf("postgres: enqueue %s: reading content: %w", m.QueueID, err)
		}
	}
	if eof {
		// The common case: the whole message fits one chunk; one batch, one round trip, one commit.
		m.Size = int64(n)
		b := &pgx.Batch{}
		b.Queue(qInsertMessage, messageArgs(m)...)
		if n > 0 {
			b.Queue(qInsertContent, m.QueueID, 0, buf[:n])
		}
		b.Queue(qInsertRecipients, m.QueueID, rcpt[0], rcpt[1], rcpt[2], rcpt[3], rcpt[4], due, initialState(m))
		if s.wantNotify() {
			b.Queue(qNotify, notifyChannel) // delivered at commit, with the message
		}
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return enqueueErr(m.QueueID, err)
		}
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return enqueueErr(m.QueueID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The size is known only at the end: 0 now, the real one just before commit.
	m.Size = 0
	if _, err := tx.Exec(ctx, qInsertMessage, messageArgs(m)...); err != nil {
		return enqueueErr(m.QueueID, err)
	}
	size := int64(0)
	for seq := 0; ; seq++ {
		if _, err := tx.Exec(ctx, qInsertContent, m.QueueID, seq, buf[:n]); err != nil {
			return enqueueErr(m.QueueID, err)
		}
		size += int64(n)
		if eof {
			break
		}
		n, eof, err = sqlq.ReadChunk(m.Content, buf)
		if err != nil {
			return fmt.Errorf("postgres: enqueue %s: reading content: %w", m.QueueID, err)
		}
		if n == 0 && eof {
			break
		}
	}
	m.Size = size
	if _, err := tx.Exec(ctx, qUpdateSize, m.QueueID, size); err != nil {
		return enqueueErr(m.QueueID, err)
	}
	if _, err := tx.Exec(ctx, qInsertRecipients, m.QueueID, rcpt[0], rcpt[1], rcpt[2], rcpt[3], rcpt[4], due, initialState(m)); err != nil {
		return enqueueErr(m.QueueID, err)
	}
	if s.wantNotify() {
		if _, err := tx.Exec(ctx, qNotify, notifyChannel); err != nil {
			return enqueueErr(m.QueueID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return enqueueErr(m.QueueID, err)
	}
	return nil
}

func messageArgs(m *store.NewMessage) []any {
	return []any{m.QueueID, m.Sender, store.DBTime(m.Arrival), m.Size, m.ClientName, m.ClientAddr, m.Helo,
		m.Protocol, m.MessageID, m.BodyType, m.SMTPUTF8, m.EnvID, m.Ret, len(m.Recipients), m.Filter, m.VerifyProbe}
}

// initialState is where a new message's recipients start.
func initialState(m *store.NewMessage) string {
	if m.Hold {
		return store.StateHold
	}
	return store.StateQueued
}

// recipientArrays turns recipients into the column arrays qInsertRecipients unnests.
func recipientArrays(rs []store.NewRecipient) [5][]string {
	var a [5][]string
	for i := range a {
		a[i] = make([]string, len(rs))
	}
	for i, r := range rs {
		a[0][i], a[1][i], a[2][i], a[3][i], a[4][i] = r.Address, r.Orig, r.Notify, r.ORCPT, store.Domain(r.Address)
	}
	return a
}

func enqueueErr(id string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.TableName == "queue_message" {
		return fmt.Errorf("postgres: enqueue %s: %w", id, store.ErrDuplicateID)
	}
	return fmt.Errorf("postgres: enqueue %s: %w", id, err)
}

func (s *Store) RecipientsClaim(ctx context.Context, p store.ClaimParams) ([]store.ClaimedRecipient, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	now := p.ClaimNow()
	rows, err := s.pool.Query(ctx, qClaim, now, p.Limit, p.Owner, now.Add(p.Lease))
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ClaimedRecipient, error) {
		var c store.ClaimedRecipient
		err := row.Scan(&c.ID, &c.QueueID, &c.Address, &c.Orig, &c.Notify, &c.ORCPT, &c.Domain, &c.Attempts,
			&c.LastReason, &c.Sender, &c.Arrival, &c.Size, &c.NRcpt, &c.MessageID, &c.Filter, &c.ExpireForced,
			&c.DelayWarned, &c.Flushed, &c.TakenOver, &c.VerifyProbe)
		c.Arrival = c.Arrival.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	return out, nil
}

func (s *Store) MessageDelayWarnedSet(ctx context.Context, queueID string, warned bool) (bool, error) {
	tag, err := s.pool.Exec(ctx, qDelayWarnedSet, queueID, warned)
	if err != nil {
		return false, fmt.Errorf("postgres: %s: delay warning mark: %w", queueID, err)
	}
	return tag.RowsAffected() == 1, nil
}

func (s *Store) RecipientsComplete(ctx context.Context, owner string, ids []int64) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	b.Queue(qCompleteLock, ids, owner)
	b.Queue(qComplete, ids, owner)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("postgres: complete: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres: complete: %w", err)
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: complete: %w", err)
	}
	// Close reads the final Sync: the implicit transaction has committed only once it returns.
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: complete: %w", err)
	}
	return removed, nil
}

func (s *Store) RecipientsDefer(ctx context.Context, owner string, ds []store.Deferral) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]int64, len(ds))
	reasons := make([]string, len(ds))
	next := make([]time.Time, len(ds))
	for i, d := range ds {
		ids[i], reasons[i], next[i] = d.ID, d.Reason, store.DBTime(d.NextAttempt)
	}
	if _, err := s.pool.Exec(ctx, qDefer, owner, ids, reasons, next); err != nil {
		return fmt.Errorf("postgres: defer: %w", err)
	}
	return nil
}

func (s *Store) RecipientsRenew(ctx context.Context, owner string, ids []int64, until time.Time) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qRenew, owner, ids, store.DBTime(until))
	if err != nil {
		return nil, fmt.Errorf("postgres: renew: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: renew: %w", err)
	}
	return held, nil
}

func (s *Store) RecipientsRelease(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, qRelease, owner, ids, store.DBTime(time.Now())); err != nil {
		return fmt.Errorf("postgres: release: %w", err)
	}
	return nil
}

func (s *Store) ContentOpen(ctx context.Context, queueID string) (io.ReadCloser, error) {
	var n int
	if err := s.pool.QueryRow(ctx, qContentChunks, queueID).Scan(&n); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: content %s: %w", queueID, store.ErrNotFound)
		}
		return nil, fmt.Errorf("postgres: content %s: %w", queueID, err)
	}
	return sqlq.NewContentReader(ctx, queueID, n, func(ctx context.Context, seq int) ([]byte, bool, error) {
		var data []byte
		err := s.pool.QueryRow(ctx, qContentChunk, queueID, seq).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, nil
		}
		return data, err == nil, err
	}), nil
}

func (s *Store) MessageGet(ctx context.Context, queueID string) (*store.Message, error) {
	b := &pgx.Batch{}
	b.Queue(qMessageGet, queueID)
	b.Queue(qMessageRecipients, queueID)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var m store.Message
	err := br.QueryRow().Scan(&m.QueueID, &m.Sender, &m.Arrival, &m.Size, &m.ClientName, &m.ClientAddr, &m.Helo,
		&m.Protocol, &m.MessageID, &m.BodyType, &m.SMTPUTF8, &m.EnvID, &m.Ret, &m.NRcpt, &m.CreatedAt, &m.Filter)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: message %s: %w", queueID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: message %s: %w", queueID, err)
	}
	m.Arrival, m.CreatedAt = m.Arrival.UTC(), m.CreatedAt.UTC()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres: message %s: %w", queueID, err)
	}
	m.Recipients, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Recipient, error) {
		var r store.Recipient
		var owner *string
		var expires *time.Time
		err := row.Scan(&r.ID, &r.Address, &r.Orig, &r.Notify, &r.ORCPT, &r.Domain, &r.State, &r.Attempts,
			&r.NextAttempt, &r.LastReason, &owner, &expires)
		r.NextAttempt = r.NextAttempt.UTC()
		if owner != nil {
			r.LeaseOwner = *owner
		}
		if expires != nil {
			r.LeaseExpires = expires.UTC()
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: message %s: %w", queueID, err)
	}
	return &m, nil
}

func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	var t *time.Time
	if err := s.pool.QueryRow(ctx, qNextDue).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next due: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return t.UTC(), true, nil
}

func (s *Store) MessageHold(ctx context.Context, queueID string) (int, error) {
	return s.holdRelease(ctx, qHold, queueID)
}

func (s *Store) MessageRelease(ctx context.Context, queueID string) (int, error) {
	return s.holdRelease(ctx, qRelease1, queueID)
}

func (s *Store) holdRelease(ctx context.Context, q, queueID string) (int, error) {
	tag, err := s.pool.Exec(ctx, q, queueID, store.DBTime(time.Now()))
	if err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", queueID, err)
	}
	if tag.RowsAffected() == 0 {
		var ok bool
		if err := s.pool.QueryRow(ctx, qMessageExists, queueID).Scan(&ok); err != nil {
			return 0, fmt.Errorf("postgres: %s: %w", queueID, err)
		}
		if !ok {
			return 0, fmt.Errorf("postgres: %s: %w", queueID, store.ErrNotFound)
		}
	}
	return int(tag.RowsAffected()), nil
}

// Notifications returns a channel that receives a value whenever some node
// enqueued mail (LISTEN on one pooled connection, held until ctx ends; the
// channel is closed then). A
// lost connection is re-established; wake-ups sent meanwhile are missed,
// which the qmgr's poll interval covers.
func (s *Store) Notifications(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			err := s.listen(ctx, ch)
			if ctx.Err() != nil {
				return
			}
			_ = err // the poll interval covers the gap; try again shortly
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return ch
}

func (s *Store) listen(ctx context.Context, ch chan<- struct{}) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection carries a LISTEN: it must not go back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
