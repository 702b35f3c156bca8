// Package testdb gives each test its own fresh database on the throwaway servers that scripts/testdb.sh
// starts (SQLMTA_TEST_PG_URL, SQLMTA_TEST_MYSQL_URL), or a SQLite file in the test's temp dir.
//
// When a server's variable is unset the test is skipped, except under CI (CI non-empty), where a skipped
// database test would hide a failure: there it fails.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

const (
	envPG    = "SQLMTA_TEST_PG_URL"
	envMySQL = "SQLMTA_TEST_MYSQL_URL"
)

func serverURL(t testing.TB, env string) string {
	t.Helper()
	u := os.Getenv(env)
	if u != "" {
		return u
	}
	msg := fmt.Sprintf("%s is not set: start the test databases with scripts/testdb.sh start && eval \"$(scripts/testdb.sh env)\"", env)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// dbName is unique across parallel tests and packages: a random suffix, lowercase for both servers.
func dbName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "sqlmta_test_" + hex.EncodeToString(b)
}

// PostgresURL creates a fresh database on the PostgreSQL test server, drops it when the test ends, and
// returns its database_url (postgres://…/dbname?sslmode=disable).
func PostgresURL(t testing.TB) string {
	t.Helper()
	server := serverURL(t, envPG)
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("testdb: %s: %v", envPG, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("testdb: connecting to %s: %v", envPG, err)
	}
	defer conn.Close(context.Background())
	name := dbName()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("testdb: dropping %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE: a pool the test forgot to close must not keep the database alive.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: dropping %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// MySQLURL creates a fresh database on the MariaDB/MySQL test server, drops it when the test ends, and
// returns its database_url (mysql://user:pass@tcp(host:port)/dbname).
func MySQLURL(t testing.TB) string {
	t.Helper()
	server := serverURL(t, envMySQL)
	cfg, err := mysql.ParseDSN(strings.TrimPrefix(server, "mysql://"))
	if err != nil {
		t.Fatalf("testdb: %s: %v", envMySQL, err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := dbName()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		db.Close()
		t.Fatalf("testdb: connecting to %s: %v", envMySQL, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("testdb: dropping %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN()
}

// SQLiteURL returns a database_url for a new SQLite file in the test's temp dir.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "sqlmta.db")
}
