package matchlist

import (
	"context"
	"fmt"
	"strings"

	"sqlmta/mapdrivers"
)

// Domains is a parsed host/domain list such as mydestination or relay_domains.
type Domains struct {
	items      []item
	tables     map[string]mapdrivers.Map // by item pattern
	subdomains bool
}

// OpenFunc opens a "type:name" list item.
type OpenFunc func(ctx context.Context, spec string) (mapdrivers.Map, error)

// ParseDomains parses domain-list items. With matchSubdomains (Postfix's
// parent_domain_matches_subdomains, on by default for relay_domains) the
// pattern "example.com" also matches "a.example.com"; without it only
// ".example.com" matches subdomains. Table items need ParseDomainsTables.
func ParseDomains(items []string, matchSubdomains bool) (*Domains, error) {
	return ParseDomainsTables(context.Background(), items, matchSubdomains, nil)
}

// ParseDomainsTables is ParseDomains with "type:name" items opened by open
// (nil: such items are an error). A domain matches a table when the table
// has it as a key, the value being ignored; a fixed-string table is also
// asked for the parent domains ("b.c" with matchSubdomains, else ".b.c").
func ParseDomainsTables(ctx context.Context, items []string, matchSubdomains bool, open OpenFunc) (*Domains, error) {
	exp, err := expand(items, 0)
	if err != nil {
		return nil, err
	}
	d := &Domains{subdomains: matchSubdomains}
	for i := range exp {
		if !exp[i].table {
			exp[i].pattern = normDomain(exp[i].pattern)
			continue
		}
		if open == nil {
			return nil, &ErrTableNotSupported{Item: exp[i].pattern}
		}
		if _, ok := d.tables[exp[i].pattern]; ok {
			continue
		}
		m, err := open(ctx, exp[i].pattern)
		if err != nil {
			return nil, err
		}
		if d.tables == nil {
			d.tables = map[string]mapdrivers.Map{}
		}
		d.tables[exp[i].pattern] = m
	}
	d.items = exp
	return d, nil
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// Contains reports whether domain matches the list (case-insensitive; a
// trailing dot is ignored). The first matching item decides. A table that
// fails counts as no match: callers that must tell a failure from a miss
// use Match.
func (d *Domains) Contains(domain string) bool {
	ok, _ := d.Match(context.Background(), domain)
	return ok
}

// Match is Contains that reports a table lookup failure, which ends the
// scan as Postfix's match_list does (the caller answers 4xx).
func (d *Domains) Match(ctx context.Context, domain string) (bool, error) {
	if d == nil {
		return false, nil
	}
	domain = normDomain(domain)
	if domain == "" {
		return false, nil
	}
	for _, it := range d.items {
		if it.table {
			ok, err := d.matchTable(ctx, d.tables[it.pattern], domain)
			if err != nil {
				return false, fmt.Errorf("%s: table lookup problem: %w", it.pattern, err)
			}
			if ok {
				return !it.negate, nil
			}
			continue
		}
		if matchDomain(it.pattern, domain, d.subdomains) {
			return !it.negate, nil
		}
	}
	return false, nil
}

// matchTable is match_hostname's table case: the name itself, then (for
// fixed-string tables only) each parent domain.
func (d *Domains) matchTable(ctx context.Context, m mapdrivers.Map, domain string) (bool, error) {
	if _, ok, err := m.Lookup(ctx, domain); ok || err != nil {
		return ok, err
	}
	if m.Props().Pattern {
		return false, nil
	}
	for rest := domain; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 || i == len(rest)-1 {
			return false, nil
		}
		key := rest[i:] // ".b.c"
		if d.subdomains {
			key = rest[i+1:]
		}
		if _, ok, err := m.Lookup(ctx, key); ok || err != nil {
			return ok, err
		}
		rest = rest[i+1:]
	}
}

func matchDomain(pattern, domain string, subdomains bool) bool {
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(domain, pattern)
	}
	if domain == pattern {
		return true
	}
	return subdomains && strings.HasSuffix(domain, "."+pattern)
}
