// Package mysql is the queue store on MariaDB (10.6+) or MySQL 8, over database/sql and go-sql-driver.
// Connections run at READ COMMITTED: a queue wants each statement to see the latest commits, and it avoids
// REPEATABLE READ's gap locks, which turn concurrent claims and completions into deadlocks.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"sqlmta/store"
	"sqlmta/store/internal/migrate"
	"sqlmta/store/internal/sqldb"
)

// Store is the MySQL/MariaDB queue store.
type Store struct {
	*sqldb.Store
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Holder = (*Store)(nil)
)

var dialect = sqldb.Dialect{
	Name:   "mysql",
	Q:      queries,
	Dead:   deadQueries,
	Verify: verifyQueries,
	// DATETIME(6) holds UTC; the driver writes times in its Loc, which Open pins to UTC.
	Time: func(t time.Time) any { return store.DBTime(t) },
	IsDuplicate: func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && me.Number == 1062 // ER_DUP_ENTRY
	},
	// InnoDB picks a deadlock victim when a claim (secondary index, then row) and a completion (row, then
	// index entries) cross; the victim's transaction is simply run again.
	IsRetryable: func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
	},
	BatchSize: 1000,
}

// Config parses databaseURL (mysql://user:pass@tcp(host:port)/db?params) into a driver config with what the
// store needs: parsed UTC times and client-side parameter interpolation (one round trip per statement
// instead of prepare + execute + close).
func Config(databaseURL string) (*mysql.Config, error) {
	dsn, ok := strings.CutPrefix(databaseURL, "mysql://")
	if !ok {
		return nil, fmt.Errorf("mysql: database_url %q does not start with mysql://", databaseURL)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("mysql: database_url %q names no database", databaseURL)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	return cfg, nil
}

// Open connects to databaseURL. It does not migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	db, err := openDB(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{sqldb.New(dialect, db, db)}, nil
}

// openDB opens a pool whose connections run at READ COMMITTED. MariaDB before 11.1 calls the variable
// tx_isolation, MySQL 8 only transaction_isolation: try one, then the other.
func openDB(ctx context.Context, databaseURL string) (*sql.DB, error) {
	cfg, err := Config(databaseURL)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, v := range []string{"tx_isolation", "transaction_isolation"} {
		c := cfg.Clone()
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params[v] = "'READ-COMMITTED'"
		conn, err := mysql.NewConnector(c)
		if err != nil {
			return nil, fmt.Errorf("mysql: %w", err)
		}
		db := sql.OpenDB(conn)
		if err = db.PingContext(ctx); err == nil {
			return db, nil
		}
		db.Close()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1193 { // ER_UNKNOWN_SYSTEM_VARIABLE
			return nil, fmt.Errorf("mysql: %w", err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("mysql: setting READ COMMITTED: %w", firstErr)
}

// Migrate applies the pending migrations.
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := openDB(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return migrate.Up(ctx, db, "mysql")
}

// MigrateStatus writes the migrations' state to w.
func MigrateStatus(ctx context.Context, databaseURL string, w io.Writer) error {
	db, err := openDB(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return migrate.Status(ctx, db, "mysql", w)
}
