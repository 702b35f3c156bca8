-- +goose Up
-- delay_warning_time: set once the sender was sent a "delayed mail" notice, so that the message is warned
-- about at most once.
ALTER TABLE queue_message ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0 CHECK (delay_warned IN (0, 1));

-- +goose Down
ALTER TABLE queue_message DROP COLUMN delay_warned;
