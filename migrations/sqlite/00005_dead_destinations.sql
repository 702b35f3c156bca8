-- +goose Up
-- Dead destinations (Postfix's throttled queues): a transport and next hop whose failed delivery cohorts
-- reached destination_concurrency_failed_cohort_limit. Every node defers that destination's mail without a
-- delivery attempt until until_at, with reason 'delivery temporarily suspended: …'; after that one delivery
-- probes it, and a success deletes the row. For a transport whose recipient limit is 1 the next hop is the
-- recipient, as in Postfix. Times are INTEGER microseconds since the Unix epoch (UTC).
CREATE TABLE dead_destination (
    transport  TEXT    NOT NULL,
    nexthop    TEXT    NOT NULL,
    until_at   INTEGER NOT NULL,
    dsn        TEXT    NOT NULL CHECK (dsn LIKE '4.%'),
    reason     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (transport, nexthop)
);

-- +goose Down
DROP TABLE dead_destination;
