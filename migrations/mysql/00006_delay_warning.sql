-- +goose Up
-- delay_warning_time: set once the sender was sent a "delayed mail" notice, so that of several nodes only
-- the one that sets it sends it, and the message is warned about at most once.
ALTER TABLE queue_message ADD COLUMN delay_warned BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE queue_message DROP COLUMN delay_warned;
