package open_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"sqlmta/mapdrivers/open"

	_ "modernc.org/sqlite"
)

// TestOpenerSQLDomainTable opens an sqlite: table whose domain list names a
// texthash: table; the opener opens that one too (through itself, without
// deadlocking) and only keys in listed domains are queried.
func TestOpenerSQLDomainTable(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "own.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE virtual (address TEXT PRIMARY KEY, goto TEXT)`,
		`INSERT INTO virtual VALUES ('info@example.com', 'alice@example.net'), ('info@other.org', 'bob@example.net')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	doms := write("domains", "example.com ok\n")
	cf := write("virtual.cf", "dbpath = "+dbPath+"\nquery = SELECT goto FROM virtual WHERE address = '%s'\ndomain = texthash:"+doms+"\n")

	o := &open.Opener{}
	defer o.Close()
	ctx := context.Background()
	m, err := o.Open(ctx, "sqlite:"+cf)
	if err != nil {
		t.Fatal(err)
	}
	if v, found, err := m.Lookup(ctx, "info@example.com"); err != nil || !found || v != "alice@example.net" {
		t.Errorf("listed domain: %q %v %v", v, found, err)
	}
	if v, found, err := m.Lookup(ctx, "info@other.org"); err != nil || found {
		t.Errorf("unlisted domain was queried: %q %v %v", v, found, err)
	}
	again, err := o.Open(ctx, "sqlite:"+cf)
	if err != nil || again != m {
		t.Errorf("second Open gave another table (%v)", err)
	}
}
