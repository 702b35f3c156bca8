-- +goose Up
-- The mail queue: messages, their content in chunks, and one row per recipient.
-- Times are INTEGER microseconds since the Unix epoch (UTC): they sort and compare as numbers,
-- where SQLite's text timestamps would compare wrongly when their fractions differ in length.
CREATE TABLE queue_message (
    id          TEXT    NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 32),
    sender      TEXT    NOT NULL,  -- '' is the null sender <>
    arrival     INTEGER NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    client_name TEXT    NOT NULL DEFAULT '',
    client_addr TEXT    NOT NULL DEFAULT '',
    helo        TEXT    NOT NULL DEFAULT '',
    protocol    TEXT    NOT NULL DEFAULT '',
    message_id  TEXT    NOT NULL DEFAULT '',  -- Message-ID header value
    body_type   TEXT    NOT NULL DEFAULT '',
    smtputf8    INTEGER NOT NULL DEFAULT 0 CHECK (smtputf8 IN (0, 1)),
    envid       TEXT    NOT NULL DEFAULT '',
    ret         TEXT    NOT NULL DEFAULT '',
    nrcpt       INTEGER NOT NULL CHECK (nrcpt >= 0),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Chunks of at most 256 KiB, so neither enqueue nor delivery needs a whole message in memory.
CREATE TABLE queue_content (
    message_id TEXT    NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    data       BLOB    NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- A claimed row is 'active' with lease_owner set and BOTH lease_expires_at and next_attempt_at at the
-- lease expiry: an expired lease is due again, so the claim needs no other condition and no rescuer.
CREATE TABLE queue_recipient (
    id               INTEGER PRIMARY KEY,  -- the rowid: assigned in insertion order
    message_id       TEXT    NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    address          TEXT    NOT NULL,
    orig_address     TEXT    NOT NULL DEFAULT '',
    notify           TEXT    NOT NULL DEFAULT '',
    orcpt            TEXT    NOT NULL DEFAULT '',
    domain           TEXT    NOT NULL DEFAULT '',  -- lowercased domain part
    state            TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'deferred', 'active', 'hold')),
    next_attempt_at  INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_reason      TEXT    NOT NULL DEFAULT '',
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    CHECK ((state = 'active') = (lease_owner IS NOT NULL))
);

-- The claim's index: due rows in order, hold rows left out.
CREATE INDEX queue_recipient_due ON queue_recipient (next_attempt_at, id) WHERE state <> 'hold';
-- Cascades, MessageGet and "is the message empty now?" after a completion.
CREATE INDEX queue_recipient_message ON queue_recipient (message_id);

-- +goose Down
DROP TABLE queue_recipient;
DROP TABLE queue_content;
DROP TABLE queue_message;
