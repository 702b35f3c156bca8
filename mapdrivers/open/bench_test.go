package open_test

// Lookup benchmarks (issue 3): latency and throughput of a managed table on each store dialect and of the
// operator's own pgsql:, mysql: and sqlite: .cf tables, cold (no cache: every lookup is a query) and cached,
// each beside a floor — the same single-row SELECT by key through database/sql on the same table — so the
// difference is our layer's overhead. Postfix's `postmap -q` is no peer here: it pays a process start.
//
//	bash scripts/testdb.sh start && eval "$(bash scripts/testdb.sh env)"
//	go test -run XXX -bench Lookup -benchtime 3s ./mapdrivers/open/
//
// BENCH_LOOKUP_KEYS changes the table size (default 100000), BENCH_LOOKUP_PARALLELISM the goroutines per
// GOMAXPROCS of the -parallel variants (default 4).

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for the floor and the operator's table
	_ "modernc.org/sqlite"             // driver "sqlite"

	"sqlmta/internal/testdb"
	"sqlmta/mapdrivers/open"
	"sqlmta/store"
	storeopen "sqlmta/store/open"
)

const (
	benchMapFile = "/etc/postfix/bench-virtual" // the managed table's name; never read as a file
	hotKeys      = 100                          // the cached variants' working set
)

// parallelism × GOMAXPROCS goroutines run the parallel variants: a storm of RCPTs from many smtpd
// sessions, more than the cores. Default 4; BENCH_LOOKUP_PARALLELISM changes it.
func parallelism() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_LOOKUP_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 4
}

func benchKeys(b *testing.B) int {
	if s := os.Getenv("BENCH_LOOKUP_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < hotKeys {
			b.Fatalf("BENCH_LOOKUP_KEYS=%q: want a number ≥ %d", s, hotKeys)
		}
		return n
	}
	return 100000
}

// The entries: the same shape as scripts/bench-maps.sh's virtual map.
func benchKey(i int) string   { return fmt.Sprintf("user%d@domain%d.example.com", i, i%1000) }
func benchValue(i int) string { return fmt.Sprintf("mailbox%d@hosting.example.net", i) }

// lookupKind is one kind of table under test, filled with n keys.
type lookupKind struct {
	name string
	spec string      // what main.cf would name: hash:/…, pgsql:/….cf, …
	st   store.Store // managed kinds: the store the Opener reads
	db   *sql.DB     // the floor's handle on the same database
	// floorQuery takes the key as its only parameter and returns the value column.
	floorQuery string
}

func BenchmarkLookup(b *testing.B) {
	n := benchKeys(b)
	for _, setup := range []struct {
		name string
		fn   func(b *testing.B, n int) *lookupKind
	}{
		{"managed-sqlite", func(b *testing.B, n int) *lookupKind { return managedKind(b, testdb.SQLiteURL(b), n) }},
		{"managed-pgsql", func(b *testing.B, n int) *lookupKind { return managedKind(b, testdb.PostgresURL(b), n) }},
		{"managed-mysql", func(b *testing.B, n int) *lookupKind { return managedKind(b, testdb.MySQLURL(b), n) }},
		{"pgsql-cf", func(b *testing.B, n int) *lookupKind { return cfKind(b, "pgsql", n) }},
		{"mysql-cf", func(b *testing.B, n int) *lookupKind { return cfKind(b, "mysql", n) }},
		{"sqlite-cf", func(b *testing.B, n int) *lookupKind { return cfKind(b, "sqlite", n) }},
	} {
		b.Run(setup.name, func(b *testing.B) {
			k := setup.fn(b, n)
			k.name = setup.name
			k.run(b, n)
		})
	}
}

// run measures the kind: cold and cached through the Opener, then the floor, each alone and in parallel.
func (k *lookupKind) run(b *testing.B, n int) {
	ctx := context.Background()
	opener := func(b *testing.B, ttl time.Duration) func(context.Context, string) (string, bool, error) {
		o := &open.Opener{Store: k.st, CacheTTL: ttl, NegativeTTL: ttl}
		b.Cleanup(func() { o.Close() })
		m, err := o.Open(ctx, k.spec)
		if err != nil {
			b.Fatal(err)
		}
		// Lookups outside the timer: opening connections is not a lookup's cost, and the cached
		// variant measures hits, so its hot set is loaded first.
		warm := 1
		if ttl > 0 {
			warm = hotKeys
		}
		for i := range warm {
			if v, found, err := m.Lookup(ctx, benchKey(i)); !check(b, benchKey(i), benchValue(i), v, found, err) {
				b.FailNow()
			}
		}
		return m.Lookup
	}
	floor := func(b *testing.B) func(context.Context, string) (string, bool, error) {
		stmt, err := k.db.PrepareContext(ctx, k.floorQuery)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stmt.Close() })
		return func(ctx context.Context, key string) (string, bool, error) {
			var v string
			err := stmt.QueryRowContext(ctx, key).Scan(&v)
			if err == sql.ErrNoRows {
				return "", false, nil
			}
			return v, err == nil, err
		}
	}
	variants := []struct {
		name string
		fn   func(b *testing.B) func(context.Context, string) (string, bool, error)
		keys int // keys are drawn from 0..keys-1
	}{
		{"cold", func(b *testing.B) func(context.Context, string) (string, bool, error) { return opener(b, 0) }, n},
		{"cached", func(b *testing.B) func(context.Context, string) (string, bool, error) { return opener(b, time.Hour) }, hotKeys},
		{"floor", floor, n},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			benchSerial(b, v.fn(b), v.keys)
		})
		b.Run(v.name+"-parallel", func(b *testing.B) {
			benchParallel(b, v.fn(b), v.keys)
		})
	}
}

// check fails the benchmark unless the lookup of key found want: a benchmark of wrong answers is no
// benchmark. It is safe to call from RunParallel's goroutines.
func check(b *testing.B, key, want, v string, found bool, err error) bool {
	if err != nil || !found || v != want {
		b.Errorf("lookup %s: got %q, %v, %v; want %q", key, v, found, err, want)
		return false
	}
	return true
}

// entrySet pre-formats keys and values so that formatting is neither timed nor allocated in the loop.
func entrySet(n int) (keys, values []string) {
	keys, values = make([]string, n), make([]string, n)
	for i := range n {
		keys[i], values[i] = benchKey(i), benchValue(i)
	}
	return keys, values
}

func benchSerial(b *testing.B, lookup func(context.Context, string) (string, bool, error), keys int) {
	ctx := context.Background()
	ks, vs := entrySet(keys)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i := r.IntN(keys)
		v, found, err := lookup(ctx, ks[i])
		if !check(b, ks[i], vs[i], v, found, err) {
			b.FailNow()
		}
	}
	reportRate(b)
}

func benchParallel(b *testing.B, lookup func(context.Context, string) (string, bool, error), keys int) {
	ctx := context.Background()
	ks, vs := entrySet(keys)
	b.SetParallelism(parallelism())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		for pb.Next() {
			i := r.IntN(keys)
			v, found, err := lookup(ctx, ks[i])
			if !check(b, ks[i], vs[i], v, found, err) {
				return
			}
		}
	})
	reportRate(b)
}

// reportRate adds lookups/s: ns/op is the latency of one lookup when serial, and 1/throughput when parallel.
func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "lookups/s")
	}
}

// managedKind migrates and opens a store at databaseURL and imports n entries into the managed table.
func managedKind(b *testing.B, databaseURL string, n int) *lookupKind {
	ctx := context.Background()
	if err := storeopen.Migrate(ctx, databaseURL); err != nil {
		b.Fatal(err)
	}
	st, err := storeopen.Open(ctx, databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ms, ok := st.(store.MapStore)
	if !ok {
		b.Fatalf("%T is not a store.MapStore", st)
	}
	got, err := ms.MapImport(ctx, benchMapFile, func(yield func(key, value string) error) error {
		for i := range n {
			if err := yield(benchKey(i), benchValue(i)); err != nil {
				return err
			}
		}
		return nil
	}, store.MapImportParams{})
	if err != nil {
		b.Fatal(err)
	}
	if got != int64(n) {
		b.Fatalf("imported %d entries, want %d", got, n)
	}

	k := &lookupKind{spec: "hash:" + benchMapFile, st: st}
	// The floor reads the entry by its primary key, the generation found beforehand: the least any
	// lookup of this table can cost. Our lookup also joins map_table for the current generation.
	// benchMapFile needs no quoting: it holds no quote.
	var driver, dsn, param, floor string
	switch d, _ := storeopen.Dialect(databaseURL); d {
	case "postgres":
		// key and value are bytea there.
		driver, dsn, param = "pgx", databaseURL, "$1"
		floor = "SELECT convert_from(value, 'UTF8') FROM map_entry WHERE map_name = '%s' AND generation = %d AND key = convert_to($1, 'UTF8')"
	case "mysql":
		driver, dsn, param = "mysql", strings.TrimPrefix(databaseURL, "mysql://"), "?"
		floor = "SELECT value FROM map_entry WHERE map_name = '%s' AND generation = %d AND map_key = ?"
	default:
		driver, dsn, param = "sqlite", strings.TrimPrefix(databaseURL, "sqlite:"), "?"
		floor = "SELECT value FROM map_entry WHERE map_name = '%s' AND generation = %d AND key = ?"
	}
	k.db = openDB(b, driver, dsn)
	var g int64
	if err := k.db.QueryRowContext(ctx, "SELECT generation FROM map_table WHERE name = "+param, benchMapFile).Scan(&g); err != nil {
		b.Fatal(err)
	}
	k.floorQuery = fmt.Sprintf(floor, benchMapFile, g)
	return k
}

// cfKind creates the operator's table in a fresh database of typ's server, fills it with n rows and writes
// the .cf file that names it.
func cfKind(b *testing.B, typ string, n int) *lookupKind {
	ctx := context.Background()
	var cf, driver, dsn, param string
	switch typ {
	case "pgsql":
		u, err := url.Parse(testdb.PostgresURL(b))
		if err != nil {
			b.Fatal(err)
		}
		pw, _ := u.User.Password()
		cf = fmt.Sprintf("hosts = %s\nuser = %s\npassword = %s\ndbname = %s\n", u.Host, u.User.Username(), pw, strings.TrimPrefix(u.Path, "/"))
		driver, dsn, param = "pgx", u.String(), "$1"
	case "mysql":
		raw := strings.TrimPrefix(testdb.MySQLURL(b), "mysql://")
		c, err := mysql.ParseDSN(raw)
		if err != nil {
			b.Fatal(err)
		}
		cf = fmt.Sprintf("hosts = %s\nuser = %s\npassword = %s\ndbname = %s\n", c.Addr, c.User, c.Passwd, c.DBName)
		driver, dsn, param = "mysql", raw, "?"
	case "sqlite":
		path := strings.TrimPrefix(testdb.SQLiteURL(b), "sqlite:")
		cf = "dbpath = " + path + "\n"
		driver, dsn, param = "sqlite", path, "?"
	}
	db := openDB(b, driver, dsn)
	if _, err := db.ExecContext(ctx, "CREATE TABLE virtual (address VARCHAR(255) NOT NULL PRIMARY KEY, goto VARCHAR(255) NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	fillVirtual(b, db, param == "$1", n)
	cfPath := filepath.Join(b.TempDir(), typ+"-virtual.cf")
	cf += "query = SELECT goto FROM virtual WHERE address = '%s'\n"
	if err := os.WriteFile(cfPath, []byte(cf), 0o644); err != nil {
		b.Fatal(err)
	}
	return &lookupKind{
		spec:       typ + ":" + cfPath,
		db:         db,
		floorQuery: "SELECT goto FROM virtual WHERE address = " + param,
	}
}

// fillVirtual inserts n rows in multi-row INSERTs of 1,000, in one transaction.
func fillVirtual(b *testing.B, db *sql.DB, dollar bool, n int) {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var q strings.Builder
		q.WriteString("INSERT INTO virtual (address, goto) VALUES ")
		args := make([]any, 0, 2*(hi-lo))
		for i := lo; i < hi; i++ {
			if i > lo {
				q.WriteString(", ")
			}
			if dollar {
				fmt.Fprintf(&q, "($%d, $%d)", len(args)+1, len(args)+2)
			} else {
				q.WriteString("(?, ?)")
			}
			args = append(args, benchKey(i), benchValue(i))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	// Fresh statistics, as a table an operator has had for a while would have.
	stmt := "ANALYZE"
	if !dollar {
		stmt = "ANALYZE TABLE virtual"
		if _, ok := db.Driver().(*mysql.MySQLDriver); !ok {
			stmt = "ANALYZE"
		}
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		b.Fatal(err)
	}
}

// openDB opens the floor's handle, with as many idle connections as the parallel variants use, so that
// the floor never pays a reconnect.
func openDB(b *testing.B, driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxIdleConns(64)
	if driver == "sqlite" {
		// Concurrent readers on one file; the writes happen before any read.
		db.SetMaxOpenConns(8)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
