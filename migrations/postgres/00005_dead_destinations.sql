-- +goose Up
-- Dead destinations (Postfix's throttled queues): a transport and next hop whose failed delivery cohorts
-- reached destination_concurrency_failed_cohort_limit. Every node defers that destination's mail without a
-- delivery attempt until until_at, with reason 'delivery temporarily suspended: …'; after that one delivery
-- probes it, and a success deletes the row. For a transport whose recipient limit is 1 the next hop is the
-- recipient, as in Postfix.
CREATE TABLE dead_destination (
    transport  text        NOT NULL,
    nexthop    text        NOT NULL,
    until_at   timestamptz NOT NULL,
    dsn        text        NOT NULL CHECK (dsn LIKE '4.%'),
    reason     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transport, nexthop)
);

-- +goose Down
DROP TABLE dead_destination;
