package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"sqlmta/store"
)

// MapQueries is one dialect's SQL for the managed lookup tables (store.MapStore). "?" placeholders.
type MapQueries struct {
	Insert      string // prefix of a multi-row INSERT; followed by Row joined by ","
	Row         string // map_name, generation, key, value
	Upsert      string // suffix after the rows: a later duplicate key replaces the value
	Keep        string // suffix after one row: an existing key is left alone and no row is affected
	Flip        string // name, generation, now → one row affected, or none when a newer generation won
	DeleteOld   string // name, generation: older generations
	DeleteGen   string // name, generation: one generation (a failed import)
	Count       string // name, generation → entries
	Ensure      string // name, generation, now: create the map when absent
	Touch       string // now, name
	Generation  string // name → current generation
	Lookup      string // key, name → value, NULL when the key is absent; no row when the map is
	Delete      string // name, name, key
	List        string // name → key, value of the current generation, ordered by key
	Names       string // → name, updated_at
	ImportBatch int    // rows per INSERT
	ImportTx    int    // rows per transaction: between them the writer is free for the queue
}

// Maps implements store.MapStore for one dialect's Store.
type Maps struct {
	s *Store
	q MapQueries
}

// Maps returns the managed-map side of s with q as its SQL.
func (s *Store) Maps(q MapQueries) *Maps { return &Maps{s: s, q: q} }

func (m *Maps) now() any { return m.s.d.Time(store.DBTime(time.Now())) }

func (m *Maps) MapImport(ctx context.Context, name string, entries func(yield func(key, value string) error) error, p store.MapImportParams) (int64, error) {
	gen := store.MapGeneration()
	n, err := m.insert(ctx, name, gen, entries, p.Replace)
	if err == nil {
		err = m.flip(ctx, name, gen)
	}
	if err != nil {
		// Never flipped: nobody sees these rows. Clean up without the caller's (maybe cancelled) context.
		if _, derr := m.s.w.ExecContext(context.WithoutCancel(ctx), m.q.DeleteGen, name, gen); derr != nil {
			err = errors.Join(err, derr)
		}
		return n, m.s.errf("map %s: import: %w", name, err)
	}
	if _, err := m.s.w.ExecContext(ctx, m.q.DeleteOld, name, gen); err != nil {
		return n, m.s.errf("map %s: deleting old generations: %w", name, err)
	}
	return n, nil
}

// insert writes the entries under gen in batches of ImportBatch rows, committing every ImportTx rows.
func (m *Maps) insert(ctx context.Context, name string, gen int64, entries func(yield func(key, value string) error) error, replace bool) (int64, error) {
	batch := m.q.ImportBatch
	full := m.q.Insert + strings.TrimSuffix(strings.Repeat(m.q.Row+",", batch), ",")
	if replace {
		full += m.q.Upsert
	}
	var (
		tx    *sql.Tx
		stmt  *sql.Stmt
		args  = make([]any, 0, 4*batch)
		inTx  int
		total int64
	)
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	flush := func() error {
		rows := len(args) / 4
		if rows == 0 {
			return nil
		}
		var err error
		if tx == nil {
			if tx, err = m.s.w.BeginTx(ctx, nil); err != nil {
				return err
			}
			stmt = nil
		}
		if rows == batch {
			if stmt == nil {
				if stmt, err = tx.PrepareContext(ctx, full); err != nil {
					return err
				}
			}
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			q := m.q.Insert + strings.TrimSuffix(strings.Repeat(m.q.Row+",", rows), ",")
			if replace {
				q += m.q.Upsert
			}
			_, err = tx.ExecContext(ctx, q, args...)
		}
		if err != nil {
			return err
		}
		total += int64(rows)
		args = args[:0]
		if inTx += rows; inTx >= m.q.ImportTx {
			inTx = 0
			t := tx
			tx, stmt = nil, nil
			return t.Commit()
		}
		return nil
	}
	err := entries(func(key, value string) error {
		args = append(args, name, gen, key, value)
		if len(args) == 4*batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && tx != nil {
		t := tx
		tx = nil
		err = t.Commit()
	}
	if err == nil && replace {
		// Upserts wrote duplicates over earlier rows: count what is there.
		err = m.s.w.QueryRowContext(ctx, m.q.Count, name, gen).Scan(&total)
	}
	return total, err
}

func (m *Maps) flip(ctx context.Context, name string, gen int64) error {
	res, err := m.s.w.ExecContext(ctx, m.q.Flip, name, gen, m.now())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrMapSuperseded
	}
	return nil
}

func (m *Maps) MapLookup(ctx context.Context, name, key string) (string, bool, error) {
	var v sql.NullString
	err := m.s.r.QueryRowContext(ctx, m.q.Lookup, key, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, m.s.errf("map %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", false, m.s.errf("map %s: lookup: %w", name, err)
	}
	return v.String, v.Valid, nil
}

func (m *Maps) MapPut(ctx context.Context, name string, entries []store.MapEntry, p store.MapPutParams) ([]string, error) {
	var existed []string
	err := m.s.tx(ctx, func(tx *sql.Tx) error {
		existed = existed[:0] // a run again after a deadlock starts afresh
		now := m.now()
		if _, err := tx.ExecContext(ctx, m.q.Ensure, name, store.MapGeneration(), now); err != nil {
			return err
		}
		var gen int64
		if err := tx.QueryRowContext(ctx, m.q.Generation, name).Scan(&gen); err != nil {
			return err
		}
		suffix := m.q.Keep
		if p.Replace {
			suffix = m.q.Upsert
		}
		stmt, err := tx.PrepareContext(ctx, m.q.Insert+m.q.Row+suffix)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			res, err := stmt.ExecContext(ctx, name, gen, e.Key, e.Value)
			if err != nil {
				return err
			}
			if !p.Replace {
				if n, err := res.RowsAffected(); err != nil {
					return err
				} else if n == 0 {
					existed = append(existed, e.Key)
				}
			}
		}
		_, err = tx.ExecContext(ctx, m.q.Touch, now, name)
		return err
	})
	if err != nil {
		return nil, m.s.errf("map %s: put: %w", name, err)
	}
	return existed, nil
}

func (m *Maps) MapDelete(ctx context.Context, name, key string) (bool, error) {
	if err := m.exists(ctx, name); err != nil {
		return false, err
	}
	res, err := m.s.w.ExecContext(ctx, m.q.Delete, name, name, key)
	if err != nil {
		return false, m.s.errf("map %s: delete: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, m.s.errf("map %s: delete: %w", name, err)
	}
	if n > 0 {
		if _, err := m.s.w.ExecContext(ctx, m.q.Touch, m.now(), name); err != nil {
			return true, m.s.errf("map %s: delete: %w", name, err)
		}
	}
	return n > 0, nil
}

func (m *Maps) exists(ctx context.Context, name string) error {
	var gen int64
	err := m.s.r.QueryRowContext(ctx, m.q.Generation, name).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return m.s.errf("map %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return m.s.errf("map %s: %w", name, err)
	}
	return nil
}

func (m *Maps) MapList(ctx context.Context, name string, fn func(key, value string) error) error {
	if err := m.exists(ctx, name); err != nil {
		return err
	}
	rows, err := m.s.r.QueryContext(ctx, m.q.List, name)
	if err != nil {
		return m.s.errf("map %s: list: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return m.s.errf("map %s: list: %w", name, err)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return m.s.errf("map %s: list: %w", name, err)
	}
	return nil
}

func (m *Maps) MapNames(ctx context.Context) ([]store.MapInfo, error) {
	rows, err := m.s.r.QueryContext(ctx, m.q.Names)
	if err != nil {
		return nil, m.s.errf("maps: %w", err)
	}
	defer rows.Close()
	var out []store.MapInfo
	for rows.Next() {
		var mi store.MapInfo
		var t dbTime
		if err := rows.Scan(&mi.Name, &t); err != nil {
			return nil, m.s.errf("maps: %w", err)
		}
		mi.UpdatedAt = t.t
		out = append(out, mi)
	}
	if err := rows.Err(); err != nil {
		return nil, m.s.errf("maps: %w", err)
	}
	return out, nil
}

var _ store.MapStore = (*Maps)(nil)
