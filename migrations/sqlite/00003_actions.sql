-- +goose Up
-- A message's content filter (content_filter or a FILTER action, "transport:nexthop"; '' = none): the qmgr
-- sends every recipient of the message there instead of its resolved route. HOLD needs no column: cleanup
-- writes the recipients in state 'hold', which the claim already skips.
ALTER TABLE queue_message ADD COLUMN content_filter TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE queue_message DROP COLUMN content_filter;
