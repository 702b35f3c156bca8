// Package sqldb is the queue store over database/sql, shared by the MySQL/MariaDB and SQLite dialects: both
// use "?" placeholders. MariaDB and MySQL lack UPDATE … RETURNING, so their claim selects due IDs FOR UPDATE
// SKIP LOCKED, leases them and fetches them in one transaction; SQLite, with its single writer, claims in
// one UPDATE … RETURNING. Each dialect package supplies
// its SQL (Queries), how it writes times, and how it reports a duplicate key; no SQL text lives here.
package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"sqlmta/store"
	"sqlmta/store/internal/sqlq"
)

// Queries is one dialect's SQL. Entries with %s take an IN list ("?,?,…") or, for Defer, a derived table
// of rows built from DeferRow.
type Queries struct {
	InsertMessage    string // 17 args: id … nrcpt, created_at, content_filter, verify_probe
	InsertContent    string // message_id, seq, data
	UpdateSize       string // size, id
	InsertRecipients string // prefix; followed by RecipientRow joined by ","
	RecipientRow     string // message_id, address, orig, notify, orcpt, domain, next_attempt_at, state
	// ClaimReturning, when set, claims in one statement (SQLite's UPDATE … RETURNING):
	// owner, expires, expires, now, limit → claimed rows. Otherwise the three below run in one transaction.
	ClaimReturning string
	ClaimSelect    string // now, limit → id
	ClaimUpdate    string // owner, expires, expires, ids…
	ClaimFetch     string // ids… → claimed rows
	CompleteLock   string // ids…, owner → message ids (locked)
	CompleteDelete string // ids…, owner
	CompleteEmpty  string // message ids… → ids of messages with no recipients left
	DeleteMessages string // message ids…
	Defer          string // rows…, owner
	DeferRow       string // id, reason, next_at
	DeferBatch     int    // rows per Defer statement
	Release        string // now, ids…, owner
	Renew          string // until, until, ids…, owner
	RenewHeld      string // ids…, owner → ids still held
	ContentChunks  string // id → count, no row when the message is absent
	ContentChunk   string // id, seq → data
	MessageGet     string // id
	MessageRcpts   string // id
	NextDue        string
	Hold           string // now, id
	Unhold         string // now, id
	MessageExists  string // id → any row
	DelayWarnedSet string // warned, id, warned: changes the mark only where it differs
}

// Dialect is what differs between the database/sql dialects besides their SQL.
type Dialect struct {
	Name        string
	Q           Queries
	Dead        DeadQueries
	Verify      VerifyQueries
	Time        func(time.Time) any // how a time is written (MySQL: time.Time; SQLite: µs since epoch)
	IsDuplicate func(error) bool    // primary key violation
	IsRetryable func(error) bool    // the transaction was rolled back and may simply run again (deadlock); may be nil
	BatchSize   int                 // IDs per IN list
}

// Store implements store.Store over database/sql. Writes go through w, reads through r; they may be the
// same pool (MySQL) or two (SQLite: one writer connection, several readers).
type Store struct {
	d Dialect
	w *sql.DB
	r *sql.DB
}

// New returns a store over w (writes) and r (reads). Close closes both.
func New(d Dialect, w, r *sql.DB) *Store {
	return &Store{d: d, w: w, r: r}
}

// DB returns the write pool (tests, admin commands).
func (s *Store) DB() *sql.DB { return s.w }

func (s *Store) Dialect() string { return s.d.Name }

func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		if err2 := s.r.Close(); err == nil {
			err = err2
		}
	}
	return err
}

func (s *Store) errf(format string, args ...any) error {
	return fmt.Errorf(s.d.Name+": "+format, args...)
}

func (s *Store) in(q string, n int) string { return fmt.Sprintf(q, sqlq.Placeholders(n)) }

// tx runs fn in a write transaction and commits.
// tx runs fn in a transaction, and runs it again (up to 10 times, with a
// short random pause) when the database rolled it back as a deadlock victim.
// fn must therefore only touch the database and its own results.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	for try := 1; ; try++ {
		err := s.tx1(ctx, fn)
		if err == nil || s.d.IsRetryable == nil || !s.d.IsRetryable(err) || try == 10 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(rand.IntN(5*try)+1) * time.Millisecond):
		}
	}
}

func (s *Store) tx1(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) Enqueue(ctx context.Context, m *store.NewMessage) error {
	now := store.DBTime(time.Now())
	buf := make([]byte, store.ChunkSize)
	// tx1: no second run, since the content is a stream read once; a failure
	// answers 451 and the client sends again.
	err := s.tx1(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.Q.InsertMessage, m.QueueID, m.Sender, s.d.Time(m.Arrival), 0,
			m.ClientName, m.ClientAddr, m.Helo, m.Protocol, m.MessageID, m.BodyType, m.SMTPUTF8, m.EnvID, m.Ret,
			len(m.Recipients), s.d.Time(now), m.Filter, m.VerifyProbe)
		if err != nil {
			return err
		}
		var size int64
		if m.Content != nil {
			for seq := 0; ; seq++ {
				n, eof, err := sqlq.ReadChunk(m.Content, buf)
				if err != nil {
					return fmt.Errorf("reading content: %w", err)
				}
				if n > 0 {
					if _, err := tx.ExecContext(ctx, s.d.Q.InsertContent, m.QueueID, seq, buf[:n]); err != nil {
						return err
					}
					size += int64(n)
				}
				if eof {
					break
				}
			}
		}
		m.Size = size
		if size > 0 {
			if _, err := tx.ExecContext(ctx, s.d.Q.UpdateSize, size, m.QueueID); err != nil {
				return err
			}
		}
		due := now
		if !m.Due.IsZero() {
			due = store.DBTime(m.Due)
		}
		state := store.StateQueued
		if m.Hold {
			state = store.StateHold
		}
		for _, batch := range sqlq.Batches(m.Recipients, s.d.BatchSize/8) {
			rows := make([]string, len(batch))
			args := make([]any, 0, 8*len(batch))
			for i, r := range batch {
				rows[i] = s.d.Q.RecipientRow
				args = append(args, m.QueueID, r.Address, r.Orig, r.Notify, r.ORCPT, store.Domain(r.Address), s.d.Time(due), state)
			}
			if _, err := tx.ExecContext(ctx, s.d.Q.InsertRecipients+strings.Join(rows, ","), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if s.d.IsDuplicate(err) {
			return s.errf("enqueue %s: %w", m.QueueID, store.ErrDuplicateID)
		}
		return s.errf("enqueue %s: %w", m.QueueID, err)
	}
	return nil
}

func (s *Store) RecipientsClaim(ctx context.Context, p store.ClaimParams) ([]store.ClaimedRecipient, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	now := p.ClaimNow()
	exp := now.Add(p.Lease)
	var out []store.ClaimedRecipient
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0] // a run again after a deadlock starts afresh
		var rows *sql.Rows
		var err error
		if s.d.Q.ClaimReturning != "" {
			rows, err = tx.QueryContext(ctx, s.d.Q.ClaimReturning, p.Owner, s.d.Time(exp), s.d.Time(exp), s.d.Time(now), p.Limit)
		} else {
			var ids []int64
			ids, err = queryIDs[int64](ctx, tx, s.d.Q.ClaimSelect, s.d.Time(now), p.Limit)
			if err != nil || len(ids) == 0 {
				return err
			}
			args := append([]any{p.Owner, s.d.Time(exp), s.d.Time(exp)}, sqlq.Args(ids)...)
			if _, err := tx.ExecContext(ctx, s.in(s.d.Q.ClaimUpdate, len(ids)), args...); err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, s.in(s.d.Q.ClaimFetch, len(ids)), sqlq.Args(ids)...)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c store.ClaimedRecipient
			var arrival dbTime
			if err := rows.Scan(&c.ID, &c.QueueID, &c.Address, &c.Orig, &c.Notify, &c.ORCPT, &c.Domain, &c.Attempts,
				&c.LastReason, &c.Sender, &arrival, &c.Size, &c.NRcpt, &c.MessageID, &c.Filter, &c.ExpireForced,
				&c.DelayWarned, &c.Flushed, &c.TakenOver, &c.VerifyProbe); err != nil {
				return err
			}
			c.Arrival = arrival.t
			out = append(out, c)
		}
		return rows.Err()
	})
	// RETURNING hands rows back in no set order; callers get them by message.
	slices.SortFunc(out, func(a, b store.ClaimedRecipient) int {
		if c := strings.Compare(a.QueueID, b.QueueID); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if err != nil {
		return nil, s.errf("claim: %w", err)
	}
	return out, nil
}

func (s *Store) RecipientsComplete(ctx context.Context, owner string, ids []int64) ([]string, error) {
	var removed []string
	for _, batch := range sqlq.Batches(ids, s.d.BatchSize) {
		var empty []string
		err := s.tx(ctx, func(tx *sql.Tx) error {
			empty = nil
			args := append(sqlq.Args(batch), owner)
			// Lock the messages first, in ID order: two nodes finishing a message's last recipients run one
			// after the other, and the second sees that nothing is left.
			msgs, err := queryIDs[string](ctx, tx, s.in(s.d.Q.CompleteLock, len(batch)), args...)
			if err != nil || len(msgs) == 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.in(s.d.Q.CompleteDelete, len(batch)), args...); err != nil {
				return err
			}
			empty, err = queryIDs[string](ctx, tx, s.in(s.d.Q.CompleteEmpty, len(msgs)), sqlq.Args(msgs)...)
			if err != nil || len(empty) == 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, s.in(s.d.Q.DeleteMessages, len(empty)), sqlq.Args(empty)...)
			return err
		})
		if err != nil {
			return removed, s.errf("complete: %w", err)
		}
		removed = append(removed, empty...)
	}
	return removed, nil
}

func (s *Store) RecipientsDefer(ctx context.Context, owner string, ds []store.Deferral) error {
	for _, batch := range sqlq.Batches(ds, s.d.Q.DeferBatch) {
		rows := make([]string, len(batch))
		args := make([]any, 0, 3*len(batch)+1)
		for i, d := range batch {
			rows[i] = s.d.Q.DeferRow
			args = append(args, d.ID, d.Reason, s.d.Time(store.DBTime(d.NextAttempt)))
		}
		args = append(args, owner)
		q := fmt.Sprintf(s.d.Q.Defer, strings.Join(rows, " UNION ALL "))
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			return s.errf("defer: %w", err)
		}
	}
	return nil
}

func (s *Store) RecipientsRenew(ctx context.Context, owner string, ids []int64, until time.Time) ([]int64, error) {
	u := s.d.Time(store.DBTime(until))
	var held []int64
	for _, batch := range sqlq.Batches(ids, s.d.BatchSize) {
		var still []int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			args := append(append([]any{u, u}, sqlq.Args(batch)...), owner)
			if _, err := tx.ExecContext(ctx, s.in(s.d.Q.Renew, len(batch)), args...); err != nil {
				return err
			}
			var err error
			still, err = queryIDs[int64](ctx, tx, s.in(s.d.Q.RenewHeld, len(batch)), append(sqlq.Args(batch), owner)...)
			return err
		})
		if err != nil {
			return nil, s.errf("renew: %w", err)
		}
		held = append(held, still...)
	}
	return held, nil
}

func (s *Store) RecipientsRelease(ctx context.Context, owner string, ids []int64) error {
	now := s.d.Time(store.DBTime(time.Now()))
	for _, batch := range sqlq.Batches(ids, s.d.BatchSize) {
		args := append(append([]any{now}, sqlq.Args(batch)...), owner)
		if _, err := s.w.ExecContext(ctx, s.in(s.d.Q.Release, len(batch)), args...); err != nil {
			return s.errf("release: %w", err)
		}
	}
	return nil
}

func (s *Store) ContentOpen(ctx context.Context, queueID string) (io.ReadCloser, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, s.d.Q.ContentChunks, queueID).Scan(&n); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, s.errf("content %s: %w", queueID, store.ErrNotFound)
		}
		return nil, s.errf("content %s: %w", queueID, err)
	}
	return sqlq.NewContentReader(ctx, queueID, n, func(ctx context.Context, seq int) ([]byte, bool, error) {
		var data []byte
		err := s.r.QueryRowContext(ctx, s.d.Q.ContentChunk, queueID, seq).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, nil
		}
		return data, err == nil, err
	}), nil
}

func (s *Store) MessageGet(ctx context.Context, queueID string) (*store.Message, error) {
	var m store.Message
	var arrival, created dbTime
	err := s.r.QueryRowContext(ctx, s.d.Q.MessageGet, queueID).Scan(&m.QueueID, &m.Sender, &arrival, &m.Size,
		&m.ClientName, &m.ClientAddr, &m.Helo, &m.Protocol, &m.MessageID, &m.BodyType, &m.SMTPUTF8, &m.EnvID,
		&m.Ret, &m.NRcpt, &created, &m.Filter)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.errf("message %s: %w", queueID, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.errf("message %s: %w", queueID, err)
	}
	m.Arrival, m.CreatedAt = arrival.t, created.t
	rows, err := s.r.QueryContext(ctx, s.d.Q.MessageRcpts, queueID)
	if err != nil {
		return nil, s.errf("message %s: %w", queueID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Recipient
		var next, expires dbTime
		var owner sql.NullString
		if err := rows.Scan(&r.ID, &r.Address, &r.Orig, &r.Notify, &r.ORCPT, &r.Domain, &r.State, &r.Attempts,
			&next, &r.LastReason, &owner, &expires); err != nil {
			return nil, s.errf("message %s: %w", queueID, err)
		}
		r.NextAttempt, r.LeaseOwner, r.LeaseExpires = next.t, owner.String, expires.t
		m.Recipients = append(m.Recipients, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.errf("message %s: %w", queueID, err)
	}
	return &m, nil
}

func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	var t dbTime
	if err := s.r.QueryRowContext(ctx, s.d.Q.NextDue).Scan(&t); err != nil {
		return time.Time{}, false, s.errf("next due: %w", err)
	}
	return t.t, t.valid, nil
}

func (s *Store) MessageDelayWarnedSet(ctx context.Context, queueID string, warned bool) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.Q.DelayWarnedSet, warned, queueID, warned)
	if err != nil {
		return false, s.errf("%s: delay warning mark: %w", queueID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.errf("%s: delay warning mark: %w", queueID, err)
	}
	return n == 1, nil
}

func (s *Store) MessageHold(ctx context.Context, queueID string) (int, error) {
	return s.holdRelease(ctx, s.d.Q.Hold, queueID)
}

func (s *Store) MessageRelease(ctx context.Context, queueID string) (int, error) {
	return s.holdRelease(ctx, s.d.Q.Unhold, queueID)
}

func (s *Store) holdRelease(ctx context.Context, q, queueID string) (int, error) {
	res, err := s.w.ExecContext(ctx, q, s.d.Time(store.DBTime(time.Now())), queueID)
	if err != nil {
		return 0, s.errf("%s: %w", queueID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.errf("%s: %w", queueID, err)
	}
	if n == 0 {
		var one int
		err := s.r.QueryRowContext(ctx, s.d.Q.MessageExists, queueID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, s.errf("%s: %w", queueID, store.ErrNotFound)
		}
		if err != nil {
			return 0, s.errf("%s: %w", queueID, err)
		}
	}
	return int(n), nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// queryIDs runs q and collects its single column.
func queryIDs[T any](ctx context.Context, db querier, q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// dbTime scans a nullable time written either as a DATETIME (MySQL, parseTime) or as microseconds since the
// epoch (SQLite), always returning UTC.
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d = dbTime{}
	case time.Time:
		*d = dbTime{t: v.UTC(), valid: true}
	case int64:
		*d = dbTime{t: time.UnixMicro(v).UTC(), valid: true}
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}
