-- +goose Up
-- A flush (postqueue -f/-s/-i, sendmail -q, ETRN) sets it: the next attempt delivers even through a transport
-- in defer_transports, as Postfix's flush does for that queue run. A deferral clears it.
ALTER TABLE queue_recipient ADD COLUMN flushed INTEGER NOT NULL DEFAULT 0 CHECK (flushed IN (0, 1));

-- +goose Down
ALTER TABLE queue_recipient DROP COLUMN flushed;
