-- +goose Up
-- Managed lookup tables (hash:, btree:, lmdb:, cdb: in main.cf), keyed by the map's absolute path.
-- An import writes its entries under a new generation and then flips map_table.generation in one short
-- transaction: a lookup joins the two tables in one statement, so it sees the old table or the new one.
-- Names and keys are VARBINARY: compared byte for byte (postmap -f keeps case), any bytes allowed. InnoDB
-- limits an index to 3072 bytes, so a name is at most 512 bytes and a key at most 2048 (512 + 8 + 2048);
-- a longer key is refused in strict mode rather than silently cut.
CREATE TABLE map_table (
    name       VARBINARY(512) NOT NULL PRIMARY KEY,
    generation BIGINT         NOT NULL,
    updated_at DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

CREATE TABLE map_entry (
    map_name   VARBINARY(512)  NOT NULL,
    generation BIGINT          NOT NULL,
    map_key    VARBINARY(2048) NOT NULL,
    value      MEDIUMBLOB      NOT NULL,
    PRIMARY KEY (map_name, generation, map_key)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE map_entry;
DROP TABLE map_table;
