-- +goose Up
-- Set by a claim that finds the recipient still 'active': the node that held it died (or lost its database)
-- mid-delivery and its lease ran out. The delivery may have happened; transports that can tell (Maildir)
-- check before delivering again.
ALTER TABLE queue_recipient ADD COLUMN taken_over boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE queue_recipient DROP COLUMN taken_over;
