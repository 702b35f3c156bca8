-- +goose Up
-- The mail queue: messages, their content in chunks, and one row per recipient.
CREATE TABLE queue_message (
    id          text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 32),
    sender      text        NOT NULL,  -- '' is the null sender <>
    arrival     timestamptz NOT NULL,
    size        bigint      NOT NULL CHECK (size >= 0),
    client_name text        NOT NULL DEFAULT '',
    client_addr text        NOT NULL DEFAULT '',
    helo        text        NOT NULL DEFAULT '',
    protocol    text        NOT NULL DEFAULT '',
    message_id  text        NOT NULL DEFAULT '',  -- Message-ID header value
    body_type   text        NOT NULL DEFAULT '',
    smtputf8    boolean     NOT NULL DEFAULT false,
    envid       text        NOT NULL DEFAULT '',
    ret         text        NOT NULL DEFAULT '',
    nrcpt       integer     NOT NULL CHECK (nrcpt >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Chunks of at most 256 KiB, so neither enqueue nor delivery needs a whole message in memory.
CREATE TABLE queue_content (
    message_id text    NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    seq        integer NOT NULL CHECK (seq >= 0),
    data       bytea   NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- A claimed row is 'active' with lease_owner set and BOTH lease_expires_at and next_attempt_at at the
-- lease expiry: an expired lease is due again, so the claim needs no other condition and no rescuer.
CREATE TABLE queue_recipient (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       text        NOT NULL REFERENCES queue_message (id) ON DELETE CASCADE,
    address          text        NOT NULL,
    orig_address     text        NOT NULL DEFAULT '',
    notify           text        NOT NULL DEFAULT '',
    orcpt            text        NOT NULL DEFAULT '',
    domain           text        NOT NULL DEFAULT '',  -- lowercased domain part
    state            text        NOT NULL DEFAULT 'queued'
                                 CHECK (state IN ('queued', 'deferred', 'active', 'hold')),
    next_attempt_at  timestamptz NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    last_reason      text        NOT NULL DEFAULT '',
    lease_owner      text,
    lease_expires_at timestamptz,
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
