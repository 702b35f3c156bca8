-- +goose Up
-- Managed lookup tables (hash:, btree:, lmdb:, cdb: in main.cf), keyed by the map's absolute path.
-- An import writes its entries under a new generation and then flips map_table.generation in one short
-- transaction: a lookup joins the two tables in one statement, so it sees the old table or the new one.
-- Keys and values are bytea: map files may hold bytes that are not UTF-8, which text would refuse.
CREATE TABLE map_table (
    name       text        NOT NULL PRIMARY KEY,
    generation bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE map_entry (
    map_name   text   NOT NULL,
    generation bigint NOT NULL,
    key        bytea  NOT NULL,
    value      bytea  NOT NULL,
    PRIMARY KEY (map_name, generation, key)
);

-- +goose Down
DROP TABLE map_entry;
DROP TABLE map_table;
