// Package migrations holds the goose SQL migrations of every dialect, embedded so that the binaries carry
// their schema. Each dialect's files live in their own directory with the same numbering and meaning;
// store/open runs them with goose's Provider.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

// The embedded trees; FS returns the one directory goose reads for a dialect.
var (
	//go:embed postgres/*.sql
	Postgres embed.FS
	//go:embed mysql/*.sql
	MySQL embed.FS
	//go:embed sqlite/*.sql
	SQLite embed.FS
)

// FS returns the migrations of dialect ("postgres", "mysql" or "sqlite") with the .sql files at its root,
// as goose.NewProvider expects.
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case "postgres":
		return fs.Sub(Postgres, "postgres")
	case "mysql":
		return fs.Sub(MySQL, "mysql")
	case "sqlite":
		return fs.Sub(SQLite, "sqlite")
	}
	return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
}
