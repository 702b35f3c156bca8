package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/testdb"

	_ "modernc.org/sqlite"
)

// TestMapCheck names a managed table, a cidr file and an sqlite: .cf map
// in main.cf; check reports the .cf whose query names a missing column,
// and passes once it is fixed.
func TestMapCheck(t *testing.T) {
	data := t.TempDir()
	dir := t.TempDir()
	virtual := filepath.Join(dir, "virtual")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("virtual", "info@example.com alice@example.com\n")
	write("clients.cidr", "192.0.2.0/24 REJECT\n")
	// The operator's own table, in its own SQLite file.
	ownDB := filepath.Join(data, "own.db")
	db := testdbOpenSQLite(t, ownDB)
	if _, err := db.Exec(`CREATE TABLE aliases (address TEXT, goto TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cf := write("aliases.cf", "dbpath = "+ownDB+"\nquery = SELECT goto FROM aliases WHERE adress = '%s'\n")
	write("main.cf", strings.Join([]string{
		"data_directory = " + data,
		"database_url = " + testdb.SQLiteURL(t),
		"virtual_alias_maps = hash:" + virtual + ", sqlite:" + cf,
		"smtpd_client_restrictions = check_client_access cidr:" + filepath.Join(dir, "clients.cidr"),
	}, "\n")+"\n")

	if out, errs, code := mtactl(t, "-c", dir, "map", "import", virtual); code != 0 {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	out, errs, code := mtactl(t, "-c", dir, "map", "check")
	if code != 1 || out != "3 tables checked, 1 failed\n" || !strings.Contains(errs, "virtual_alias_maps: sqlite:"+cf) || !strings.Contains(errs, "adress") {
		t.Errorf("check with a bad column: %d %q %q", code, out, errs)
	}
	write("aliases.cf", "dbpath = "+ownDB+"\nquery = SELECT goto FROM aliases WHERE address = '%s'\n")
	out, errs, code = mtactl(t, "-c", dir, "map", "check")
	if code != 0 || out != "3 tables checked, 0 failed\n" {
		t.Errorf("check after the fix: %d %q %q", code, out, errs)
	}
	// Any table type can be queried, as with postmap -q.
	out, _, code = mtactl(t, "-c", dir, "map", "query", "192.0.2.9", "cidr:"+filepath.Join(dir, "clients.cidr"))
	if code != 0 || out != "REJECT\n" {
		t.Errorf("query cidr: %d %q", code, out)
	}
}

func testdbOpenSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestPostfixCheck: `postfix check` passes on a sound configuration, and
// fails naming the problem for a maildrop with the wrong mode and for a
// table main.cf names that was never imported.
func TestPostfixCheck(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	mainCf := strings.Join([]string{
		"data_directory = " + filepath.Join(dir, "data"),
		"queue_directory = " + spool,
		"database_url = " + testdb.SQLiteURL(t),
		"alias_maps =",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := mtactl(t, "-c", dir, "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	if _, errs, code := mtactl(t, "-c", dir, "postfix", "check"); code != 0 || strings.Contains(errs, "maildrop") {
		t.Errorf("check of a sound configuration: %d %q", code, errs)
	}

	md := filepath.Join(spool, "maildrop")
	if err := os.MkdirAll(md, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(md, 0o777)
	_, errs, code := mtactl(t, "-c", dir, "postfix", "check")
	if code != 1 || !strings.Contains(errs, "postfix/postfix-script: warning: "+md+": mode drwxrwxrwx, want drwx-wx--T (1730)") {
		t.Errorf("check with a world-writable maildrop: %d %q", code, errs)
	}
	if err := os.Chmod(md, 0o730|os.ModeSticky); err != nil {
		t.Fatal(err)
	}

	virtual := filepath.Join(dir, "virtual")
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCf+"virtual_alias_maps = hash:"+virtual+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := mtactl(t, "-c", dir, "postfix", "check"); code == 0 || !strings.Contains(errs, "virtual_alias_maps: hash:"+virtual) {
		t.Errorf("check with a table never imported: %d %q", code, errs)
	}
}
