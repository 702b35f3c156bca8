package store

import (
	"context"
	"errors"
	"time"
)

// Managed lookup tables: the hash:, btree:, lmdb: and cdb: maps of main.cf, filled by postmap and newaliases.
//
// Two tables: map_table (one row per map: its name and current generation) and map_entry (key, value and
// generation). An import writes every entry under a new generation, then flips map_table.generation in one
// short statement and deletes the older generations; a lookup joins the two tables in one statement, so it
// sees the old table or the new one, never a mix. A failed import is never flipped: nothing changes.

// ErrMapSuperseded is returned by MapImport when a newer import of the same map was flipped first; this
// import's entries were discarded.
var ErrMapSuperseded = errors.New("store: a newer import of the map won")

// MapStore stores managed lookup tables. Every dialect's *Store implements it. A missing map gives
// ErrNotFound (wrapped) from MapLookup, MapList and MapDelete.
type MapStore interface {
	// MapImport replaces the map name with the entries that entries yields, atomically. entries may be
	// large: it is streamed (PostgreSQL COPY, batched INSERTs elsewhere). Keys must be unique unless
	// p.Replace (then the last value of a key wins). If entries or yield fails, the map is left as it was.
	// It returns the number of entries the new generation holds.
	MapImport(ctx context.Context, name string, entries func(yield func(key, value string) error) error, p MapImportParams) (int64, error)
	// MapLookup returns the value of key in the current generation of map name.
	MapLookup(ctx context.Context, name, key string) (value string, found bool, err error)
	// MapPut adds entries to the current generation in place (postmap -i), creating the map when absent,
	// in one transaction. Without p.Replace an existing key keeps its value and is returned in existed.
	MapPut(ctx context.Context, name string, entries []MapEntry, p MapPutParams) (existed []string, err error)
	// MapDelete removes key from the current generation (postmap -d); false when it was absent.
	MapDelete(ctx context.Context, name, key string) (bool, error)
	// MapList calls fn for every entry of the current generation, ordered by key (postmap -s).
	MapList(ctx context.Context, name string, fn func(key, value string) error) error
	// MapNames lists the maps, ordered by name.
	MapNames(ctx context.Context) ([]MapInfo, error)
}

// MapImportParams tune MapImport.
type MapImportParams struct {
	// Replace lets a later duplicate key overwrite an earlier one (postmap -r). Without it a duplicate key
	// is an error: callers that want postmap's "warn and keep the first" drop duplicates themselves.
	Replace bool
}

// MapPutParams tune MapPut.
type MapPutParams struct {
	Replace bool // overwrite existing keys (postmap -i -r)
}

// MapEntry is one key and value.
type MapEntry struct {
	Key, Value string
}

// MapInfo describes one stored map.
type MapInfo struct {
	Name      string
	UpdatedAt time.Time
}

// MapGeneration returns a new import generation. Generations only need to grow between imports of one
// map: the flip keeps the larger one, so of two concurrent imports the later-started wins and the other
// gets ErrMapSuperseded.
func MapGeneration() int64 { return time.Now().UnixNano() }
