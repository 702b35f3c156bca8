package sqlmap

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // driver "sqlite", no cgo
)

// idleClose is Postfix's IDLE_CONN_INTV: connections idle this long close.
const idleClose = 60 * time.Second

// Conns shares database handles (each a connection pool) between maps:
// .cf files that name the same host, user, password and database use one
// pool, and a host found dead by one map is skipped by the others. The
// zero value is not usable; make one with NewConns. Maps opened without a
// Conns get a private one.
type Conns struct {
	mu  sync.Mutex
	dbs map[string]*pool
}

// NewConns returns an empty set of shared connection pools.
func NewConns() *Conns { return &Conns{dbs: map[string]*pool{}} }

// pool is one database handle and its host's health.
type pool struct {
	key       string
	db        *sql.DB
	refs      int
	deadUntil time.Time // guarded by Conns.mu
}

// acquire returns the pool for key, opening it with open the first time.
func (c *Conns) acquire(key string, open func() (*sql.DB, error)) (*pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.dbs[key]; p != nil {
		p.refs++
		return p, nil
	}
	db, err := open()
	if err != nil {
		return nil, err
	}
	// Postfix closes a connection after ~60 s idle and reopens on demand.
	db.SetConnMaxIdleTime(idleClose)
	db.SetMaxIdleConns(4)
	p := &pool{key: key, db: db, refs: 1}
	c.dbs[key] = p
	return p, nil
}

func (c *Conns) release(p *pool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.refs--
	if p.refs > 0 {
		return nil
	}
	delete(c.dbs, p.key)
	return p.db.Close()
}

// host is one entry of a .cf file's hosts list.
type host struct {
	name string // as written in hosts, for messages
	unix bool   // UNIX-domain socket: preferred over TCP
	pool *pool
}

// openHost parses one hosts item for pgsql or mysql and opens (or shares)
// its pool.
func openHost(conns *Conns, mapType, item string, s *settings, warnf func(string, ...any)) (*host, error) {
	switch mapType {
	case "pgsql":
		cfg, unix, err := pgHostConfig(item, s)
		if err != nil {
			return nil, err
		}
		// ConnString is the text the config was parsed from: host, port,
		// user, password and database, so equal tuples share a pool.
		key := "pgsql\x00" + cfg.ConnString()
		p, err := conns.acquire(key, func() (*sql.DB, error) { return stdlib.OpenDB(*cfg), nil })
		if err != nil {
			return nil, err
		}
		return &host{name: item, unix: unix, pool: p}, nil
	case "mysql":
		cfg, unix := myHostConfig(item, s)
		if s.tls.enabled() {
			name, _, _ := strings.Cut(cfg.Addr, ":")
			if cfg.Net == "unix" {
				name = "localhost"
			}
			tlsName, err := registerTLS(s.tls, name, warnf)
			if err != nil {
				return nil, err
			}
			cfg.TLSConfig = tlsName
		}
		dsn := cfg.FormatDSN()
		p, err := conns.acquire("mysql\x00"+dsn, func() (*sql.DB, error) {
			conn, err := mysql.NewConnector(cfg)
			if err != nil {
				return nil, err
			}
			return sql.OpenDB(conn), nil
		})
		if err != nil {
			return nil, err
		}
		return &host{name: item, unix: unix, pool: p}, nil
	}
	return nil, fmt.Errorf("unknown map type %q", mapType)
}

// pgHostConfig: a postgresql:// URI is used as it is (its own user and
// database, as in Postfix); otherwise unix:/dir[:port], inet:host[:port]
// or host[:port] with the .cf's user, password and dbname.
func pgHostConfig(item string, s *settings) (*pgx.ConnConfig, bool, error) {
	if strings.HasPrefix(item, "postgresql://") || strings.HasPrefix(item, "postgres://") {
		cfg, err := pgx.ParseConfig(item)
		if err != nil {
			return nil, false, fmt.Errorf("hosts: %q: %w", item, err)
		}
		setConnectTimeout(cfg)
		return cfg, strings.HasPrefix(cfg.Host, "/"), nil
	}
	name := strings.TrimPrefix(strings.TrimPrefix(item, "unix:"), "inet:")
	port := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name, port = name[:i], name[i+1:]
	}
	kv := []string{"host=" + pgQuote(name)}
	if name == "" {
		kv = nil // libpq's default: the local socket
	}
	if port != "" {
		kv = append(kv, "port="+pgQuote(port))
	}
	for _, f := range [][2]string{{"user", s.user}, {"password", s.password}, {"dbname", s.dbname}} {
		if f[1] != "" {
			kv = append(kv, f[0]+"="+pgQuote(f[1]))
		}
	}
	cfg, err := pgx.ParseConfig(strings.Join(kv, " "))
	if err != nil {
		return nil, false, fmt.Errorf("hosts: %q: %w", item, err)
	}
	setConnectTimeout(cfg)
	// This is how libpq tells UNIX from INET, and so does Postfix.
	return cfg, name == "" || strings.HasPrefix(name, "/"), nil
}

func setConnectTimeout(cfg *pgx.ConnConfig) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
}

// pgQuote quotes a libpq keyword/value.
func pgQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// mysqlDefaultSocket is where Debian's MariaDB/MySQL client looks for
// "localhost".
const mysqlDefaultSocket = "/run/mysqld/mysqld.sock"

// myHostConfig: unix:/path, inet:host[:port], host[:port]; "localhost"
// means the UNIX socket, as in libmysqlclient.
func myHostConfig(item string, s *settings) (*mysql.Config, bool) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = s.user, s.password, s.dbname
	cfg.Timeout = 10 * time.Second
	switch {
	case strings.HasPrefix(item, "unix:"):
		cfg.Net, cfg.Addr = "unix", strings.TrimPrefix(item, "unix:")
	case item == "localhost":
		cfg.Net, cfg.Addr = "unix", mysqlDefaultSocket
		if s.mySocket != "" {
			cfg.Addr = s.mySocket
		}
	default:
		name := strings.TrimPrefix(item, "inet:")
		port := "3306"
		if s.myPort != "" {
			port = s.myPort
		}
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name, port = name[:i], name[i+1:]
		}
		cfg.Net, cfg.Addr = "tcp", name+":"+port
	}
	return cfg, cfg.Net == "unix"
}

// openSQLite opens dbpath read-only: a lookup table is never written, and a
// missing file is an error rather than a new empty database.
func openSQLite(conns *Conns, path string) (*host, error) {
	u := url.URL{Scheme: "file", Opaque: url.PathEscape(path)}
	dsn := u.String() + "?mode=ro&_pragma=busy_timeout(5000)"
	p, err := conns.acquire("sqlite\x00"+dsn, func() (*sql.DB, error) { return sql.Open("sqlite", dsn) })
	if err != nil {
		return nil, err
	}
	return &host{name: path, unix: true, pool: p}, nil
}

// pick chooses the host for the next attempt, as Postfix's
// dict_*_get_active: an open connection first (UNIX before TCP), then a
// live host (UNIX before TCP), at random among equals. Hosts in skip were
// already tried in this lookup; dead hosts wait until their retry time.
func (m *Map) pick(skip map[*host]bool, now time.Time) *host {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	var groups [4][]*host
	for _, h := range m.hosts {
		if skip[h] || now.Before(h.pool.deadUntil) {
			continue
		}
		g := 2
		if h.pool.db.Stats().OpenConnections > 0 {
			g = 0
		}
		if !h.unix {
			g++
		}
		groups[g] = append(groups[g], h)
	}
	for _, g := range groups {
		if len(g) > 0 {
			return g[rand.IntN(len(g))]
		}
	}
	return nil
}

func (m *Map) markDead(h *host, now time.Time) {
	m.conns.mu.Lock()
	h.pool.deadUntil = now.Add(m.deadTime)
	m.conns.mu.Unlock()
}

// serverError reports whether err is an SQL error reported by a working
// server (bad column, syntax): the host is fine, so it is not marked dead.
func serverError(err error) bool {
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	return errors.As(err, &pe) || errors.As(err, &me) || errors.Is(err, errNoResultSet)
}

// withHost runs fn on one host after another until one succeeds, marking
// hosts whose connection fails as dead. All failing is an error.
func (m *Map) withHost(ctx context.Context, fn func(*host) error) error {
	tried := map[*host]bool{}
	var errs []error
	for len(tried) < len(m.hosts) {
		h := m.pick(tried, time.Now())
		if h == nil {
			break
		}
		tried[h] = true
		err := fn(h)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
		if !serverError(err) {
			m.markDead(h, time.Now())
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("no usable host: all hosts are marked dead (retry within %s)", m.deadTime)
	}
	return errors.Join(errs...)
}
