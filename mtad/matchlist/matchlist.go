// Package matchlist implements Postfix's host/domain and network lists
// (mydestination, relay_domains, mynetworks, …): items are tried left to
// right, the first match wins, "!item" excludes, and a "/file/name" item is
// replaced by the items in that file. Lookup-table items ("type:table") are
// opened through the caller's opener in domain lists; network lists refuse
// them for now, so that a configuration relying on them fails loudly.
package matchlist

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"sqlmta/config"
	"strings"
)

// ErrTableNotSupported is returned for "type:table" list items.
type ErrTableNotSupported struct{ Item string }

func (e *ErrTableNotSupported) Error() string {
	return fmt.Sprintf("list item %q: lookup tables in lists are not supported yet", e.Item)
}

// item is one pattern of a list after file expansion.
type item struct {
	pattern string
	negate  bool
	table   bool // pattern is "type:name"
}

// expand turns raw list items into patterns: it splits on commas and
// whitespace, reads /file items (recursively, with a depth bound against
// include loops) and marks type:table items.
func expand(items []string, depth int) ([]item, error) {
	if depth > 10 {
		return nil, fmt.Errorf("list files nested too deeply")
	}
	var out []item
	for _, raw := range items {
		for _, f := range config.SplitList(raw) {
			neg := false
			for strings.HasPrefix(f, "!") {
				neg = !neg
				f = f[1:]
			}
			if f == "" {
				return nil, fmt.Errorf("list item %q: empty pattern", raw)
			}
			switch {
			case strings.HasPrefix(f, "/"):
				words, err := readFile(f)
				if err != nil {
					return nil, err
				}
				sub, err := expand(words, depth+1)
				if err != nil {
					return nil, err
				}
				// "!/file" negates every item in the file, as Postfix's
				// match_list does.
				for _, s := range sub {
					out = append(out, item{pattern: s.pattern, negate: s.negate != neg})
				}
			case isTable(f):
				out = append(out, item{pattern: f, negate: neg, table: true})
			default:
				out = append(out, item{pattern: f, negate: neg})
			}
		}
	}
	return out, nil
}

// isTable reports whether f looks like "type:name". IPv6 addresses also
// contain colons, but in lists they are bracketed or start with a hex digit
// or ':' and have no letters-only prefix followed by ':'.
func isTable(f string) bool {
	i := strings.IndexByte(f, ':')
	if i <= 0 || strings.HasPrefix(f, "[") {
		return false
	}
	for _, c := range f[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	// Unbracketed IPv6 ("fe80::1", "2001:db8::/32") also has a colon.
	addr, _, _ := strings.Cut(f, "/")
	if _, err := netip.ParseAddr(addr); err == nil {
		return false
	}
	return true
}

// readFile returns the items of a list file: blank lines and lines starting
// with '#' are ignored; other lines may hold several items.
func readFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open list file: %w", err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words = append(words, config.SplitList(line)...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read list file %s: %w", name, err)
	}
	return words, nil
}
