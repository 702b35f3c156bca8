-- +goose Up
-- Dead destinations (Postfix's throttled queues): a transport and next hop whose failed delivery cohorts
-- reached destination_concurrency_failed_cohort_limit. Every node defers that destination's mail without a
-- delivery attempt until until_at, with reason 'delivery temporarily suspended: …'; after that one delivery
-- probes it, and a success deletes the row. For a transport whose recipient limit is 1 the next hop is the
-- recipient, as in Postfix.
CREATE TABLE dead_destination (
    transport  VARCHAR(64)  NOT NULL,
    nexthop    VARCHAR(512) NOT NULL,
    until_at   DATETIME(6)  NOT NULL,  -- UTC
    dsn        VARCHAR(16)  NOT NULL,
    reason     TEXT         NOT NULL,
    updated_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (transport, nexthop),
    CONSTRAINT dead_destination_dsn CHECK (dsn LIKE '4.%')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE dead_destination;
