// Package teststore gives tests a real, migrated queue store on a fresh
// SQLite file of their own, closed when the test ends.
package teststore

import (
	"context"
	"testing"

	"sqlmta/internal/testdb"
	"sqlmta/store"
	"sqlmta/store/open"
)

// SQLite migrates and opens a store on a new SQLite database file.
func SQLite(t testing.TB) store.Store {
	t.Helper()
	return Open(t, testdb.SQLiteURL(t))
}

// Open migrates the database at url and opens a store on it.
func Open(t testing.TB, url string) store.Store {
	t.Helper()
	ctx := context.Background()
	if err := open.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := open.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
