// Package sqlite is the queue store on an embedded SQLite file (modernc.org/sqlite, no cgo), for a single
// node. WAL mode lets readers run beside the one writer; synchronous=FULL makes a commit durable before
// Enqueue returns, so a 250 reply never outruns the disk.
//
// Two pools: writes go through ONE connection, so our own writers queue in Go instead of spinning on
// SQLITE_BUSY, and every write transaction starts IMMEDIATE (it takes the write lock at BEGIN and cannot
// fail later on a lock upgrade); reads (content chunks, MessageGet, NextDue) use a small read-only pool and
// never wait behind a large enqueue.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite"

	"sqlmta/store"
	"sqlmta/store/internal/migrate"
	"sqlmta/store/internal/sqldb"
)

// Store is the SQLite queue store.
type Store struct {
	*sqldb.Store
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Holder = (*Store)(nil)
)

var dialect = sqldb.Dialect{
	Name:   "sqlite",
	Q:      queries,
	Dead:   deadQueries,
	Verify: verifyQueries,
	Time:   func(t time.Time) any { return t.UTC().UnixMicro() },
	IsDuplicate: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && se.Code() == 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	},
	BatchSize: 1000,
}

// Path returns the file a sqlite: database_url names.
func Path(databaseURL string) (string, error) {
	p, ok := strings.CutPrefix(databaseURL, "sqlite:")
	if !ok {
		return "", fmt.Errorf("sqlite: database_url %q does not start with sqlite:", databaseURL)
	}
	if strings.HasPrefix(p, "//") { // sqlite:///path written as a URL
		p = strings.TrimPrefix(p, "//")
	}
	if p == "" || strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("sqlite: database_url %q: want sqlite:/path/file.db", databaseURL)
	}
	return p, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func openDB(ctx context.Context, databaseURL string, readOnly bool) (*sql.DB, error) {
	path, err := Path(databaseURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(path, readOnly))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return db, nil
}

// Open opens (creating when absent) the file databaseURL names. It does not migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	w, err := openDB(ctx, databaseURL, false)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := openDB(ctx, databaseURL, true)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	return &Store{sqldb.New(dialect, w, r)}, nil
}

// Migrate applies the pending migrations, creating the file when absent.
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := openDB(ctx, databaseURL, false)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return migrate.Up(ctx, db, "sqlite")
}

// MigrateStatus writes the migrations' state to w.
func MigrateStatus(ctx context.Context, databaseURL string, w io.Writer) error {
	db, err := openDB(ctx, databaseURL, false)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return migrate.Status(ctx, db, "sqlite", w)
}
