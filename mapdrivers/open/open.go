// Package open turns main.cf's "type:name" references into opened lookup
// tables, sharing one instance per reference, and checks every table that a
// configuration names (mtactl map check, and mtad at start and on reload).
// It is apart from package mapdrivers because it imports every driver, and
// the drivers import mapdrivers for its interface.
package open

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"sqlmta/config"
	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/filemap"
	"sqlmta/mapdrivers/managed"
	"sqlmta/mapdrivers/sqlmap"
	"sqlmta/store"
)

// managedTypes name tables kept in sqlmta's own database (Postfix's
// indexed file types, filled by postmap).
var managedTypes = map[string]bool{"hash": true, "btree": true, "lmdb": true, "cdb": true}

// IsMapType reports whether t is a table type sqlmta opens.
func IsMapType(t string) bool { return slices.Contains(config.MapTypes, t) }

// Opener opens tables. It is safe for concurrent use.
type Opener struct {
	// Store holds the managed tables (hash:, …); it must implement
	// store.MapStore. Nil: managed tables cannot be opened.
	Store store.Store
	// CacheTTL and NegativeTTL bound how stale a cached SQL answer may be.
	CacheTTL, NegativeTTL time.Duration
	// Warnf receives the tables' warnings (Postfix's wording); nil drops them.
	Warnf func(format string, args ...any)

	conns *sqlmap.Conns // pools shared by every pgsql/mysql/sqlite table

	mu   sync.Mutex
	maps map[string]mapdrivers.Map
}

// Open returns the table for spec ("type:name"), opening it on first use.
func (o *Opener) Open(ctx context.Context, spec string) (mapdrivers.Map, error) {
	o.mu.Lock()
	m, ok := o.maps[spec]
	if o.conns == nil {
		o.conns = sqlmap.NewConns()
	}
	o.mu.Unlock()
	if ok {
		return m, nil
	}
	// Opened without the lock: an SQL table's domain list may name tables
	// that are opened through o again.
	m, err := o.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.maps[spec]; ok { // opened meanwhile by another caller
		m.Close()
		return prev, nil
	}
	if o.maps == nil {
		o.maps = map[string]mapdrivers.Map{}
	}
	o.maps[spec] = m
	return m, nil
}

func (o *Opener) open(ctx context.Context, spec string) (mapdrivers.Map, error) {
	typ, name, ok := strings.Cut(spec, ":")
	if !ok || typ == "" {
		return nil, fmt.Errorf("%s: table name must have the form type:name", spec)
	}
	switch {
	case typ == "proxy":
		// proxymap(8) only shares connections between processes; in
		// one process the table itself is the pass-through.
		return o.open(ctx, name)
	case managedTypes[typ]:
		ms, ok := o.Store.(store.MapStore)
		if !ok {
			return nil, fmt.Errorf("%s: managed tables need the database (database_url)", spec)
		}
		// managed reads 0 as "its default"; here 0 means no cache, as for SQL tables.
		off := func(d time.Duration) time.Duration { return cmp.Or(d, -1) }
		return managed.Open(ms, typ, name, managed.Options{CacheTTL: off(o.CacheTTL), NegativeTTL: off(o.NegativeTTL)}), nil
	}
	var m mapdrivers.Map
	var err error
	switch typ {
	case "pgsql", "mysql", "sqlite":
		m, err = sqlmap.Open(ctx, typ, name, sqlmap.Options{CacheTTL: o.CacheTTL, NegativeTTL: o.NegativeTTL,
			Conns: o.conns, Warnf: o.Warnf, OpenMap: o.Open})
	case "texthash":
		m, err = filemap.OpenTexthash(name)
	case "regexp":
		m, err = filemap.OpenRegexp(name)
	case "pcre":
		m, err = filemap.OpenPCRE(name)
	case "cidr":
		m, err = filemap.OpenCIDR(name)
	case "inline":
		m, err = filemap.OpenInline(name)
	case "static":
		m, err = filemap.OpenStatic(name)
	case "unix":
		m, err = filemap.OpenUnixPasswd(name)
	case "fail":
		m, err = filemap.OpenFail(name)
	case "nis":
		nis, warning := filemap.OpenNIS(name)
		if o.Warnf != nil {
			o.Warnf("%s", warning)
		}
		m = nis
	default:
		return nil, fmt.Errorf("%s: unsupported dictionary type: %s", spec, typ)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Close closes every opened table.
func (o *Opener) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for _, m := range o.maps {
		errs = append(errs, m.Close())
	}
	o.maps = nil
	return errors.Join(errs...)
}

// Ref is one table reference found in a configuration.
type Ref struct {
	Param string // the parameter that names it
	Spec  string // "type:name"
}

// References lists the tables that the parameters set in cfg name, in
// parameter order. Defaults are left out: a default such as alias_maps =
// hash:/etc/aliases only matters once a feature that reads it is used.
func References(cfg *config.Config) []Ref {
	var refs []Ref
	names := cfg.Explicit()
	sort.Strings(names)
	for _, p := range names {
		if p == "database_url" { // mysql://… is a URL, not a table
			continue
		}
		for _, spec := range tableSpecs(cfg.Get(p)) {
			refs = append(refs, Ref{Param: p, Spec: spec})
		}
	}
	return refs
}

// tableSpecs finds type:name items in a list value, looking inside { … }
// groups (restriction lists, inline: tables).
func tableSpecs(value string) []string {
	var out []string
	for _, item := range config.SplitList(value) {
		typ, _, ok := strings.Cut(item, ":")
		switch {
		case ok && IsMapType(typ):
			out = append(out, item)
		case strings.ContainsAny(item, " ,\t") && item != value:
			out = append(out, tableSpecs(item)...)
		}
	}
	return out
}

// Checker is the extra start-up check some tables offer (SQL tables run
// their query once).
type Checker interface {
	Check(ctx context.Context) error
}

// Check opens every table cfg names and runs one probe lookup (or the
// table's own Check), so that a wrong file, column or table is reported
// at start-up rather than as a 451 at the first RCPT. It returns how many
// references it checked and one error per failing one, naming the parameter.
func Check(ctx context.Context, o *Opener, cfg *config.Config) (int, []error) {
	var errs []error
	refs := References(cfg)
	for _, r := range refs {
		m, err := o.Open(ctx, r.Spec)
		if err == nil {
			if c, ok := m.(Checker); ok {
				err = c.Check(ctx)
			} else {
				_, _, err = m.Lookup(ctx, "sqlmta-check@example.invalid")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", r.Param, r.Spec, err))
		}
	}
	return len(refs), errs
}
