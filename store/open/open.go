// Package open picks the queue store's dialect from a database_url: postgres:// or postgresql://,
// mysql://user:pass@tcp(host:port)/db, or sqlite:/path/file.db. Opening never migrates; the daemon and
// `mtactl migrate up` call Migrate first.
package open

import (
	"context"
	"fmt"
	"io"
	"strings"

	"sqlmta/store"
	"sqlmta/store/mysql"
	"sqlmta/store/postgres"
	"sqlmta/store/sqlite"
)

// Dialect returns "postgres", "mysql" or "sqlite" for databaseURL, or an error naming the accepted forms.
func Dialect(databaseURL string) (string, error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return "postgres", nil
	case strings.HasPrefix(databaseURL, "mysql://"):
		return "mysql", nil
	case strings.HasPrefix(databaseURL, "sqlite:"):
		return "sqlite", nil
	}
	scheme, _, ok := strings.Cut(databaseURL, ":")
	if !ok {
		scheme = databaseURL
	}
	return "", fmt.Errorf("database_url: unknown scheme %q: want postgres://…, mysql://user:pass@tcp(host:port)/db or sqlite:/path/file.db", scheme)
}

// Open opens the store databaseURL names.
func Open(ctx context.Context, databaseURL string) (store.Store, error) {
	d, err := Dialect(databaseURL)
	if err != nil {
		return nil, err
	}
	switch d {
	case "postgres":
		return postgres.Open(ctx, databaseURL)
	case "mysql":
		return mysql.Open(ctx, databaseURL)
	default:
		return sqlite.Open(ctx, databaseURL)
	}
}

// Migrate applies the pending migrations of databaseURL's dialect.
func Migrate(ctx context.Context, databaseURL string) error {
	d, err := Dialect(databaseURL)
	if err != nil {
		return err
	}
	switch d {
	case "postgres":
		return postgres.Migrate(ctx, databaseURL)
	case "mysql":
		return mysql.Migrate(ctx, databaseURL)
	default:
		return sqlite.Migrate(ctx, databaseURL)
	}
}

// MigrateStatus writes one line per migration (version, state, applied time, file) to w.
func MigrateStatus(ctx context.Context, databaseURL string, w io.Writer) error {
	d, err := Dialect(databaseURL)
	if err != nil {
		return err
	}
	switch d {
	case "postgres":
		return postgres.MigrateStatus(ctx, databaseURL, w)
	case "mysql":
		return mysql.MigrateStatus(ctx, databaseURL, w)
	default:
		return sqlite.MigrateStatus(ctx, databaseURL, w)
	}
}
