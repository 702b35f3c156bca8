// Package sqlmap implements Postfix's pgsql:, mysql: and sqlite: lookup
// tables: a .cf file (main.cf syntax) names the operator's own database and
// the query to run for each key (reference §5, pgsql_table(5),
// mysql_table(5), sqlite_table(5)).
//
// Keys never reach the SQL text: a string literal holding %-codes becomes a
// bound parameter, and a code outside any literal is pasted only when its
// value is a harmless token. Hosts fail over as in Postfix; connections are
// pooled per host and may be shared between maps through Conns.
package sqlmap

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/text/cases"

	"sqlmta/mapdrivers"
)

// Options tune an opened map. The zero value is Postfix's behaviour with
// no cache.
type Options struct {
	// CacheTTL keeps found values this long; NegativeTTL keeps "not found"
	// this long. 0 turns either off. Errors are never cached.
	CacheTTL, NegativeTTL time.Duration
	// CacheSize bounds the number of cached keys (default 10000).
	CacheSize int
	// DeadTime is how long a host whose connection failed is skipped
	// (default 60 s, Postfix's RETRY_CONN_INTV).
	DeadTime time.Duration
	// Conns shares connection pools between maps; nil gives the map its
	// own.
	Conns *Conns
	// OpenMap opens the type:table items of a "domain" list (the opener
	// passes its own Open); nil makes such items an error at Open.
	OpenMap func(ctx context.Context, spec string) (mapdrivers.Map, error)
	// Warnf receives Postfix's warnings (empty results, skipped keys); nil
	// discards them.
	Warnf func(format string, args ...any)
}

// Map is one opened pgsql:, mysql: or sqlite: table. It is safe for
// concurrent use.
type Map struct {
	mapType, path string
	d             dialect
	q             *compiled
	resultFormat  string
	need          needs
	domains       *domainList
	limit         int
	// requireResultSet (mysql): a statement without a result set is an
	// error; when false it is "not found" (CALL of a procedure that may
	// SELECT nothing).
	requireResultSet bool

	hosts    []*host
	conns    *Conns
	deadTime time.Duration
	warnf    func(string, ...any)

	stmtMu sync.Mutex
	stmts  map[*host]*sql.Stmt // prepared once per host for static queries

	cache *cache
}

var _ mapdrivers.Map = (*Map)(nil)

// Open reads the .cf file cfPath for mapType ("pgsql", "mysql" or
// "sqlite") and prepares the map. It does not connect: see Check.
func Open(ctx context.Context, mapType, cfPath string, opts Options) (*Map, error) {
	m := &Map{mapType: mapType, path: cfPath, stmts: map[*host]*sql.Stmt{}}
	switch mapType {
	case "pgsql":
		m.d = pgDialect
	case "mysql":
		m.d = myDialect
	case "sqlite":
		m.d = liteDialect
	default:
		return nil, fmt.Errorf("sqlmap: unknown map type %q", mapType)
	}
	s, err := readCF(mapType, cfPath)
	if err != nil {
		return nil, m.wrap(err)
	}
	if err := m.need.scanCodes(s.query, true); err != nil {
		return nil, m.wrap(err)
	}
	if err := m.need.scanCodes(s.resultFormat, false); err != nil {
		return nil, m.wrap(err)
	}
	if m.q, err = compileQuery(s.query, m.d); err != nil {
		return nil, m.wrap(err)
	}
	m.resultFormat, m.domains, m.limit = s.resultFormat, s.domains, s.expansionLimit

	m.deadTime = opts.DeadTime
	if m.deadTime <= 0 {
		m.deadTime = 60 * time.Second
	}
	m.warnf = opts.Warnf
	if m.warnf == nil {
		m.warnf = func(string, ...any) {}
	}
	m.conns = opts.Conns
	if m.conns == nil {
		m.conns = NewConns()
	}
	if mapType == "sqlite" {
		h, err := openSQLite(m.conns, s.dbpath)
		if err != nil {
			return nil, m.wrap(err)
		}
		m.hosts = []*host{h}
	} else {
		if mapType == "mysql" {
			if err := applyMyOptions(s); err != nil {
				return nil, m.wrap(err)
			}
			m.requireResultSet = s.requireResultSet
		} else if len(s.hosts) == 0 {
			s.hosts = []string{"localhost"}
		}
		for _, item := range s.hosts {
			h, err := openHost(m.conns, mapType, item, s, m.warnf)
			if err != nil {
				m.Close()
				return nil, m.wrap(err)
			}
			m.hosts = append(m.hosts, h)
		}
	}
	if m.domains != nil {
		if err := m.domains.open(ctx, opts.OpenMap); err != nil {
			m.Close() // also closes the tables opened so far
			return nil, m.wrap(err)
		}
	}
	if opts.CacheTTL > 0 || opts.NegativeTTL > 0 {
		m.cache = newCache(opts.CacheTTL, opts.NegativeTTL, opts.CacheSize)
	}
	return m, nil
}

func (m *Map) wrap(err error) error {
	return fmt.Errorf("%s:%s: %w", m.mapType, m.path, err)
}

// Props: SQL tables take every key of a lookup sequence, case-folded.
func (m *Map) Props() mapdrivers.Props { return mapdrivers.Props{FoldCase: true} }

// Close releases the map's connection pools (closing those no other map
// shares).
func (m *Map) Close() error {
	m.stmtMu.Lock()
	for h, st := range m.stmts {
		st.Close()
		delete(m.stmts, h)
	}
	m.stmtMu.Unlock()
	var errs []error
	if m.domains != nil {
		errs = append(errs, m.domains.close())
	}
	for _, h := range m.hosts {
		errs = append(errs, m.conns.release(h.pool))
	}
	m.hosts = nil
	return errors.Join(errs...)
}

// foldCase is Postfix's casefold with smtputf8_enable=yes: full Unicode
// case folding (ICU's u_strFoldCase), ASCII keys just lowercased.
var foldCase = cases.Fold()

func foldKey(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return foldCase.String(s)
		}
	}
	return strings.ToLower(s)
}

// Lookup implements mapdrivers.Map.
func (m *Map) Lookup(ctx context.Context, key string) (string, bool, error) {
	// Postfix keys are C strings and, with SMTPUTF8 on, valid UTF-8: other
	// keys cannot match and are not sent.
	if strings.IndexByte(key, 0) >= 0 {
		return "", false, nil
	}
	if !utf8.ValidString(key) {
		m.warnf("%s:%s: non-UTF-8 key %q: not found", m.mapType, m.path, key)
		return "", false, nil
	}
	key = foldKey(key)
	if m.cache != nil {
		if v, found, ok := m.cache.get(key, time.Now()); ok {
			return v, found, nil
		}
	}
	v, found, err := m.lookup(ctx, key, false)
	if err != nil {
		return "", false, m.wrap(err)
	}
	if m.cache != nil {
		m.cache.put(key, v, found, time.Now())
	}
	return v, found, nil
}

// checkKey has enough domain labels for any %1…%9.
const checkKey = "sqlmta-check@a.b.c.d.e.f.g.example.invalid"

// Check runs the query once with a dummy key, ignoring the domain list and
// the cache, so that an unreachable database, a wrong table or a wrong
// column shows at start-up rather than as a 451 at the first RCPT.
func (m *Map) Check(ctx context.Context) error {
	if _, _, err := m.lookup(ctx, checkKey, true); err != nil {
		return m.wrap(err)
	}
	return nil
}

func (m *Map) lookup(ctx context.Context, key string, check bool) (string, bool, error) {
	if !check && m.domains != nil {
		ok, err := m.domains.admits(ctx, key)
		if err != nil || !ok {
			return "", false, err
		}
	}
	if key == "" {
		m.warnf("table \"%s:%s\": empty query string -- ignored", m.mapType, m.path)
		return "", false, nil
	}
	ka, ok := splitAddr(key, m.need.keyUser, m.need.keyDomain, m.need.nparts)
	if !ok {
		return "", false, nil
	}
	sqlText, args, ok := m.q.bind(ka, m.d)
	if !ok {
		m.warnf("%s:%s: key %q cannot be pasted outside a quoted string in the query: not found", m.mapType, m.path, key)
		return "", false, nil
	}
	var rows [][]sql.NullString
	err := m.withHost(ctx, func(h *host) error {
		var err error
		rows, err = m.query(ctx, h, sqlText, args)
		return err
	})
	if err != nil {
		return "", false, err
	}
	var out []string
	for _, row := range rows {
		if m.mapType == "sqlite" && len(row) > 1 {
			row = row[:1] // Postfix's sqlite map reads only the first column
		}
		for _, col := range row {
			if !col.Valid {
				continue
			}
			if col.String == "" {
				m.warnf("table \"%s:%s\": empty lookup result for: \"%s\" -- ignored", m.mapType, m.path, key)
				continue
			}
			if !utf8.ValidString(col.String) {
				return "", false, fmt.Errorf("non-UTF-8 result for key %q", key)
			}
			va, ok := splitAddr(col.String, m.need.valueUser, m.need.valueDomain, 0)
			if !ok {
				continue
			}
			out = append(out, expandResult(m.resultFormat, va, ka))
			if m.limit > 0 && len(out) > m.limit {
				return "", false, fmt.Errorf("expansion limit %d exceeded for key %q", m.limit, key)
			}
		}
	}
	if len(out) == 0 {
		return "", false, nil
	}
	return strings.Join(out, ","), true, nil
}

// errNoResultSet is the mysql error for a statement without a result set
// under require_result_set = yes. The server is fine: the host stays up.
var errNoResultSet = errors.New("query returned no result set (require_result_set = yes)")

// query runs one statement on one host and reads every row.
func (m *Map) query(ctx context.Context, h *host, sqlText string, args []any) ([][]sql.NullString, error) {
	var rs *sql.Rows
	var err error
	if !m.q.inline {
		st, perr := m.stmt(ctx, h, sqlText)
		if perr != nil {
			return nil, perr
		}
		rs, err = st.QueryContext(ctx, args...)
	} else {
		rs, err = h.pool.db.QueryContext(ctx, sqlText, args...)
	}
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 && m.mapType == "mysql" {
		if m.requireResultSet {
			return nil, errNoResultSet
		}
		return nil, nil
	}
	var out [][]sql.NullString
	for rs.Next() {
		row := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rs.Err()
}

// stmt returns the host's prepared statement for the (static) query.
// database/sql re-prepares it on each new connection of the pool.
func (m *Map) stmt(ctx context.Context, h *host, sqlText string) (*sql.Stmt, error) {
	m.stmtMu.Lock()
	defer m.stmtMu.Unlock()
	if st := m.stmts[h]; st != nil {
		return st, nil
	}
	st, err := h.pool.db.PrepareContext(ctx, sqlText)
	if err != nil {
		return nil, err
	}
	m.stmts[h] = st
	return st, nil
}

// cache is a small TTL cache of lookup results, keyed by folded key.
type cache struct {
	mu       sync.Mutex
	ttl, neg time.Duration
	size     int
	m        map[string]cacheEntry
}

type cacheEntry struct {
	value   string
	found   bool
	expires time.Time
}

func newCache(ttl, neg time.Duration, size int) *cache {
	if size <= 0 {
		size = 10000
	}
	return &cache{ttl: ttl, neg: neg, size: size, m: map[string]cacheEntry{}}
}

func (c *cache) get(key string, now time.Time) (string, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return "", false, false
	}
	if !now.Before(e.expires) {
		delete(c.m, key)
		return "", false, false
	}
	return e.value, e.found, true
}

func (c *cache) put(key, value string, found bool, now time.Time) {
	ttl := c.neg
	if found {
		ttl = c.ttl
	}
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.size {
		// Drop expired entries; if that is not enough, drop arbitrary
		// ones (map order): a storm of distinct keys must not grow memory.
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.size {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cacheEntry{value: value, found: found, expires: now.Add(ttl)}
}
