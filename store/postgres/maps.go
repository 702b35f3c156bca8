package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sqlmta/store"
)

var _ store.MapStore = (*Store)(nil)

// The managed lookup tables' SQL. Keys and values are bytea; arrays travel as one parameter.

// qMapFlip keeps the larger generation: of two concurrent imports the later-started wins, and the other
// affects no row.
const qMapFlip = `
INSERT INTO map_table (name, generation, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET generation = EXCLUDED.generation, updated_at = now()
WHERE map_table.generation < EXCLUDED.generation`

const qMapDeleteOld = `DELETE FROM map_entry WHERE map_name = $1 AND generation < $2`

const qMapDeleteGen = `DELETE FROM map_entry WHERE map_name = $1 AND generation = $2`

// qMapUpsert writes one batch of an import with -r; the batch holds each key once.
const qMapUpsert = `
INSERT INTO map_entry (map_name, generation, key, value)
SELECT $1, $2, t.key, t.value FROM unnest($3::bytea[], $4::bytea[]) AS t(key, value)
ON CONFLICT (map_name, generation, key) DO UPDATE SET value = EXCLUDED.value`

const qMapEnsure = `
INSERT INTO map_table (name, generation) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`

const qMapGeneration = `SELECT generation FROM map_table WHERE name = $1`

const qMapPutKeep = `
INSERT INTO map_entry (map_name, generation, key, value) VALUES ($1, $2, $3, $4)
ON CONFLICT (map_name, generation, key) DO NOTHING`

const qMapPutReplace = `
INSERT INTO map_entry (map_name, generation, key, value) VALUES ($1, $2, $3, $4)
ON CONFLICT (map_name, generation, key) DO UPDATE SET value = EXCLUDED.value`

const qMapTouch = `UPDATE map_table SET updated_at = now() WHERE name = $1`

// qMapLookup is one statement, hence one snapshot: the generation it reads and the entry it finds belong
// together. No row: no such map; a NULL value: no such key.
const qMapLookup = `
SELECT e.value, e.key IS NOT NULL FROM map_table t
LEFT JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation AND e.key = $2
WHERE t.name = $1`

const qMapDelete = `
DELETE FROM map_entry
WHERE map_name = $1 AND generation = (SELECT generation FROM map_table WHERE name = $1) AND key = $2`

const qMapList = `
SELECT e.key, e.value FROM map_table t
JOIN map_entry e ON e.map_name = t.name AND e.generation = t.generation
WHERE t.name = $1 ORDER BY e.key`

const qMapNames = `SELECT name, updated_at FROM map_table ORDER BY name`

// mapBatch is how many entries travel together from the caller's iterator to COPY (or to one upsert).
const mapBatch = 2000

func mapErr(name, what string, err error) error {
	return fmt.Errorf("postgres: map %s: %s: %w", name, what, err)
}

func (s *Store) MapImport(ctx context.Context, name string, entries func(yield func(key, value string) error) error, p store.MapImportParams) (int64, error) {
	gen := store.MapGeneration()
	n, err := s.mapInsert(ctx, name, gen, entries, p.Replace)
	if err == nil {
		var tag interface{ RowsAffected() int64 }
		tag, err = s.pool.Exec(ctx, qMapFlip, name, gen)
		if err == nil && tag.RowsAffected() == 0 {
			err = store.ErrMapSuperseded
		}
	}
	if err != nil {
		if _, derr := s.pool.Exec(context.WithoutCancel(ctx), qMapDeleteGen, name, gen); derr != nil {
			err = errors.Join(err, derr)
		}
		return n, mapErr(name, "import", err)
	}
	if _, err := s.pool.Exec(ctx, qMapDeleteOld, name, gen); err != nil {
		return n, mapErr(name, "deleting old generations", err)
	}
	return n, nil
}

type mapRow struct{ key, value []byte }

// mapInsert streams the entries into generation gen: the caller's push-style iterator runs in a goroutine
// and hands batches to COPY, which pulls them. With replace, batches go through an upsert instead (COPY
// cannot resolve duplicate keys).
func (s *Store) mapInsert(ctx context.Context, name string, gen int64, entries func(yield func(key, value string) error) error, replace bool) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []mapRow, 4)
	prodErr := make(chan error, 1)
	go func() {
		defer close(batches)
		b := make([]mapRow, 0, mapBatch)
		err := entries(func(key, value string) error {
			b = append(b, mapRow{[]byte(key), []byte(value)})
			if len(b) < mapBatch {
				return nil
			}
			select {
			case batches <- b:
				b = make([]mapRow, 0, mapBatch)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err == nil && len(b) > 0 {
			select {
			case batches <- b:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		prodErr <- err
	}()
	// drain lets the producer finish after a failure here; its error then says nothing new.
	drain := func(err error) (int64, error) {
		cancel()
		for range batches {
		}
		<-prodErr
		return 0, err
	}

	if replace {
		var n int64
		for b := range batches {
			keys, values := dedupLast(b)
			tag, err := s.pool.Exec(ctx, qMapUpsert, name, gen, keys, values)
			if err != nil {
				return drain(err)
			}
			n += tag.RowsAffected()
		}
		if err := <-prodErr; err != nil {
			return 0, err
		}
		var count int64
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM map_entry WHERE map_name = $1 AND generation = $2`, name, gen).Scan(&count)
		return count, err
	}

	var cur []mapRow
	var i int
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for i >= len(cur) {
			b, ok := <-batches
			if !ok {
				return nil, nil
			}
			cur, i = b, 0
		}
		r := cur[i]
		i++
		return []any{name, gen, r.key, r.value}, nil
	})
	n, err := s.pool.CopyFrom(ctx, pgx.Identifier{"map_entry"}, []string{"map_name", "generation", "key", "value"}, src)
	if err != nil {
		return drain(err)
	}
	if err := <-prodErr; err != nil {
		return 0, err
	}
	return n, nil
}

// dedupLast returns the batch as two arrays with each key once, keeping its last value: one INSERT … ON
// CONFLICT DO UPDATE may not touch a row twice.
func dedupLast(b []mapRow) ([][]byte, [][]byte) {
	last := make(map[string]int, len(b))
	for i, r := range b {
		last[string(r.key)] = i
	}
	keys := make([][]byte, 0, len(last))
	values := make([][]byte, 0, len(last))
	for i, r := range b {
		if last[string(r.key)] == i {
			keys = append(keys, r.key)
			values = append(values, r.value)
		}
	}
	return keys, values
}

func (s *Store) MapLookup(ctx context.Context, name, key string) (string, bool, error) {
	var v []byte
	var found bool
	err := s.pool.QueryRow(ctx, qMapLookup, name, []byte(key)).Scan(&v, &found)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("postgres: map %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", false, mapErr(name, "lookup", err)
	}
	return string(v), found, nil
}

func (s *Store) MapPut(ctx context.Context, name string, entries []store.MapEntry, p store.MapPutParams) ([]string, error) {
	var existed []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qMapEnsure, name, store.MapGeneration()); err != nil {
			return err
		}
		var gen int64
		if err := tx.QueryRow(ctx, qMapGeneration, name).Scan(&gen); err != nil {
			return err
		}
		q := qMapPutKeep
		if p.Replace {
			q = qMapPutReplace
		}
		for _, e := range entries {
			tag, err := tx.Exec(ctx, q, name, gen, []byte(e.Key), []byte(e.Value))
			if err != nil {
				return err
			}
			if !p.Replace && tag.RowsAffected() == 0 {
				existed = append(existed, e.Key)
			}
		}
		_, err := tx.Exec(ctx, qMapTouch, name)
		return err
	})
	if err != nil {
		return nil, mapErr(name, "put", err)
	}
	return existed, nil
}

func (s *Store) mapExists(ctx context.Context, name string) error {
	var gen int64
	err := s.pool.QueryRow(ctx, qMapGeneration, name).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: map %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return mapErr(name, "lookup", err)
	}
	return nil
}

func (s *Store) MapDelete(ctx context.Context, name, key string) (bool, error) {
	if err := s.mapExists(ctx, name); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, qMapDelete, name, []byte(key))
	if err != nil {
		return false, mapErr(name, "delete", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, qMapTouch, name); err != nil {
		return true, mapErr(name, "delete", err)
	}
	return true, nil
}

func (s *Store) MapList(ctx context.Context, name string, fn func(key, value string) error) error {
	if err := s.mapExists(ctx, name); err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, qMapList, name)
	if err != nil {
		return mapErr(name, "list", err)
	}
	defer rows.Close()
	var k, v []byte
	for rows.Next() {
		if err := rows.Scan(&k, &v); err != nil {
			return mapErr(name, "list", err)
		}
		if err := fn(string(k), string(v)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return mapErr(name, "list", err)
	}
	return nil
}

func (s *Store) MapNames(ctx context.Context) ([]store.MapInfo, error) {
	rows, err := s.pool.Query(ctx, qMapNames)
	if err != nil {
		return nil, fmt.Errorf("postgres: maps: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MapInfo, error) {
		var mi store.MapInfo
		var t time.Time
		err := r.Scan(&mi.Name, &t)
		mi.UpdatedAt = t.UTC()
		return mi, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: maps: %w", err)
	}
	return out, nil
}
