-- +goose Up
-- Managed lookup tables (hash:, btree:, lmdb:, cdb: in main.cf), keyed by the map's absolute path.
-- An import writes its entries under a new generation and then flips map_table.generation in one short
-- transaction: a lookup joins the two tables in one statement, so it sees the old table or the new one.
-- Times are INTEGER microseconds since the Unix epoch, as in the queue tables.
CREATE TABLE map_table (
    name       TEXT    NOT NULL PRIMARY KEY,
    generation INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE map_entry (
    map_name   TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (map_name, generation, key)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE map_entry;
DROP TABLE map_table;
