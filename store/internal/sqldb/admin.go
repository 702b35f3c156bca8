package sqldb

import (
	"context"
	"database/sql"
	"time"

	"sqlmta/store"
	"sqlmta/store/internal/sqlq"
)

// AdminQueries is a dialect's SQL for store.Admin. Entries with %s take an IN list of queue IDs. Each
// change is a Select that finds (and, where the dialect can, locks) the messages it will touch, then the
// Update itself, in one transaction: neither MySQL nor MariaDB can say which rows an UPDATE changed.
type AdminQueries struct {
	Page                   string // after, limit → one row per recipient (see sqlq.AdminPage)
	DeleteSelect, Delete   string // ids…
	HoldSelect, Hold       string // now, ids…
	ReleaseSelect, Release string // now, ids…
	RequeueSelect, Requeue string // now, ids…
	RequeueMessages        string // ids…: clear the forced expiry
	ExpireSelect, Expire   string // ids…
	ExpireDue              string // now, now, ids…
	Flush                  string // now, now, id, id, domain, domain
}

// NewAdminQueries returns the admin SQL, which MySQL/MariaDB and SQLite share but for the locking
// clause (lock: " FOR UPDATE", or "" for SQLite, whose single writer needs none). Booleans are written as
// 0 and 1, which both accept.
func NewAdminQueries(lock string) AdminQueries {
	// A live lease means a delivery is running: hold and requeue leave that row to finish or defer.
	const notLive = `NOT (state = 'active' AND lease_expires_at > ?)`
	return AdminQueries{
		Page: `
SELECT m.id, m.sender, m.arrival, m.size, m.client_name, m.client_addr, m.helo, m.protocol, m.message_id,
       m.body_type, m.smtputf8, m.envid, m.ret, m.nrcpt, m.created_at, m.expire_forced,
       COALESCE(r.id, 0), COALESCE(r.address, ''), COALESCE(r.orig_address, ''), COALESCE(r.notify, ''),
       COALESCE(r.orcpt, ''), COALESCE(r.domain, ''), COALESCE(r.state, ''), COALESCE(r.attempts, 0),
       r.next_attempt_at, COALESCE(r.last_reason, ''), r.lease_owner, r.lease_expires_at
FROM (SELECT * FROM queue_message WHERE id > ? ORDER BY id LIMIT ?) m
LEFT JOIN queue_recipient r ON r.message_id = m.id
ORDER BY m.id, r.id`,
		DeleteSelect: `SELECT id FROM queue_message WHERE id IN (%s) ORDER BY id` + lock,
		Delete:       `DELETE FROM queue_message WHERE id IN (%s)`,
		HoldSelect: `SELECT DISTINCT message_id FROM queue_recipient
WHERE state <> 'hold' AND ` + notLive + ` AND message_id IN (%s)` + lock,
		Hold: `UPDATE queue_recipient SET state = 'hold', lease_owner = NULL, lease_expires_at = NULL
WHERE state <> 'hold' AND ` + notLive + ` AND message_id IN (%s)`,
		ReleaseSelect: `SELECT DISTINCT message_id FROM queue_recipient
WHERE state = 'hold' AND message_id IN (%s)` + lock,
		Release: `UPDATE queue_recipient
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = ?
WHERE state = 'hold' AND message_id IN (%s)`,
		RequeueSelect: `SELECT DISTINCT message_id FROM queue_recipient WHERE ` + notLive + ` AND message_id IN (%s)` + lock,
		Requeue: `UPDATE queue_recipient
SET state = 'queued', attempts = 0, last_reason = '', next_attempt_at = ?, lease_owner = NULL,
    lease_expires_at = NULL
WHERE ` + notLive + ` AND message_id IN (%s)`,
		RequeueMessages: `UPDATE queue_message SET expire_forced = 0 WHERE id IN (%s)`,
		ExpireSelect:    `SELECT id FROM queue_message WHERE expire_forced = 0 AND id IN (%s) ORDER BY id` + lock,
		Expire:          `UPDATE queue_message SET expire_forced = 1 WHERE id IN (%s)`,
		// Expiry happens at the next attempt: the message's waiting recipients become due now.
		ExpireDue: `UPDATE queue_recipient SET next_attempt_at = ?
WHERE state IN ('queued', 'deferred') AND next_attempt_at > ? AND message_id IN (%s)`,
		Flush: `UPDATE queue_recipient SET next_attempt_at = CASE WHEN next_attempt_at > ? THEN ? ELSE next_attempt_at END, flushed = 1
WHERE state IN ('queued', 'deferred') AND flushed = 0
  AND (? = '' OR message_id = ?) AND (? = '' OR domain = ?)`,
	}
}

// Admin implements store.Admin over database/sql.
type Admin struct {
	s *Store
	q AdminQueries
}

// NewAdmin returns the admin interface of s with the dialect's admin SQL.
func NewAdmin(s *Store, q AdminQueries) *Admin { return &Admin{s: s, q: q} }

var _ store.Admin = (*Admin)(nil)

func (a *Admin) MessagesScan(ctx context.Context, p store.ScanParams, fn func(*store.QueuedMessage) error) error {
	now := p.ScanNow()
	var page sqlq.AdminPage
	after := ""
	for {
		if err := a.scanPage(ctx, after, p.PageSize(), &page); err != nil {
			return a.s.errf("scan: %w", err)
		}
		last, n, err := page.Emit(p, now, fn)
		if err != nil {
			return err
		}
		if n < p.PageSize() {
			return nil
		}
		after = last
	}
}

// scanPage reads one page; the rows are closed before fn sees any message, so a slow reader of the
// listing holds no connection.
func (a *Admin) scanPage(ctx context.Context, after string, limit int, page *sqlq.AdminPage) error {
	rows, err := a.s.r.QueryContext(ctx, a.q.Page, after, limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var m store.QueuedMessage
		var r store.Recipient
		var arrival, created, next, expires dbTime
		var owner sql.NullString
		if err := rows.Scan(&m.QueueID, &m.Sender, &arrival, &m.Size, &m.ClientName, &m.ClientAddr, &m.Helo,
			&m.Protocol, &m.MessageID, &m.BodyType, &m.SMTPUTF8, &m.EnvID, &m.Ret, &m.NRcpt, &created,
			&m.ForcedExpire, &r.ID, &r.Address, &r.Orig, &r.Notify, &r.ORCPT, &r.Domain, &r.State, &r.Attempts,
			&next, &r.LastReason, &owner, &expires); err != nil {
			return err
		}
		m.Arrival, m.CreatedAt = arrival.t, created.t
		r.NextAttempt, r.LeaseOwner, r.LeaseExpires = next.t, owner.String, expires.t
		page.Add(&m, r)
	}
	return rows.Err()
}

// change runs, per batch of IDs and in one transaction each, sel (which returns the messages that will
// change) and then upd, each with its leading arguments followed by the batch's IDs.
func (a *Admin) change(ctx context.Context, what string, ids []string, sel string, selPre []any, upd string, updPre []any) ([]string, error) {
	var out []string
	for _, batch := range sqlq.Batches(sqlq.SortedUnique(ids), a.s.d.BatchSize) {
		var got []string
		err := a.s.tx(ctx, func(tx *sql.Tx) error {
			var err error
			got, err = queryIDs[string](ctx, tx, a.s.in(sel, len(batch)), append(append([]any{}, selPre...), sqlq.Args(batch)...)...)
			if err != nil || len(got) == 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, a.s.in(upd, len(batch)), append(append([]any{}, updPre...), sqlq.Args(batch)...)...)
			return err
		})
		if err != nil {
			return out, a.s.errf("%s: %w", what, err)
		}
		out = append(out, got...)
	}
	return sqlq.SortedUnique(out), nil
}

func (a *Admin) now() any { return a.s.d.Time(store.DBTime(time.Now())) }

func (a *Admin) MessagesDelete(ctx context.Context, ids []string) ([]string, error) {
	return a.change(ctx, "delete", ids, a.q.DeleteSelect, nil, a.q.Delete, nil)
}

func (a *Admin) MessagesHold(ctx context.Context, ids []string) ([]string, error) {
	now := []any{a.now()}
	return a.change(ctx, "hold", ids, a.q.HoldSelect, now, a.q.Hold, now)
}

func (a *Admin) MessagesRelease(ctx context.Context, ids []string) ([]string, error) {
	return a.change(ctx, "release", ids, a.q.ReleaseSelect, nil, a.q.Release, []any{a.now()})
}

func (a *Admin) MessagesRequeue(ctx context.Context, ids []string) ([]string, error) {
	now := a.now()
	out, err := a.change(ctx, "requeue", ids, a.q.RequeueSelect, []any{now}, a.q.Requeue, []any{now, now})
	if err != nil || len(out) == 0 {
		return out, err
	}
	for _, batch := range sqlq.Batches(out, a.s.d.BatchSize) {
		if _, err := a.s.w.ExecContext(ctx, a.s.in(a.q.RequeueMessages, len(batch)), sqlq.Args(batch)...); err != nil {
			return out, a.s.errf("requeue: %w", err)
		}
	}
	return out, nil
}

func (a *Admin) MessagesExpire(ctx context.Context, ids []string, release bool) (expired, released []string, err error) {
	expired, err = a.change(ctx, "expire", ids, a.q.ExpireSelect, nil, a.q.Expire, nil)
	if err != nil {
		return nil, nil, err
	}
	now := a.now()
	for _, batch := range sqlq.Batches(sqlq.SortedUnique(ids), a.s.d.BatchSize) {
		args := append([]any{now, now}, sqlq.Args(batch)...)
		if _, err := a.s.w.ExecContext(ctx, a.s.in(a.q.ExpireDue, len(batch)), args...); err != nil {
			return expired, nil, a.s.errf("expire: %w", err)
		}
	}
	if release {
		released, err = a.MessagesRelease(ctx, ids)
	}
	return expired, released, err
}

func (a *Admin) RecipientsFlush(ctx context.Context, p store.FlushParams) (int, error) {
	now := a.now()
	dom := store.Domain("@" + p.Site)
	res, err := a.s.w.ExecContext(ctx, a.q.Flush, now, now, p.QueueID, p.QueueID, dom, dom)
	if err != nil {
		return 0, a.s.errf("flush: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, a.s.errf("flush: %w", err)
	}
	return int(n), nil
}
