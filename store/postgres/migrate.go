package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"sqlmta/store/internal/migrate"
)

// Migrate applies the pending migrations. goose needs a *sql.DB: it gets one through pgx's stdlib adapter,
// for the migration only; the store itself uses pgxpool.
func Migrate(ctx context.Context, databaseURL string) error {
	return withDB(databaseURL, func(db *sql.DB) error { return migrate.Up(ctx, db, "postgres") })
}

// MigrateStatus writes the migrations' state to w.
func MigrateStatus(ctx context.Context, databaseURL string, w io.Writer) error {
	return withDB(databaseURL, func(db *sql.DB) error { return migrate.Status(ctx, db, "postgres", w) })
}

func withDB(databaseURL string, fn func(*sql.DB) error) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return fn(db)
}
