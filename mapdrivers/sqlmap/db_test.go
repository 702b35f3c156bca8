package sqlmap

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// backend is one fresh test database: a handle to fill it and the .cf
// lines that reach it.
type backend struct {
	typ    string // pgsql, mysql, sqlite
	db     *sql.DB
	cfHead string // hosts/user/password/dbname or dbpath lines
	host   string // host:port (pgsql, mysql)
	conn   string // user/password/dbname lines without hosts
}

func newBackend(t *testing.T, typ string) *backend {
	t.Helper()
	b := &backend{typ: typ}
	var err error
	switch typ {
	case "pgsql":
		u, perr := url.Parse(testdb.PostgresURL(t))
		if perr != nil {
			t.Fatal(perr)
		}
		pw, _ := u.User.Password()
		b.host = u.Host
		b.conn = fmt.Sprintf("user = %s\npassword = %s\ndbname = %s\n", u.User.Username(), pw, strings.TrimPrefix(u.Path, "/"))
		b.cfHead = "hosts = " + u.Host + "\n" + b.conn
		b.db, err = sql.Open("pgx", u.String())
	case "mysql":
		raw := strings.TrimPrefix(testdb.MySQLURL(t), "mysql://")
		cfg, perr := mysql.ParseDSN(raw)
		if perr != nil {
			t.Fatal(perr)
		}
		b.host = cfg.Addr
		b.conn = fmt.Sprintf("user = %s\npassword = %s\ndbname = %s\n", cfg.User, cfg.Passwd, cfg.DBName)
		b.cfHead = "hosts = " + cfg.Addr + "\n" + b.conn
		b.db, err = sql.Open("mysql", raw)
	case "sqlite":
		path := strings.TrimPrefix(testdb.SQLiteURL(t), "sqlite:")
		b.cfHead = "dbpath = " + path + "\n"
		b.db, err = sql.Open("sqlite", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	return b
}

func (b *backend) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := b.db.Exec(s); err != nil {
			t.Fatalf("%s: %s: %v", b.typ, s, err)
		}
	}
}

// fixture rows: (addr, dest, active). NULL and ” destinations, several
// rows per key, keys that need quoting.
var fixtureRows = [][3]string{
	{"alice@example.com", "alice@mbox.example.com", "1"},
	{"alice@example.com", "alice2@other.example", "1"},
	{"alice@example.com", "zz-inactive@example.com", "0"},
	{"bob@example.com", "NULL", "1"},
	{"carol@example.com", "", "1"},
	{"carol@example.com", "carol@mbox.example.com", "1"},
	{"dave@example.com", "dave", "1"},
	{"@example.com", "catchall@example.com", "1"},
	{"example.com", "domain-entry", "1"},
	{"o'brien@example.com", "obrien@mbox.example.com", "1"},
	{`back\slash@example.com`, "bs@mbox.example.com", "1"},
	{"pct%@example.com", "pct@mbox.example.com", "1"},
	{"semi;colon@example.com", "semi@mbox.example.com", "1"},
	{"äö@example.com", "umlaut@mbox.example.com", "1"},
	{"user@mail.sub.example.com", "deep@mbox.example.com", "1"},
	{"x", "x-only", "1"},
}

// sqlQuote is for building the fixture only.
func sqlQuote(typ, s string) string {
	if s == "NULL" {
		return s
	}
	s = strings.ReplaceAll(s, "'", "''")
	if typ == "mysql" {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return "'" + s + "'"
}

func (b *backend) fill(t *testing.T) {
	t.Helper()
	b.exec(t,
		"CREATE TABLE virt (id INTEGER, addr VARCHAR(200) NOT NULL, dest VARCHAR(200), active INTEGER NOT NULL)",
		"CREATE TABLE doms (name VARCHAR(200) NOT NULL, label VARCHAR(200) NOT NULL)",
		"INSERT INTO doms VALUES ('example.com', 'ex-com'), ('sub.example', 'sub-ex'), ('example.org', 'ex-org')",
	)
	for i, r := range fixtureRows {
		b.exec(t, fmt.Sprintf("INSERT INTO virt VALUES (%d, %s, %s, %s)", i+1, sqlQuote(b.typ, r[0]), sqlQuote(b.typ, r[1]), r[2]))
	}
}

func writeCF(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// postmapQuery asks real Postfix for each key (postmap -q KEY type:cf) and
// returns the found ones. (postmap -q - lingers ~1.5 s at end of input, so
// one process per key is faster.)
func postmapQuery(t *testing.T, typ, cf string, keys []string) map[string]string {
	t.Helper()
	bin := peers.Require(t, "postmap")
	type answer struct {
		k, v   string
		found  bool
		err    error
		stderr string
	}
	answers := make(chan answer, len(keys))
	sem := make(chan struct{}, 8) // postmap spends its time waiting: overlap it
	for _, k := range keys {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.Command(bin, "-q", k, typ+":"+cf)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			a := answer{k: k, v: strings.TrimSuffix(string(out), "\n"), found: err == nil, stderr: stderr.String()}
			// Exit 1 only means "not found".
			if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1 || strings.Contains(a.stderr, "fatal")) {
				a.err = err
			}
			answers <- a
		}()
	}
	got := map[string]string{}
	for range keys {
		a := <-answers
		if a.err != nil {
			t.Fatalf("postmap -q %q %s:%s: %v\n%s", a.k, typ, cf, a.err, a.stderr)
		}
		if a.found {
			got[a.k] = a.v
		}
	}
	return got
}

var diffKeys = []string{
	"alice@example.com", "ALICE@Example.COM", "bob@example.com", "carol@example.com",
	"dave@example.com", "@example.com", "example.com", "o'brien@example.com", `back\slash@example.com`,
	"pct%@example.com", "semi;colon@example.com", "ÄÖ@example.com", "user@mail.sub.example.com",
	"x' OR '1'='1", "x' OR '1'='1@example.com", "nobody@example.com", "user@example..com", "user@",
	"x", "X", "someone@sub.example", "a@b@example.com", "\xff@example.com", "who@example.org",
}

// diffCase is one .cf body (after the connection lines) answered by both
// Postfix and us.
type diffCase struct {
	name  string
	body  string
	types string // limit to these map types ("" = all)
}

var diffCases = []diffCase{
	{name: "plain", body: "query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\n"},
	{name: "user-domain", body: "query = SELECT dest FROM virt WHERE addr='%u@%d' ORDER BY id\n"},
	{name: "user-only", body: "query = SELECT dest FROM virt WHERE addr='%u' ORDER BY id\n"},
	{name: "labels", body: "query = SELECT label FROM doms WHERE name='%2.%1'\n"},
	{name: "label3", body: "query = SELECT label FROM doms WHERE name LIKE '%%%3%%'\n"},
	{name: "domain-list", body: "query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\ndomain = example.com, !example.org sub.example\n"},
	{name: "result-format", body: "query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\nresult_format = <%u|%d|%s|%S|%U|%D|%1|%%>\n"},
	{name: "result-user", body: "query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\nresult_format = %u\n"},
	{name: "legacy", body: "table = virt\nselect_field = dest\nwhere_field = addr\nadditional_conditions = AND active = 1 ORDER BY id\n"},
	{name: "multi-column", body: "query = SELECT dest, addr FROM virt WHERE addr='%s' ORDER BY id\n"},
	{name: "like", body: "query = SELECT dest FROM virt WHERE addr LIKE '%%@%d' AND active = 1 ORDER BY id\n"},
	{name: "continued", body: "query = SELECT dest\n  FROM virt\n  # a comment line\n  WHERE addr = '%s' ORDER BY id\n"},
	{name: "select-function", types: "pgsql", body: "select_function = lookup_dest\n"},
}

func TestDifferentialAgainstPostmap(t *testing.T) {
	for _, typ := range []string{"pgsql", "mysql", "sqlite"} {
		t.Run(typ, func(t *testing.T) {
			b := newBackend(t, typ)
			b.fill(t)
			if typ == "pgsql" {
				b.exec(t, "CREATE FUNCTION lookup_dest(k text) RETURNS SETOF text LANGUAGE sql AS $$ SELECT dest FROM virt WHERE addr = k ORDER BY id $$")
			}
			for _, c := range diffCases {
				if c.types != "" && !strings.Contains(c.types, typ) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					cf := writeCF(t, c.name+".cf", b.cfHead+c.body)
					want := postmapQuery(t, typ, cf, diffKeys)
					m, err := Open(context.Background(), typ, cf, Options{})
					if err != nil {
						t.Fatal(err)
					}
					defer m.Close()
					for _, k := range diffKeys {
						if typ == "pgsql" && !isASCII(k) {
							// Postfix 3.7's pgsql client talks LATIN1 to the
							// server (3.8 added "encoding", default UTF8), so
							// a UTF-8 key arrives as mojibake and is never
							// found. We talk UTF-8, like 3.8: not compared.
							continue
						}
						v, found, err := m.Lookup(context.Background(), k)
						if err != nil {
							t.Errorf("%q: %v", k, err)
							continue
						}
						pv, pfound := want[k]
						if found != pfound || v != pv {
							t.Errorf("%q: sqlmta %q (found=%v), postmap %q (found=%v)", k, v, found, pv, pfound)
						}
					}
				})
			}
		})
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestKeysNeverAlterTheQuery looks up hostile keys that are stored in the
// table (they must be found, exactly) and ones that are not (they must not
// find anything, in particular not every row).
func TestKeysNeverAlterTheQuery(t *testing.T) {
	hostile := []string{
		"q'uote", `back\slash`, `back\'both`, "pct%", "%", "_", "semi;colon", "x' OR '1'='1", `x\' OR 1=1 -- `,
		"dq\"uote", "new\nline", "ctrl\x1aZ", "tab\tkey", "$1", "?", "ünïcödé",
	}
	for _, typ := range []string{"pgsql", "mysql", "sqlite"} {
		t.Run(typ, func(t *testing.T) {
			b := newBackend(t, typ)
			b.exec(t, "CREATE TABLE k (name VARCHAR(200) NOT NULL, v VARCHAR(200) NOT NULL)")
			for i, h := range hostile[:len(hostile)-3] {
				// Stored folded: lookups fold the key first.
				b.exec(t, fmt.Sprintf("INSERT INTO k VALUES (%s, 'v%d')", sqlQuote(typ, foldKey(h)), i))
			}
			for _, query := range []string{
				"SELECT v FROM k WHERE name='%s'",
				`SELECT v FROM k WHERE name LIKE '%%%s'`,
				"SELECT v FROM k WHERE name='%u' /* it's %s */",
			} {
				cf := writeCF(t, "k.cf", b.cfHead+"query = "+query+"\n")
				m, err := Open(context.Background(), typ, cf, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i, h := range hostile {
					v, found, err := m.Lookup(context.Background(), h)
					if err != nil {
						t.Errorf("%s: %q: %v", query, h, err)
						continue
					}
					stored := i < len(hostile)-3
					// LIKE '%…' also matches longer names ending in the key.
					if strings.Contains(query, "LIKE") && found && !stored {
						t.Errorf("%s: %q found %q", query, h, v)
					}
					if !strings.Contains(query, "LIKE") && (found != stored || stored && v != fmt.Sprintf("v%d", i)) {
						t.Errorf("%s: %q: got %q found=%v", query, h, v, found)
					}
					if strings.Contains(v, ",") && h != "%" && h != "_" {
						t.Errorf("%s: %q matched several rows: %q", query, h, v)
					}
				}
				for _, k := range []string{"nul\x00key", "bad\xffutf8"} {
					if _, found, err := m.Lookup(context.Background(), k); found || err != nil {
						t.Errorf("%q: found=%v err=%v", k, found, err)
					}
				}
				m.Close()
			}
			// The table is intact: no key ran a statement of its own.
			var n int
			if err := b.db.QueryRow("SELECT COUNT(*) FROM k").Scan(&n); err != nil || n != len(hostile)-3 {
				t.Errorf("table k: %d rows, %v", n, err)
			}
		})
	}
}

func TestExpansionLimitIsAnError(t *testing.T) {
	b := newBackend(t, "sqlite")
	b.fill(t)
	cf := writeCF(t, "lim.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s'\nexpansion_limit = 1\n")
	m, err := Open(context.Background(), "sqlite", cf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, _, err := m.Lookup(context.Background(), "alice@example.com"); err == nil {
		t.Error("3 results with expansion_limit 1: no error")
	}
	if v, found, err := m.Lookup(context.Background(), "dave@example.com"); err != nil || !found || v != "dave" {
		t.Errorf("one result: %q %v %v", v, found, err)
	}
}

func TestCheckReportsBadQuery(t *testing.T) {
	for _, typ := range []string{"pgsql", "mysql", "sqlite"} {
		t.Run(typ, func(t *testing.T) {
			b := newBackend(t, typ)
			b.fill(t)
			good := writeCF(t, "good.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s' AND '%9' <> ''\ndomain = example.net\n")
			bad := writeCF(t, "bad.cf", b.cfHead+"query = SELECT nosuchcolumn FROM virt WHERE addr='%s'\n")
			for cf, wantErr := range map[string]bool{good: false, bad: true} {
				m, err := Open(context.Background(), typ, cf, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Check(context.Background()); (err != nil) != wantErr {
					t.Errorf("%s: Check: %v", filepath.Base(cf), err)
				}
				m.Close()
			}
		})
	}
}

// closedPort returns a loopback port with nothing listening.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestFailover(t *testing.T) {
	for _, typ := range []string{"pgsql", "mysql"} {
		t.Run(typ, func(t *testing.T) {
			b := newBackend(t, typ)
			b.fill(t)
			dead := closedPort(t)
			query := "query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\n"

			// Only a dead host: an error, never "not found".
			cf := writeCF(t, "dead.cf", "hosts = "+dead+"\n"+b.conn+query)
			m, err := Open(context.Background(), typ, cf, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, found, err := m.Lookup(context.Background(), "alice@example.com"); err == nil || found {
				t.Errorf("dead host: found=%v err=%v", found, err)
			}
			m.Close()

			// A dead host and a live one: every lookup is answered, and
			// the dead host is marked and skipped.
			cf = writeCF(t, "two.cf", "hosts = inet:"+dead+", "+b.host+"\n"+b.conn+query)
			m, err = Open(context.Background(), typ, cf, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for range 5 {
				v, found, err := m.Lookup(context.Background(), "alice@example.com")
				if err != nil || !found || v != "alice@mbox.example.com,alice2@other.example,zz-inactive@example.com" {
					t.Fatalf("failover: %q %v %v", v, found, err)
				}
			}
			deadHost := m.hosts[0]
			if deadHost.name != "inet:"+dead {
				t.Fatalf("hosts order: %q", deadHost.name)
			}
			// The live host may have been picked first every time; force
			// one attempt on the dead host by asking with it alone alive.
			m.conns.mu.Lock()
			m.hosts[1].pool.deadUntil = time.Now().Add(time.Hour)
			m.conns.mu.Unlock()
			if _, _, err := m.Lookup(context.Background(), "bob@example.com"); err == nil {
				t.Error("only the dead host left: no error")
			}
			m.conns.mu.Lock()
			m.hosts[1].pool.deadUntil = time.Time{}
			if !deadHost.pool.deadUntil.After(time.Now()) {
				t.Error("failed host not marked dead")
			}
			m.conns.mu.Unlock()
			if _, found, err := m.Lookup(context.Background(), "dave@example.com"); err != nil || !found {
				t.Errorf("after marking: found=%v err=%v", found, err)
			}
		})
	}
}

// proxy forwards loopback TCP to target until stopped, so a test can make
// "the database" go away and come back without touching the shared server.
type proxy struct {
	l      net.Listener
	target string
	conns  chan net.Conn
}

func startProxy(t *testing.T, addr, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: make(chan net.Conn, 100)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.conns <- c
			p.conns <- s
			go func() { _, _ = copyConn(s, c) }()
			go func() { _, _ = copyConn(c, s) }()
		}
	}()
	return p
}

func copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32*1024)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// stop closes the listener and every forwarded connection.
func (p *proxy) stop() {
	p.l.Close()
	for {
		select {
		case c := <-p.conns:
			c.Close()
		default:
			return
		}
	}
}

func TestDatabaseGoesAwayAndComesBack(t *testing.T) {
	b := newBackend(t, "pgsql")
	b.fill(t)
	addr := closedPort(t)
	p := startProxy(t, addr, b.host)
	cf := writeCF(t, "p.cf", "hosts = "+addr+"\n"+b.conn+"query = SELECT dest FROM virt WHERE addr='%s'\n")
	m, err := Open(context.Background(), "pgsql", cf, Options{DeadTime: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if v, found, err := m.Lookup(context.Background(), "dave@example.com"); err != nil || !found || v != "dave" {
		t.Fatalf("before: %q %v %v", v, found, err)
	}
	p.stop()
	if _, found, err := m.Lookup(context.Background(), "dave@example.com"); err == nil || found {
		t.Fatalf("database away: found=%v err=%v", found, err)
	}
	p = startProxy(t, addr, b.host)
	defer p.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, found, err := m.Lookup(context.Background(), "dave@example.com")
		if err == nil && found && v == "dave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %q %v %v", v, found, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCacheAndNegativeCache(t *testing.T) {
	b := newBackend(t, "sqlite")
	b.fill(t)
	cf := writeCF(t, "c.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s'\n")
	m, err := Open(context.Background(), "sqlite", cf, Options{CacheTTL: 200 * time.Millisecond, NegativeTTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if v, _, _ := m.Lookup(ctx, "Dave@Example.com"); v != "dave" {
		t.Fatalf("got %q", v)
	}
	if _, found, _ := m.Lookup(ctx, "new@example.com"); found {
		t.Fatal("new@ found")
	}
	b.exec(t, "UPDATE virt SET dest = 'dave2' WHERE addr = 'dave@example.com'",
		"INSERT INTO virt VALUES (99, 'new@example.com', 'new', 1)")
	// Within the TTL both answers come from the cache (same folded key).
	if v, _, _ := m.Lookup(ctx, "dave@example.com"); v != "dave" {
		t.Errorf("positive cache: %q", v)
	}
	if _, found, _ := m.Lookup(ctx, "NEW@example.com"); found {
		t.Error("negative cache: found")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v1, _, _ := m.Lookup(ctx, "dave@example.com")
		v2, _, _ := m.Lookup(ctx, "new@example.com")
		if v1 == "dave2" && v2 == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("change not seen after TTL: %q %q", v1, v2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(time.Hour, time.Hour, 10)
	now := time.Now()
	for i := range 100 {
		c.put(fmt.Sprint(i), "v", true, now)
	}
	if len(c.m) > 10 {
		t.Errorf("%d entries", len(c.m))
	}
	if _, _, ok := c.get("99", now); !ok {
		t.Error("latest entry missing")
	}
}

func TestSharedConnsPoolIdenticalTuples(t *testing.T) {
	b := newBackend(t, "pgsql")
	b.fill(t)
	conns := NewConns()
	cf1 := writeCF(t, "a.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s'\n")
	cf2 := writeCF(t, "b.cf", b.cfHead+"query = SELECT label FROM doms WHERE name='%s'\n")
	m1, err := Open(context.Background(), "pgsql", cf1, Options{Conns: conns})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Open(context.Background(), "pgsql", cf2, Options{Conns: conns})
	if err != nil {
		t.Fatal(err)
	}
	if m1.hosts[0].pool != m2.hosts[0].pool || len(conns.dbs) != 1 {
		t.Fatalf("not shared: %d pools", len(conns.dbs))
	}
	if v, _, err := m2.Lookup(context.Background(), "example.com"); err != nil || v != "ex-com" {
		t.Errorf("m2: %q %v", v, err)
	}
	m1.Close()
	if v, _, err := m2.Lookup(context.Background(), "example.com"); err != nil || v != "ex-com" {
		t.Errorf("m2 after m1.Close: %q %v", v, err)
	}
	m2.Close()
	if len(conns.dbs) != 0 {
		t.Errorf("%d pools left open", len(conns.dbs))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"no-query.cf":  "hosts = 127.0.0.1\ntable = t\nselect_field = a\n",
		"bad-code.cf":  "query = SELECT a FROM t WHERE k='%x'\n",
		"bad-limit.cf": "query = SELECT 1\nexpansion_limit = many\n",
		"table-dom.cf": "query = SELECT 1\ndomain = hash:/etc/postfix/domains\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		if m, err := Open(context.Background(), "pgsql", p, Options{}); err == nil {
			m.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNoDollarExpansionInCF(t *testing.T) {
	p := writeCF(t, "d.cf", "dbpath = /nonexistent\nquery = SELECT '$myhostname' WHERE '%s' <> ''\npassword = pa$$word\n")
	s, err := readCF("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if s.query != "SELECT '$myhostname' WHERE '%s' <> ''" || s.password != "pa$$word" {
		t.Errorf("query %q password %q", s.query, s.password)
	}
}
