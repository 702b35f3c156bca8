-- +goose Up
-- postsuper -e/-f: the message is returned to its sender at its next delivery attempt (mailq's '#').
ALTER TABLE queue_message ADD COLUMN expire_forced INTEGER NOT NULL DEFAULT 0 CHECK (expire_forced IN (0, 1));

-- +goose Down
ALTER TABLE queue_message DROP COLUMN expire_forced;
