// Package config reads Postfix-style main.cf and master.cf files and answers
// parameter lookups with Postfix 3.7's defaults and its lazy, recursive $name
// expansion.
//
// A Config holds the raw (unexpanded) text of main.cf plus any overrides; values
// are expanded only when asked for, so the order of definitions never matters,
// exactly as in Postfix. The package uses only the standard library so that every
// other package may import it.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ParseError reports a main.cf or master.cf line that cannot be understood.
// Its text follows Postfix's "FILE, line N: message" form.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s, line %d: %s", e.File, e.Line, e.Msg)
}

// Config is a loaded main.cf together with the built-in defaults.
//
// Reads (Get, Lookup, Bool, …) are safe for concurrent use. Set mutates the
// Config and must not run concurrently with reads; use With to derive a
// per-service copy instead.
type Config struct {
	file     string            // path shown in warnings and errors
	values   map[string]string // raw values from main.cf and Set
	explicit map[string]bool   // names that do not come from the defaults
	hostname string            // os.Hostname() at load time, for myhostname

	mu       sync.Mutex
	warnings []string
	warned   map[string]bool
}

// Load reads dir/main.cf. A missing main.cf is not an error: the result then
// holds only the defaults. config_directory is set to dir, as `postconf -c`
// does, unless main.cf sets it.
func Load(dir string) (*Config, error) {
	path := filepath.Join(dir, "main.cf")
	f, err := os.Open(path)
	var c *Config
	switch {
	case errors.Is(err, os.ErrNotExist):
		c = newConfig(path)
	case err != nil:
		return nil, err
	default:
		defer f.Close()
		if c, err = Parse(path, f); err != nil {
			return nil, err
		}
	}
	if _, ok := c.values["config_directory"]; !ok {
		// Not marked explicit: mtactl conf decides, as postconf -n shows
		// config_directory only for a non-default -c directory.
		c.values["config_directory"] = dir
	}
	return c, nil
}

// Parse reads main.cf text from r; name is used in errors and warnings.
func Parse(name string, r io.Reader) (*Config, error) {
	c := newConfig(name)
	lines, err := readLogicalLines(name, r)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if l.warning != "" {
			c.warn(l.warning)
			continue
		}
		k, v, perr := splitNameValue(l.text)
		if perr != "" {
			return nil, &ParseError{File: name, Line: l.line, Msg: perr}
		}
		if old, ok := c.values[k]; ok && c.explicit[k] {
			c.warn(fmt.Sprintf("%s, line %d: overriding earlier entry: %s=%s", name, l.line, k, old))
		}
		c.values[k] = v
		c.explicit[k] = true
	}
	c.dropReadOnly()
	return c, nil
}

func newConfig(file string) *Config {
	h, _ := os.Hostname()
	return &Config{
		file:     file,
		values:   map[string]string{},
		explicit: map[string]bool{},
		hostname: h,
		warned:   map[string]bool{},
	}
}

// With returns a copy of c in which the given raw values replace c's, as a
// master.cf service's -o options do. c itself is not changed.
func (c *Config) With(overrides map[string]string) *Config {
	n := &Config{
		file:     c.file,
		values:   make(map[string]string, len(c.values)+len(overrides)),
		explicit: make(map[string]bool, len(c.explicit)+len(overrides)),
		hostname: c.hostname,
		warned:   map[string]bool{},
	}
	for k, v := range c.values {
		n.values[k] = v
	}
	for k, v := range c.explicit {
		n.explicit[k] = v
	}
	for k, v := range overrides {
		n.values[k] = v
		n.explicit[k] = true
	}
	return n
}

// Set replaces the raw value of name (an override: master.cf -o, tests,
// mtactl conf -e). The value is expanded lazily like any main.cf value.
func (c *Config) Set(name, value string) {
	c.values[name] = value
	c.explicit[name] = true
}

// File is the path main.cf was read from (or would have been).
func (c *Config) File() string { return c.file }

// Explicit lists, sorted, the names whose value does not come from the
// defaults: those set in main.cf and by Set/With (what `postconf -n` shows).
func (c *Config) Explicit() []string {
	names := make([]string, 0, len(c.explicit))
	for k := range c.explicit {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// IsExplicit reports whether name was set in main.cf or by an override.
func (c *Config) IsExplicit(name string) bool { return c.explicit[name] }

// Raw returns the unexpanded value of name: main.cf's or an override's, else
// the default (computed for myhostname, mydomain and mynetworks). The boolean
// is false for a name that is neither set nor a known parameter.
func (c *Config) Raw(name string) (string, bool) {
	e := expander{c: c}
	v, ok, err := e.raw(name)
	if err != nil {
		c.warn(err.Error())
	}
	return v, ok
}

// Get returns the expanded value of name. Problems (undefined parameters,
// syntax errors, loops) become warnings and the best-effort text is returned;
// use Lookup where an error must stop the caller.
func (c *Config) Get(name string) string {
	v, err := c.Lookup(name)
	if err != nil {
		c.warn(err.Error())
	}
	return v
}

// Lookup returns the expanded value of name, or the first expansion error.
// An undefined name yields "" and a warning, not an error, as in Postfix.
func (c *Config) Lookup(name string) (string, error) {
	e := expander{c: c}
	return e.param(name)
}

// Expand expands $name references in s against c.
func (c *Config) Expand(s string) (string, error) {
	e := expander{c: c}
	return e.expand(s, 0)
}

// ExpandWith expands s with vars taking precedence over c's parameters: for
// templates that use per-message names such as default_rbl_reply ($rbl_code,
// …) or forward_path ($home, $extension). vars values are expanded too.
func (c *Config) ExpandWith(s string, vars map[string]string) (string, error) {
	e := expander{c: c, vars: vars}
	return e.expand(s, 0)
}

// Check expands every explicit and built-in parameter and returns the first
// error, so that a daemon can refuse a broken main.cf at start-up the way
// Postfix's fatal "macro processing error" does.
func (c *Config) Check() error {
	var errs []error
	seen := map[string]bool{}
	check := func(n string) {
		// Templates ($home in forward_path, $rbl_code in default_rbl_reply)
		// are expanded per message with ExpandWith, never as they stand.
		if seen[n] || IsRaw(n) {
			return
		}
		seen[n] = true
		if _, err := c.Lookup(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	for _, n := range c.Explicit() {
		check(n)
	}
	for _, p := range params {
		check(p.Name)
	}
	return errors.Join(errs...)
}

// Warnings returns the warnings collected so far (overridden entries,
// undefined parameters, expansion problems met by Get), each once.
func (c *Config) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}

func (c *Config) warn(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warned[msg] {
		return
	}
	c.warned[msg] = true
	c.warnings = append(c.warnings, msg)
}

// List returns the expanded value of name split into items (see SplitList).
func (c *Config) List(name string) []string {
	return SplitList(c.Get(name))
}

// Bool parses a yes/no parameter. Like Postfix, anything other than yes or
// no (in any case) is an error rather than a guess.
func (c *Config) Bool(name string) (bool, error) {
	v, err := c.Lookup(name)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(v) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean configuration: %s = %s", name, v)
}

// Int parses an integer parameter.
func (c *Config) Int(name string) (int, error) {
	v, err := c.Lookup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("bad numerical configuration: %s = %s", name, v)
	}
	return n, nil
}

// Size parses a byte-count parameter (message_size_limit, …). Postfix takes
// plain byte counts only, so no k/M suffixes are accepted here either.
func (c *Config) Size(name string) (int64, error) {
	v, err := c.Lookup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad numerical configuration: %s = %s", name, v)
	}
	return n, nil
}

// Duration parses a time parameter: a non-negative integer with an optional
// unit s, m, h, d or w (lower case only, as in Postfix). A bare number takes the parameter's default unit from
// the parameter table (seconds for parameters the table does not know).
func (c *Config) Duration(name string) (time.Duration, error) {
	v, err := c.Lookup(name)
	if err != nil {
		return 0, err
	}
	unit := byte('s')
	if p, ok := paramIndex[name]; ok && p.Unit != 0 {
		unit = p.Unit
	}
	d, ok := ParseDuration(v, unit)
	if !ok {
		return 0, fmt.Errorf("bad time configuration: %s = %s", name, v)
	}
	return d, nil
}

// ParseDuration converts Postfix time syntax ("300", "300s", "5d") to a
// time.Duration, using defaultUnit when s has none.
func ParseDuration(s string, defaultUnit byte) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	unit := defaultUnit
	if last := s[len(s)-1]; last < '0' || last > '9' {
		unit = last
		s = s[:len(s)-1]
	}
	var mult time.Duration
	switch unit {
	case 's':
		mult = time.Second
	case 'm':
		mult = time.Minute
	case 'h':
		mult = time.Hour
	case 'd':
		mult = 24 * time.Hour
	case 'w':
		mult = 7 * 24 * time.Hour
	default:
		return 0, false
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > int64((1<<63-1)/mult) {
		return 0, false
	}
	return time.Duration(n) * mult, true
}
