// Package filemap holds Postfix's file and pattern lookup tables: texthash:,
// regexp:, pcre:, cidr:, inline:, static:, unix: and fail:. Each is read
// once at open, kept in memory, and answers lookups without I/O.
//
// Postfix's own code is the model: a rule that Postfix skips with a warning
// (unknown flag, bad $n, host bits in a CIDR network) is skipped here with
// the same warning; a pattern that Go's RE2 engine cannot compile is an
// error at open, naming file and line, because silently dropping it would
// change what the table answers.
package filemap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/mapfile"
)

// Option configures an Open function.
type Option func(*config)

type config struct {
	warn func(string)
}

// WithWarn sends the table's parse warnings (Postfix's wording) to fn
// instead of slog.Default().
func WithWarn(fn func(msg string)) Option { return func(c *config) { c.warn = fn } }

func newConfig(opts []Option) *config {
	c := &config{warn: func(msg string) { slog.Default().Warn(msg) }}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ErrFail is what every lookup in a fail: table returns.
var ErrFail = errors.New("table lookup failed (fail: table)")

// Texthash is texthash:/path — a postmap source file read directly.
type Texthash struct {
	m map[string]string
}

// OpenTexthash reads path in postmap(1) syntax. Keys are folded; the first
// of duplicate keys wins (with Postfix's warning); bad lines are skipped
// with a warning, as dict_thash does.
func OpenTexthash(path string, opts ...Option) (*Texthash, error) {
	c := newConfig(opts)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	defer f.Close()
	m := map[string]string{}
	err = ParseMapFile(path, f, true, func(key, value string, line int) error {
		if _, dup := m[key]; dup {
			c.warn(fmt.Sprintf("%s, line %d: duplicate entry: %q", path, line, key))
			return nil
		}
		m[key] = value
		return nil
	}, WithWarn(c.warn))
	if err != nil {
		return nil, err
	}
	return &Texthash{m: m}, nil
}

// ParseMapFile streams a postmap source file to fn, Postfix-lenient: bad
// lines are warned about (see WithWarn) and skipped. fold lowercases keys.
// For strict parsing (a bad line is an error) use mapfile.Parse directly.
func ParseMapFile(name string, r io.Reader, fold bool, fn func(key, value string, line int) error, opts ...Option) error {
	c := newConfig(opts)
	return mapfile.Parse(name, r, mapfile.Options{FoldCase: fold, Lenient: true, Warn: c.warn},
		func(e mapfile.Entry) error { return fn(e.Key, e.Value, e.Line) })
}

// Lookup implements mapdrivers.Map.
func (t *Texthash) Lookup(_ context.Context, key string) (string, bool, error) {
	v, ok := t.m[mapfile.Fold(key)]
	return v, ok, nil
}

// Props implements mapdrivers.Map.
func (t *Texthash) Props() mapdrivers.Props { return mapdrivers.Props{FoldCase: true} }

// Close implements mapdrivers.Map.
func (t *Texthash) Close() error { return nil }

// Fail is fail:name — every lookup is an error (Postfix uses it in tests).
type Fail struct{ name string }

// OpenFail returns a table whose every lookup fails.
func OpenFail(name string) (*Fail, error) { return &Fail{name: name}, nil }

// Lookup implements mapdrivers.Map: always ErrFail.
func (f *Fail) Lookup(context.Context, string) (string, bool, error) {
	return "", false, fmt.Errorf("fail:%s: %w", f.name, ErrFail)
}

// Props implements mapdrivers.Map.
func (f *Fail) Props() mapdrivers.Props { return mapdrivers.Props{} }

// Close implements mapdrivers.Map.
func (f *Fail) Close() error { return nil }

// NIS is nis:NAME on a host without NIS (no domain name set): Postfix
// warns once and finds nothing, so that defaults such as alias_maps =
// hash:/etc/aliases, nis:mail.aliases keep working without NIS.
type NIS struct{}

// OpenNIS returns the table and the warning Postfix logs for it.
func OpenNIS(name string) (*NIS, string) {
	return &NIS{}, "dict_nis_init: NIS domain name not set - NIS lookups disabled"
}

// Lookup implements mapdrivers.Map: never found.
func (NIS) Lookup(context.Context, string) (string, bool, error) { return "", false, nil }

// Props implements mapdrivers.Map.
func (NIS) Props() mapdrivers.Props { return mapdrivers.Props{} }

// Close implements mapdrivers.Map.
func (NIS) Close() error { return nil }
