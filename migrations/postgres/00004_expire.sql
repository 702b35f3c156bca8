-- +goose Up
-- postsuper -e/-f: the message is returned to its sender at its next delivery attempt (mailq's '#').
ALTER TABLE queue_message ADD COLUMN expire_forced boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE queue_message DROP COLUMN expire_forced;
