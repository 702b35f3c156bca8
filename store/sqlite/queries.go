package sqlite

import "sqlmta/store/internal/sqldb"

// queries is all of the dialect's SQL. Times are INTEGER microseconds since the epoch. SQLite has one
// writer and every write transaction is BEGIN IMMEDIATE, so no row locks are needed: the claim selects due
// rows and leases them in one UPDATE … RETURNING, which no other writer can interleave with.
var queries = sqldb.Queries{
	InsertMessage: `
INSERT INTO queue_message (id, sender, arrival, size, client_name, client_addr, helo, protocol, message_id,
                           body_type, smtputf8, envid, ret, nrcpt, created_at, content_filter, verify_probe)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	InsertContent: `INSERT INTO queue_content (message_id, seq, data) VALUES (?, ?, ?)`,
	UpdateSize:    `UPDATE queue_message SET size = ? WHERE id = ?`,
	InsertRecipients: `
INSERT INTO queue_recipient (message_id, address, orig_address, notify, orcpt, domain, next_attempt_at,
                             state, last_reason)
VALUES `,
	RecipientRow: `(?, ?, ?, ?, ?, ?, ?, ?, '')`,
	// The subquery is exactly the partial index queue_recipient_due's predicate and order. RETURNING may
	// only name the updated table's columns, so the message fields come from correlated primary-key lookups.
	ClaimReturning: `
UPDATE queue_recipient
SET taken_over = (state = 'active'), state = 'active', lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?
WHERE id IN (SELECT id FROM queue_recipient
             WHERE state <> 'hold' AND next_attempt_at <= ?
             ORDER BY next_attempt_at, id
             LIMIT ?)
RETURNING id, message_id, address, orig_address, notify, orcpt, domain, attempts, last_reason,
          (SELECT m.sender FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.arrival FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.size FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.nrcpt FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.message_id FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.content_filter FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.expire_forced FROM queue_message m WHERE m.id = queue_recipient.message_id),
          (SELECT m.delay_warned FROM queue_message m WHERE m.id = queue_recipient.message_id),
          flushed, taken_over,
          (SELECT m.verify_probe FROM queue_message m WHERE m.id = queue_recipient.message_id)`,
	// The single writer already serialises completions: this only finds the messages involved.
	CompleteLock: `
SELECT id FROM queue_message
WHERE id IN (SELECT message_id FROM queue_recipient WHERE id IN (%s) AND lease_owner = ?)
ORDER BY id`,
	CompleteDelete: `DELETE FROM queue_recipient WHERE id IN (%s) AND lease_owner = ?`,
	CompleteEmpty: `
SELECT m.id FROM queue_message m
WHERE m.id IN (%s) AND NOT EXISTS (SELECT 1 FROM queue_recipient r WHERE r.message_id = m.id)`,
	DeleteMessages: `DELETE FROM queue_message WHERE id IN (%s)`,
	Defer: `
UPDATE queue_recipient
SET state = 'deferred', attempts = attempts + 1, last_reason = d.reason,
    next_attempt_at = d.next_at, lease_owner = NULL, lease_expires_at = NULL, flushed = 0
FROM (%s) AS d
WHERE queue_recipient.id = d.id AND queue_recipient.lease_owner = ?`,
	DeferRow:   `SELECT ? AS id, ? AS reason, ? AS next_at`,
	DeferBatch: 400, // SQLite allows at most 500 terms in a compound SELECT
	Renew: `
UPDATE queue_recipient SET lease_expires_at = ?, next_attempt_at = ?
WHERE id IN (%s) AND lease_owner = ? AND state = 'active'`,
	RenewHeld: `SELECT id FROM queue_recipient WHERE id IN (%s) AND lease_owner = ? AND state = 'active'`,
	Release: `
UPDATE queue_recipient
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = ?,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id IN (%s) AND lease_owner = ?`,
	ContentChunks: `
SELECT (SELECT COUNT(*) FROM queue_content c WHERE c.message_id = m.id) FROM queue_message m WHERE m.id = ?`,
	ContentChunk: `SELECT data FROM queue_content WHERE message_id = ? AND seq = ?`,
	MessageGet: `
SELECT id, sender, arrival, size, client_name, client_addr, helo, protocol, message_id, body_type, smtputf8,
       envid, ret, nrcpt, created_at, content_filter
FROM queue_message WHERE id = ?`,
	MessageRcpts: `
SELECT id, address, orig_address, notify, orcpt, domain, state, attempts, next_attempt_at, last_reason,
       lease_owner, lease_expires_at
FROM queue_recipient WHERE message_id = ? ORDER BY id`,
	NextDue: `SELECT MIN(next_attempt_at) FROM queue_recipient WHERE state <> 'hold'`,
	// A live lease means a delivery is running: leave that row to finish or defer.
	Hold: `
UPDATE queue_recipient
SET state = 'hold', lease_owner = NULL, lease_expires_at = NULL
WHERE state <> 'hold' AND NOT (state = 'active' AND lease_expires_at > ?) AND message_id = ?`,
	Unhold: `
UPDATE queue_recipient
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = ?
WHERE state = 'hold' AND message_id = ?`,
	MessageExists:  `SELECT 1 FROM queue_message WHERE id = ?`,
	DelayWarnedSet: `UPDATE queue_message SET delay_warned = ? WHERE id = ? AND delay_warned <> ?`,
}
