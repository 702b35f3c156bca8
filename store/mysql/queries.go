package mysql

import "sqlmta/store/internal/sqldb"

// queries is all of the dialect's SQL. MariaDB (10.6+) and MySQL 8 both have SKIP LOCKED but no
// UPDATE … RETURNING, so the claim selects and locks due IDs, then leases and fetches them, in one transaction.
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
	// No partial index in MariaDB: the scan on (next_attempt_at, id) passes over held rows.
	ClaimSelect: `
SELECT id FROM queue_recipient
WHERE state <> 'hold' AND next_attempt_at <= ?
ORDER BY next_attempt_at, id
LIMIT ?
FOR UPDATE SKIP LOCKED`,
	// MariaDB assigns left to right and later expressions see earlier assignments: taken_over must read
	// the old state, so it comes first.
	ClaimUpdate: `
UPDATE queue_recipient
SET taken_over = (state = 'active'), state = 'active', lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?
WHERE id IN (%s)`,
	ClaimFetch: `
SELECT r.id, r.message_id, r.address, r.orig_address, r.notify, r.orcpt, r.domain, r.attempts, r.last_reason,
       m.sender, m.arrival, m.size, m.nrcpt, m.message_id, m.content_filter, m.expire_forced, m.delay_warned,
       r.flushed, r.taken_over, m.verify_probe
FROM queue_recipient r
JOIN queue_message m ON m.id = r.message_id
WHERE r.id IN (%s)
ORDER BY r.message_id, r.id`,
	// A locking clause does not lock the rows its subquery reads: only the messages are locked here.
	CompleteLock: `
SELECT id FROM queue_message
WHERE id IN (SELECT message_id FROM queue_recipient WHERE id IN (%s) AND lease_owner = ?)
ORDER BY id
FOR UPDATE`,
	CompleteDelete: `DELETE FROM queue_recipient WHERE id IN (%s) AND lease_owner = ?`,
	// READ COMMITTED (set per connection by Open): this read sees completions committed before our locks.
	CompleteEmpty: `
SELECT m.id FROM queue_message m
WHERE m.id IN (%s) AND NOT EXISTS (SELECT 1 FROM queue_recipient r WHERE r.message_id = m.id)`,
	DeleteMessages: `DELETE FROM queue_message WHERE id IN (%s)`,
	Defer: `
UPDATE queue_recipient r
JOIN (%s) d ON r.id = d.id
SET r.state = 'deferred', r.attempts = r.attempts + 1, r.last_reason = d.reason,
    r.next_attempt_at = d.next_at, r.lease_owner = NULL, r.lease_expires_at = NULL, r.flushed = FALSE
WHERE r.lease_owner = ?`,
	DeferRow:   `SELECT ? AS id, ? AS reason, CAST(? AS DATETIME(6)) AS next_at`,
	DeferBatch: 1000,
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
	MessageExists: `SELECT 1 FROM queue_message WHERE id = ?`,
	// MySQL counts changed rows, not matched ones; the condition makes both the same.
	DelayWarnedSet: `UPDATE queue_message SET delay_warned = ? WHERE id = ? AND delay_warned <> ?`,
}
