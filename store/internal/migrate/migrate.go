// Package migrate runs the embedded goose migrations of one dialect on a *sql.DB, through goose's Provider
// (no global goose state).
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"sqlmta/migrations"
)

func provider(db *sql.DB, dialect string) (*goose.Provider, error) {
	fsys, err := migrations.FS(dialect)
	if err != nil {
		return nil, err
	}
	var gd goose.Dialect
	var opts []goose.ProviderOption
	switch dialect {
	case "postgres":
		gd = goose.DialectPostgres
		// Several nodes may start at once: one migrates, the others wait on an advisory lock.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case "mysql":
		gd = goose.DialectMySQL
	case "sqlite":
		gd = goose.DialectSQLite3
	}
	return goose.NewProvider(gd, db, fsys, opts...)
}

// Up applies every pending migration.
func Up(ctx context.Context, db *sql.DB, dialect string) error {
	p, err := provider(db, dialect)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	return nil
}

// Status writes one line per migration: version, state, applied time, file.
func Status(ctx context.Context, db *sql.DB, dialect string, w io.Writer) error {
	p, err := provider(db, dialect)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dialect, err)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED\tFILE")
	for _, s := range st {
		applied := "-"
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, s.Source.Path)
	}
	return tw.Flush()
}
