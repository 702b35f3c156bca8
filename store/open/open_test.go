package open

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"sqlmta/internal/testdb"
)

func TestDialect(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://u@h/db":            "postgres",
		"postgresql://u@h/db":          "postgres",
		"mysql://u:p@tcp(h:3306)/db":   "mysql",
		"sqlite:/var/lib/sqlmta.db":    "sqlite",
		"sqlite:relative/dir/queue.db": "sqlite",
	} {
		if got, err := Dialect(url); err != nil || got != want {
			t.Errorf("Dialect(%q) = %q, %v; want %q", url, got, err, want)
		}
	}
	for _, url := range []string{"", "oracle://x", "/var/lib/sqlmta.db", "sqlite3:/x.db"} {
		if _, err := Dialect(url); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
			t.Errorf("Dialect(%q) err = %v, want unknown scheme", url, err)
		}
		if _, err := Open(context.Background(), url); err == nil {
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}

// Migrate is idempotent and MigrateStatus reports every migration applied, on each dialect.
func TestMigrateAndStatus(t *testing.T) {
	for name, newURL := range map[string]func(testing.TB) string{
		"postgres": testdb.PostgresURL,
		"mysql":    testdb.MySQLURL,
		"sqlite":   testdb.SQLiteURL,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			var before bytes.Buffer
			if err := MigrateStatus(ctx, url, &before); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(before.String(), "pending") {
				t.Errorf("status before migrating:\n%s\nwant pending", before.String())
			}
			for i := 0; i < 2; i++ {
				if err := Migrate(ctx, url); err != nil {
					t.Fatalf("Migrate #%d: %v", i+1, err)
				}
			}
			var after bytes.Buffer
			if err := MigrateStatus(ctx, url, &after); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(after.String(), "pending") || !strings.Contains(after.String(), "00001_queue.sql") {
				t.Errorf("status after migrating:\n%s", after.String())
			}
			s, err := Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Dialect() != name {
				t.Errorf("Dialect() = %q, want %q", s.Dialect(), name)
			}
			if _, ok, err := s.NextDue(ctx); err != nil || ok {
				t.Errorf("NextDue on a fresh queue = %v, %v", ok, err)
			}
		})
	}
}
