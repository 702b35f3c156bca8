package postgres

// All of the dialect's SQL, in one place. $-placeholders; arrays travel as one parameter (= ANY, unnest).

const qInsertMessage = `
INSERT INTO queue_message (id, sender, arrival, size, client_name, client_addr, helo, protocol,
                           message_id, body_type, smtputf8, envid, ret, nrcpt, content_filter, verify_probe)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

const qInsertContent = `INSERT INTO queue_content (message_id, seq, data) VALUES ($1, $2, $3)`

const qUpdateSize = `UPDATE queue_message SET size = $2 WHERE id = $1`

// unnest keeps the arrays' order, so recipient IDs follow the envelope order. $8 is the state: 'queued',
// or 'hold' for a held message.
const qInsertRecipients = `
INSERT INTO queue_recipient (message_id, address, orig_address, notify, orcpt, domain, next_attempt_at, state)
SELECT $1, t.address, t.orig, t.notify, t.orcpt, t.domain, $7, $8
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(address, orig, notify, orcpt, domain)`

// One statement: pick due rows in order, skipping rows another claimer holds, lease them, and return them
// with their message's fields. state <> 'hold' is exactly the partial index's predicate.
const qClaim = `
WITH due AS (
    SELECT id FROM queue_recipient
    WHERE state <> 'hold' AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE queue_recipient r
    SET taken_over = (r.state = 'active'), state = 'active', lease_owner = $3, lease_expires_at = $4, next_attempt_at = $4
    FROM due
    WHERE r.id = due.id
    RETURNING r.id, r.message_id, r.address, r.orig_address, r.notify, r.orcpt, r.domain, r.attempts, r.last_reason,
              r.flushed, r.taken_over
)
SELECT c.id, c.message_id, c.address, c.orig_address, c.notify, c.orcpt, c.domain, c.attempts, c.last_reason,
       m.sender, m.arrival, m.size, m.nrcpt, m.message_id, m.content_filter, m.expire_forced, m.delay_warned,
       c.flushed, c.taken_over, m.verify_probe
FROM claimed c
JOIN queue_message m ON m.id = c.message_id
ORDER BY c.message_id, c.id`

// Completion is two statements in one implicit transaction (one batch). The first locks the messages
// involved, in ID order (no deadlocks between completers): two nodes finishing a message's last two
// recipients then run one after the other, and the second sees the first's delete. The second statement
// starts after those locks are granted, so its snapshot includes every completion committed before; within
// it, the rows its own CTE deletes are still visible and are excluded by ID.
const qCompleteLock = `
SELECT id FROM queue_message
WHERE id IN (SELECT message_id FROM queue_recipient WHERE id = ANY($1) AND lease_owner = $2)
ORDER BY id
FOR UPDATE`

const qComplete = `
WITH del AS (
    DELETE FROM queue_recipient
    WHERE id = ANY($1) AND lease_owner = $2
    RETURNING id, message_id
)
DELETE FROM queue_message m
WHERE m.id IN (SELECT message_id FROM del)
  AND NOT EXISTS (SELECT 1 FROM queue_recipient r
                  WHERE r.message_id = m.id AND r.id NOT IN (SELECT id FROM del))
RETURNING m.id`

const qDefer = `
UPDATE queue_recipient r
SET state = 'deferred', attempts = r.attempts + 1, last_reason = d.reason, next_attempt_at = d.next_at,
    lease_owner = NULL, lease_expires_at = NULL, flushed = false
FROM unnest($2::bigint[], $3::text[], $4::timestamptz[]) AS d(id, reason, next_at)
WHERE r.id = d.id AND r.lease_owner = $1`

const qNotify = `SELECT pg_notify($1, '')`

const qRenew = `
UPDATE queue_recipient
SET lease_expires_at = $3, next_attempt_at = $3
WHERE id = ANY($2) AND lease_owner = $1 AND state = 'active'
RETURNING id`

const qRelease = `
UPDATE queue_recipient
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = $3,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY($2) AND lease_owner = $1`

// NULL when the message does not exist; otherwise its number of chunks.
const qContentChunks = `
SELECT (SELECT count(*) FROM queue_content c WHERE c.message_id = m.id) FROM queue_message m WHERE m.id = $1`

const qContentChunk = `SELECT data FROM queue_content WHERE message_id = $1 AND seq = $2`

const qMessageGet = `
SELECT id, sender, arrival, size, client_name, client_addr, helo, protocol, message_id, body_type, smtputf8,
       envid, ret, nrcpt, created_at, content_filter
FROM queue_message WHERE id = $1`

const qMessageRecipients = `
SELECT id, address, orig_address, notify, orcpt, domain, state, attempts, next_attempt_at, last_reason,
       lease_owner, lease_expires_at
FROM queue_recipient WHERE message_id = $1 ORDER BY id`

const qNextDue = `SELECT min(next_attempt_at) FROM queue_recipient WHERE state <> 'hold'`

// A live lease means a delivery is running: leave that row to finish or defer.
const qHold = `
UPDATE queue_recipient
SET state = 'hold', lease_owner = NULL, lease_expires_at = NULL
WHERE message_id = $1 AND state <> 'hold' AND NOT (state = 'active' AND lease_expires_at > $2)`

const qRelease1 = `
UPDATE queue_recipient
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, next_attempt_at = $2
WHERE message_id = $1 AND state = 'hold'`

const qMessageExists = `SELECT EXISTS (SELECT 1 FROM queue_message WHERE id = $1)`

// Only a change counts: the node whose update flips the mark is the one that sends the warning.
const qDelayWarnedSet = `UPDATE queue_message SET delay_warned = $2 WHERE id = $1 AND delay_warned <> $2`
