// Package managed is the lookup table for hash:, btree:, lmdb: and cdb: in main.cf: a table stored in
// sqlmta's own database (store.MapStore) under the map's absolute path, filled by postmap or newaliases.
//
// Lookups go through a short cache, so a storm of RCPTs for the same addresses is not a storm of queries;
// a re-import is seen on every node once the cached answers expire (Options.CacheTTL, one second by
// default). A map that was never imported is a lookup error — a temporary failure, as Postfix's missing
// .db file is — never "not found".
package managed

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/store"
)

// Types are the map types whose tables are managed in the database.
var Types = []string{"hash", "btree", "lmdb", "cdb"}

// IsType reports whether mapType names a managed table.
func IsType(mapType string) bool {
	for _, t := range Types {
		if t == mapType {
			return true
		}
	}
	return false
}

// Options tune a managed map's cache.
type Options struct {
	// CacheTTL is how long a found value is reused; 0 means 1 s, negative disables the cache.
	CacheTTL time.Duration
	// NegativeTTL is how long a "not found" is reused; 0 means CacheTTL, negative: not cached.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; 0 means 10000. When full, it is emptied: entries live a second
	// anyway.
	MaxEntries int
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Map is one opened managed table.
type Map struct {
	st   store.MapStore
	typ  string
	name string // the table's name in the database: TableName(name)
	opts Options

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value   string
	found   bool
	expires time.Time
}

var _ mapdrivers.Map = (*Map)(nil)

// TableName is the name a map file's table has in the database: the path made absolute and cleaned, so
// that postmap run from any directory and main.cf agree. Postfix's "postmap hash:virtual.db" style suffix
// is not stripped: Postfix itself would look for virtual.db.db.
func TableName(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}

// Open returns the managed table mapType:name over st. It does not touch the database: a missing table is
// reported by the first lookup.
func Open(st store.MapStore, mapType, name string, opts Options) *Map {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Second
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = opts.CacheTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Map{st: st, typ: mapType, name: TableName(name), opts: opts, cache: map[string]cached{}}
}

// Name is the table's name in the database.
func (m *Map) Name() string { return m.name }

func (m *Map) String() string { return m.typ + ":" + m.name }

// Props: keys are lowercased by the caller before lookup, as for every fixed-string table.
func (m *Map) Props() mapdrivers.Props { return mapdrivers.Props{FoldCase: true} }

func (m *Map) Close() error {
	m.mu.Lock()
	m.cache = map[string]cached{}
	m.mu.Unlock()
	return nil
}

// Lookup returns key's value. Errors are never cached: the next lookup asks the database again.
func (m *Map) Lookup(ctx context.Context, key string) (string, bool, error) {
	now := m.opts.Now()
	if m.opts.CacheTTL > 0 {
		m.mu.Lock()
		c, ok := m.cache[key]
		m.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.value, c.found, nil
		}
	}
	v, found, err := m.st.MapLookup(ctx, m.name, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", false, fmt.Errorf("%s: table not imported (run postmap %s): %w", m, m.typ+":"+m.name, err)
		}
		return "", false, fmt.Errorf("%s: lookup %q: %w", m, key, err)
	}
	if m.opts.CacheTTL > 0 {
		ttl := m.opts.CacheTTL
		if !found {
			ttl = m.opts.NegativeTTL
		}
		if ttl > 0 {
			m.mu.Lock()
			if len(m.cache) >= m.opts.MaxEntries {
				clear(m.cache)
			}
			m.cache[key] = cached{value: v, found: found, expires: now.Add(ttl)}
			m.mu.Unlock()
		}
	}
	return v, found, nil
}

// ParseRef splits a "type:name" reference to a managed table; ok is false for other types.
func ParseRef(ref string) (mapType, name string, ok bool) {
	mapType, name, found := strings.Cut(ref, ":")
	if !found || !IsType(mapType) || name == "" {
		return "", "", false
	}
	return mapType, name, true
}
