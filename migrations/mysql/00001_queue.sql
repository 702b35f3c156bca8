-- +goose Up
-- The mail queue: messages, their content in chunks, and one row per recipient.
-- Queue IDs are ASCII with a binary collation: compared byte for byte, as Postfix does.
CREATE TABLE queue_message (
    id          VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    sender      TEXT         NOT NULL,  -- '' is the null sender <>
    arrival     DATETIME(6)  NOT NULL,  -- UTC
    size        BIGINT       NOT NULL,
    client_name TEXT         NOT NULL,
    client_addr VARCHAR(64)  NOT NULL DEFAULT '',
    helo        TEXT         NOT NULL,
    protocol    VARCHAR(32)  NOT NULL DEFAULT '',
    message_id  TEXT         NOT NULL,  -- Message-ID header value
    body_type   VARCHAR(16)  NOT NULL DEFAULT '',
    smtputf8    BOOLEAN      NOT NULL DEFAULT FALSE,
    envid       TEXT         NOT NULL,
    ret         VARCHAR(8)   NOT NULL DEFAULT '',
    nrcpt       INT          NOT NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CHECK (CHAR_LENGTH(id) >= 1),
    CHECK (size >= 0),
    CHECK (nrcpt >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Chunks of at most 256 KiB, so neither enqueue nor delivery needs a whole message in memory.
CREATE TABLE queue_content (
    message_id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq        INT         NOT NULL,
    data       LONGBLOB    NOT NULL,
    PRIMARY KEY (message_id, seq),
    CONSTRAINT queue_content_message FOREIGN KEY (message_id) REFERENCES queue_message (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- A claimed row is 'active' with lease_owner set and BOTH lease_expires_at and next_attempt_at at the
-- lease expiry: an expired lease is due again, so the claim needs no other condition and no rescuer.
CREATE TABLE queue_recipient (
    id               BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message_id       VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    address          TEXT        NOT NULL,
    orig_address     TEXT        NOT NULL,
    notify           VARCHAR(64) NOT NULL DEFAULT '',
    orcpt            TEXT        NOT NULL,
    domain           VARCHAR(255) NOT NULL DEFAULT '',  -- lowercased domain part
    state            VARCHAR(8)  NOT NULL DEFAULT 'queued',
    next_attempt_at  DATETIME(6) NOT NULL,  -- UTC
    attempts         INT         NOT NULL DEFAULT 0,
    last_reason      TEXT        NOT NULL,
    lease_owner      VARCHAR(255) NULL,
    lease_expires_at DATETIME(6) NULL,
    CONSTRAINT queue_recipient_state CHECK (state IN ('queued', 'deferred', 'active', 'hold')),
    CONSTRAINT queue_recipient_message FOREIGN KEY (message_id) REFERENCES queue_message (id) ON DELETE CASCADE,
    -- MariaDB has no partial index: the claim scans (next_attempt_at, id) and filters hold rows.
    -- InnoDB secondary indexes carry the primary key, so this index is ordered by (next_attempt_at, id).
    KEY queue_recipient_due (next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE queue_recipient;
DROP TABLE queue_content;
DROP TABLE queue_message;
