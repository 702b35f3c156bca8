-- +goose Up
-- Address verification (reject_unverified_sender/_recipient): a probe is a queued message that is not
-- delivered; its outcome goes to verify_cache, which every node shares (Postfix's address_verify_map).
ALTER TABLE queue_message ADD COLUMN verify_probe INTEGER NOT NULL DEFAULT 0 CHECK (verify_probe IN (0, 1));
CREATE TABLE verify_cache (
    address    TEXT NOT NULL PRIMARY KEY,
    status     VARCHAR(8) NOT NULL,  -- todo, ok, defer, bounce
    reason     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,     -- when the status was learned (or the entry made); µs since the epoch
    probed_at  INTEGER NOT NULL      -- when the last probe was sent
);

-- +goose Down
DROP TABLE verify_cache;
ALTER TABLE queue_message DROP COLUMN verify_probe;
