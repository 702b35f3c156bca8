package matchlist

import "strings"

// Domains is a parsed host/domain list such as mydestination or relay_domains.
type Domains struct {
	items      []item
	subdomains bool
}

// ParseDomains parses domain-list items. With matchSubdomains (Postfix's
// parent_domain_matches_subdomains, on by default for relay_domains) the
// pattern "example.com" also matches "a.example.com"; without it only
// ".example.com" matches subdomains.
func ParseDomains(items []string, matchSubdomains bool) (*Domains, error) {
	exp, err := expand(items, 0)
	if err != nil {
		return nil, err
	}
	for i := range exp {
		exp[i].pattern = normDomain(exp[i].pattern)
	}
	return &Domains{items: exp, subdomains: matchSubdomains}, nil
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// Contains reports whether domain matches the list (case-insensitive; a
// trailing dot is ignored). The first matching item decides.
func (d *Domains) Contains(domain string) bool {
	if d == nil {
		return false
	}
	domain = normDomain(domain)
	if domain == "" {
		return false
	}
	for _, it := range d.items {
		if matchDomain(it.pattern, domain, d.subdomains) {
			return !it.negate
		}
	}
	return false
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
