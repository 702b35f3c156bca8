package mysql

import (
	"context"

	"sqlmta/store"
	"sqlmta/store/internal/sqldb"
)

var _ store.MapStore = (*Store)(nil)

// mapQueries is the SQL of the managed lookup tables. Names and keys are VARBINARY (byte-for-byte, as
// postmap -f wants). MySQL has no ON CONFLICT … WHERE: the flip keeps the larger generation with IF(), and
// updated_at is assigned first because MySQL evaluates SET left to right on the updated row.
var mapQueries = sqldb.MapQueries{
	Insert: `INSERT INTO map_entry (map_name, generation, map_key, value) VALUES `,
	Row:    `(?, ?, ?, ?)`,
	Upsert: ` ON DUPLICATE KEY UPDATE value = VALUES(value)`,
	Keep:   ` ON DUPLICATE KEY UPDATE map_key = map_key`,
	Flip: `
INSERT INTO map_table (name, generation, updated_at) VALUES (?, ?, ?)
ON DUPLICATE KEY UPDATE
    updated_at = IF(generation < VALUES(generation), VALUES(updated_at), updated_at),
    generation = IF(generation < VALUES(generation), VALUES(generation), generation)`,
	DeleteOld:  `DELETE FROM map_entry WHERE map_name = ? AND generation < ?`,
	DeleteGen:  `DELETE FROM map_entry WHERE map_name = ? AND generation = ?`,
	Count:      `SELECT COUNT(*) FROM map_entry WHERE map_name = ? AND generation = ?`,
	Ensure:     `INSERT IGNORE INTO map_table (name, generation, updated_at) VALUES (?, ?, ?)`,
	Touch:      `UPDATE map_table SET updated_at = ? WHERE name = ?`,
	Generation: `SELECT generation FROM map_table WHERE name = ?`,
	Lookup: `
SELECT e.value FROM map_table t
LEFT JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation AND e.map_key = ?
WHERE t.name = ?`,
	Delete: `
DELETE FROM map_entry
WHERE map_name = ? AND generation = (SELECT generation FROM map_table WHERE name = ?) AND map_key = ?`,
	List: `
SELECT e.map_key, e.value FROM map_table t
JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation
WHERE t.name = ? ORDER BY e.map_key`,
	Names:       `SELECT name, updated_at FROM map_table ORDER BY name`,
	ImportBatch: 1000,
	ImportTx:    50000,
}

func (s *Store) maps() *sqldb.Maps { return s.Store.Maps(mapQueries) }

func (s *Store) MapImport(ctx context.Context, name string, entries func(yield func(key, value string) error) error, p store.MapImportParams) (int64, error) {
	return s.maps().MapImport(ctx, name, entries, p)
}

func (s *Store) MapLookup(ctx context.Context, name, key string) (string, bool, error) {
	return s.maps().MapLookup(ctx, name, key)
}

func (s *Store) MapPut(ctx context.Context, name string, entries []store.MapEntry, p store.MapPutParams) ([]string, error) {
	return s.maps().MapPut(ctx, name, entries, p)
}

func (s *Store) MapDelete(ctx context.Context, name, key string) (bool, error) {
	return s.maps().MapDelete(ctx, name, key)
}

func (s *Store) MapList(ctx context.Context, name string, fn func(key, value string) error) error {
	return s.maps().MapList(ctx, name, fn)
}

func (s *Store) MapNames(ctx context.Context) ([]store.MapInfo, error) { return s.maps().MapNames(ctx) }
