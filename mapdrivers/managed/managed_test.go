package managed_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/testdb"
	"sqlmta/mapdrivers/managed"
	"sqlmta/store"
	"sqlmta/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	url := testdb.SQLiteURL(t)
	ctx := context.Background()
	if err := sqlite.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func importMap(t *testing.T, st store.MapStore, name string, kv ...string) {
	t.Helper()
	_, err := st.MapImport(context.Background(), name, func(yield func(k, v string) error) error {
		for i := 0; i < len(kv); i += 2 {
			if err := yield(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		return nil
	}, store.MapImportParams{})
	if err != nil {
		t.Fatal(err)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func want(t *testing.T, m *managed.Map, key string, wantFound bool, wantV string) {
	t.Helper()
	v, found, err := m.Lookup(context.Background(), key)
	if err != nil || found != wantFound || v != wantV {
		t.Errorf("Lookup(%q) = %q, %v, %v; want %q, %v", key, v, found, err, wantV, wantFound)
	}
}

func TestLookupAndCache(t *testing.T) {
	st := openStore(t)
	importMap(t, st, "/etc/postfix/virtual", "a@example.com", "alice", "b@example.com", "")
	c := &clock{t: time.Unix(1e9, 0)}
	m := managed.Open(st, "hash", "/etc/postfix/../postfix/virtual", managed.Options{Now: c.now})
	defer m.Close()
	if m.Name() != "/etc/postfix/virtual" || !m.Props().FoldCase || m.Props().Pattern {
		t.Fatalf("name %q props %+v", m.Name(), m.Props())
	}
	want(t, m, "a@example.com", true, "alice")
	want(t, m, "b@example.com", true, "")
	want(t, m, "c@example.com", false, "")

	// A re-import is not seen while the answers are cached, and is seen once they expire.
	importMap(t, st, "/etc/postfix/virtual", "a@example.com", "alex", "c@example.com", "carol")
	want(t, m, "a@example.com", true, "alice")
	want(t, m, "c@example.com", false, "")
	c.add(time.Second)
	want(t, m, "a@example.com", true, "alex")
	want(t, m, "b@example.com", false, "")
	want(t, m, "c@example.com", true, "carol")
}

func TestNoCache(t *testing.T) {
	st := openStore(t)
	importMap(t, st, "/m", "k", "1")
	m := managed.Open(st, "btree", "/m", managed.Options{CacheTTL: -1})
	want(t, m, "k", true, "1")
	importMap(t, st, "/m", "k", "2")
	want(t, m, "k", true, "2")
}

func TestRelativeName(t *testing.T) {
	st := openStore(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	importMap(t, st, filepath.Join(wd, "aliases"), "root", "admin")
	m := managed.Open(st, "hash", "./aliases", managed.Options{})
	want(t, m, "root", true, "admin")
}

// A table that was never imported is an error (a temporary failure for smtpd), never "not found", and
// the error is not cached: an import makes the next lookup succeed.
func TestMissingTableIsError(t *testing.T) {
	st := openStore(t)
	m := managed.Open(st, "hash", "/etc/postfix/access", managed.Options{})
	_, found, err := m.Lookup(context.Background(), "k")
	if err == nil || found || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup in a missing table: found %v err %v", found, err)
	}
	importMap(t, st, "/etc/postfix/access", "k", "OK")
	want(t, m, "k", true, "OK")
}

// A closed database gives an error, not "not found".
func TestDatabaseErrorIsError(t *testing.T) {
	st := openStore(t)
	importMap(t, st, "/m", "k", "1")
	m := managed.Open(st, "hash", "/m", managed.Options{CacheTTL: -1})
	st.Close()
	if _, found, err := m.Lookup(context.Background(), "k"); err == nil || found {
		t.Fatalf("lookup on a closed store: found %v err %v", found, err)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref, typ, name string
		ok             bool
	}{
		{"hash:/etc/aliases", "hash", "/etc/aliases", true},
		{"cdb:/x", "cdb", "/x", true},
		{"lmdb:rel", "lmdb", "rel", true},
		{"pgsql:/etc/x.cf", "", "", false},
		{"hash:", "", "", false},
		{"/etc/aliases", "", "", false},
	} {
		typ, name, ok := managed.ParseRef(tc.ref)
		if typ != tc.typ || name != tc.name || ok != tc.ok {
			t.Errorf("ParseRef(%q) = %q %q %v", tc.ref, typ, name, ok)
		}
	}
}
