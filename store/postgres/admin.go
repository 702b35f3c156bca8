package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sqlmta/store"
	"sqlmta/store/internal/sqlq"
)

var _ store.AdminStore = (*Store)(nil)

// admin is the Store seen through store.Admin.
type admin Store

// Admin returns the queue administration interface.
func (s *Store) Admin() store.Admin { return (*admin)(s) }

// One page: the messages after $1 in ID order (LIMIT $2), joined to their recipients. COALESCE turns the
// LEFT JOIN's missing recipient into ID 0.
const qAdminPage = `
SELECT m.id, m.sender, m.arrival, m.size, m.client_name, m.client_addr, m.helo, m.protocol, m.message_id,
       m.body_type, m.smtputf8, m.envid, m.ret, m.nrcpt, m.created_at, m.expire_forced,
       COALESCE(r.id, 0), COALESCE(r.address, ''), COALESCE(r.orig_address, ''), COALESCE(r.notify, ''),
       COALESCE(r.orcpt, ''), COALESCE(r.domain, ''), COALESCE(r.state, ''), COALESCE(r.attempts, 0),
       r.next_attempt_at, COALESCE(r.last_reason, ''), r.lease_owner, r.lease_expires_at
FROM (SELECT * FROM queue_message WHERE id > $1 ORDER BY id LIMIT $2) m
LEFT JOIN queue_recipient r ON r.message_id = m.id
ORDER BY m.id, r.id`

const qAdminDelete = `DELETE FROM queue_message WHERE id = ANY($1) RETURNING id`

// A live lease means a delivery is running: hold and requeue leave that row to finish or defer.
const qAdminHold = `
WITH u AS (
    UPDATE queue_recipient
    SET state = 'hold', lease_owner = NULL, lease_expires_at = NULL
    WHERE message_id = ANY($1) AND state <> 'hold' AND NOT (state = 'active' AND lease_expires_at > $2)
    RETURNING message_id
)
SELECT DISTINCT message_id FROM u`

const qAdminRelease = `
WITH u AS (
    UPDATE queue_recipient
    SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = $2
    WHERE message_id = ANY($1) AND state = 'hold'
    RETURNING message_id
)
SELECT DISTINCT message_id FROM u`

const qAdminRequeue = `
WITH u AS (
    UPDATE queue_recipient
    SET state = 'queued', attempts = 0, last_reason = '', next_attempt_at = $2,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE message_id = ANY($1) AND NOT (state = 'active' AND lease_expires_at > $2)
    RETURNING message_id
), m AS (
    UPDATE queue_message SET expire_forced = false
    WHERE id IN (SELECT message_id FROM u) AND expire_forced
)
SELECT DISTINCT message_id FROM u`

// Expiry happens at the next attempt: the message's waiting recipients become due now.
const qAdminExpire = `
WITH e AS (
    UPDATE queue_message SET expire_forced = true
    WHERE id = ANY($1) AND NOT expire_forced
    RETURNING id
), d AS (
    UPDATE queue_recipient SET next_attempt_at = $2
    WHERE message_id = ANY($1) AND state IN ('queued', 'deferred') AND next_attempt_at > $2
)
SELECT id FROM e`

const qAdminFlush = `
WITH u AS (
    UPDATE queue_recipient SET next_attempt_at = LEAST(next_attempt_at, $1), flushed = true
    WHERE state IN ('queued', 'deferred') AND NOT flushed
      AND ($2 = '' OR message_id = $2) AND ($3 = '' OR domain = $3)
    RETURNING 1
)
SELECT count(*) FROM u`

func (a *admin) MessagesScan(ctx context.Context, p store.ScanParams, fn func(*store.QueuedMessage) error) error {
	now := p.ScanNow()
	var page sqlq.AdminPage
	after := ""
	for {
		rows, err := a.pool.Query(ctx, qAdminPage, after, p.PageSize())
		if err != nil {
			return fmt.Errorf("postgres: scan: %w", err)
		}
		for rows.Next() {
			var m store.QueuedMessage
			var r store.Recipient
			var next, expires *time.Time
			var owner *string
			if err := rows.Scan(&m.QueueID, &m.Sender, &m.Arrival, &m.Size, &m.ClientName, &m.ClientAddr, &m.Helo,
				&m.Protocol, &m.MessageID, &m.BodyType, &m.SMTPUTF8, &m.EnvID, &m.Ret, &m.NRcpt, &m.CreatedAt,
				&m.ForcedExpire, &r.ID, &r.Address, &r.Orig, &r.Notify, &r.ORCPT, &r.Domain, &r.State, &r.Attempts,
				&next, &r.LastReason, &owner, &expires); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: scan: %w", err)
			}
			m.Arrival, m.CreatedAt = m.Arrival.UTC(), m.CreatedAt.UTC()
			if next != nil {
				r.NextAttempt = next.UTC()
			}
			if owner != nil {
				r.LeaseOwner = *owner
			}
			if expires != nil {
				r.LeaseExpires = expires.UTC()
			}
			page.Add(&m, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: scan: %w", err)
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

// ids runs q with (ids, now) and returns the sorted queue IDs it reports.
func (a *admin) ids(ctx context.Context, what, q string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := a.pool.Query(ctx, q, sqlq.SortedUnique(ids), store.DBTime(time.Now()))
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return sqlq.SortedUnique(out), nil
}

func (a *admin) MessagesDelete(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := a.pool.Query(ctx, qAdminDelete, sqlq.SortedUnique(ids))
	if err != nil {
		return nil, fmt.Errorf("postgres: delete: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: delete: %w", err)
	}
	return sqlq.SortedUnique(out), nil
}

func (a *admin) MessagesHold(ctx context.Context, ids []string) ([]string, error) {
	return a.ids(ctx, "hold", qAdminHold, ids)
}

func (a *admin) MessagesRelease(ctx context.Context, ids []string) ([]string, error) {
	return a.ids(ctx, "release", qAdminRelease, ids)
}

func (a *admin) MessagesRequeue(ctx context.Context, ids []string) ([]string, error) {
	return a.ids(ctx, "requeue", qAdminRequeue, ids)
}

func (a *admin) MessagesExpire(ctx context.Context, ids []string, release bool) (expired, released []string, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	ids = sqlq.SortedUnique(ids)
	now := store.DBTime(time.Now())
	// One batch, one implicit transaction: expire, then release from hold (-f).
	b := &pgx.Batch{}
	b.Queue(qAdminExpire, ids, now)
	if release {
		b.Queue(qAdminRelease, ids, now)
	}
	br := a.pool.SendBatch(ctx, b)
	defer br.Close()
	for i := 0; i < b.Len(); i++ {
		rows, err := br.Query()
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: expire: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: expire: %w", err)
		}
		if i == 0 {
			expired = sqlq.SortedUnique(got)
		} else {
			released = sqlq.SortedUnique(got)
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("postgres: expire: %w", err)
	}
	return expired, released, nil
}

func (a *admin) RecipientsFlush(ctx context.Context, p store.FlushParams) (int, error) {
	b := &pgx.Batch{}
	b.Queue(qAdminFlush, store.DBTime(time.Now()), p.QueueID, store.Domain("@"+p.Site))
	b.Queue(qNotify, notifyChannel) // delivered at commit: idle nodes look for due work at once
	br := a.pool.SendBatch(ctx, b)
	defer br.Close()
	var n int
	if err := br.QueryRow().Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: flush: %w", err)
	}
	if err := br.Close(); err != nil {
		return 0, fmt.Errorf("postgres: flush: %w", err)
	}
	return n, nil
}
