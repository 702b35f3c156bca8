package sqlite

import (
	"context"

	"sqlmta/store"
	"sqlmta/store/internal/sqldb"
)

var _ store.MapStore = (*Store)(nil)

// mapQueries is the SQL of the managed lookup tables. Writes go through the one writer connection: an
// import commits every ImportTx rows so that enqueues get the writer in between, and lookups use the read
// pool, so they never wait behind an import.
var mapQueries = sqldb.MapQueries{
	Insert: `INSERT INTO map_entry (map_name, generation, key, value) VALUES `,
	Row:    `(?, ?, ?, ?)`,
	Upsert: ` ON CONFLICT (map_name, generation, key) DO UPDATE SET value = excluded.value`,
	Keep:   ` ON CONFLICT (map_name, generation, key) DO NOTHING`,
	Flip: `
INSERT INTO map_table (name, generation, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET generation = excluded.generation, updated_at = excluded.updated_at
WHERE map_table.generation < excluded.generation`,
	DeleteOld:  `DELETE FROM map_entry WHERE map_name = ? AND generation < ?`,
	DeleteGen:  `DELETE FROM map_entry WHERE map_name = ? AND generation = ?`,
	Count:      `SELECT COUNT(*) FROM map_entry WHERE map_name = ? AND generation = ?`,
	Ensure:     `INSERT INTO map_table (name, generation, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
	Touch:      `UPDATE map_table SET updated_at = ? WHERE name = ?`,
	Generation: `SELECT generation FROM map_table WHERE name = ?`,
	Lookup: `
SELECT e.value FROM map_table t
LEFT JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation AND e.key = ?
WHERE t.name = ?`,
	Delete: `
DELETE FROM map_entry
WHERE map_name = ? AND generation = (SELECT generation FROM map_table WHERE name = ?) AND key = ?`,
	List: `
SELECT e.key, e.value FROM map_table t
JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation
WHERE t.name = ? ORDER BY e.key`,
	Names:       `SELECT name, updated_at FROM map_table ORDER BY name`,
	ImportBatch: 500,
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
