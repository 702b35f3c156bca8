package filemap

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/mapfile"
)

// CIDR is a cidr_table(5): rules tried in file order, first match wins (not
// the most specific), IPv4 and IPv6, "!" negation and if/endif blocks. A
// rule never matches a key of the other address family, negated or not;
// an IPv4-mapped IPv6 key is IPv6.
type CIDR struct {
	rules []cidrRule
}

type cidrRule struct {
	kind   ruleKind
	prefix netip.Prefix
	negate bool
	result string
	end    int
	line   int
}

// OpenCIDR reads a cidr_table(5) file. Rules Postfix skips (host bits set,
// bad mask, no result) are skipped with Postfix's warning.
func OpenCIDR(path string, opts ...Option) (*CIDR, error) {
	c := newConfig(opts)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	t := &CIDR{}
	var stack []int
	warn := func(line int, format string, args ...any) {
		c.warn(fmt.Sprintf("cidr map %s, line %d: ", path, line) + fmt.Sprintf(format, args...))
	}
	err = mapfile.Lines(path, f, mapfile.Options{Lenient: true, Warn: c.warn}, func(p string, n int) error {
		switch {
		case len(p) >= 2 && strings.EqualFold(p[:2], "if") && (len(p) == 2 || isSpace(p[2])):
			r, ok := parseCIDRRule(p[2:], n, true, warn)
			if ok {
				stack = append(stack, len(t.rules))
				t.rules = append(t.rules, r)
			}
		case len(p) >= 5 && strings.EqualFold(p[:5], "endif") && (len(p) == 5 || isSpace(p[5])):
			if len(stack) == 0 {
				warn(n, "ignoring ENDIF without matching IF")
				return nil
			}
			t.rules[stack[len(stack)-1]].end = len(t.rules)
			stack = stack[:len(stack)-1]
			t.rules = append(t.rules, cidrRule{kind: ruleEndif, line: n})
		default:
			if r, ok := parseCIDRRule(p, n, false, warn); ok {
				t.rules = append(t.rules, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, i := range stack {
		warn(t.rules[i].line, "IF has no matching ENDIF")
		t.rules[i].end = len(t.rules)
	}
	return t, nil
}

func parseCIDRRule(s string, n int, isIf bool, warn func(int, string, ...any)) (cidrRule, bool) {
	r := cidrRule{line: n, kind: ruleMatch}
	if isIf {
		r.kind = ruleIf
	}
	s = skipSpace(s)
	if strings.HasPrefix(s, "!") {
		r.negate = true
		s = skipSpace(s[1:])
	}
	i := 0
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	pat, rest := s[:i], strings.TrimRight(skipSpace(s[i:]), " \t\r\n\v\f")
	if isIf {
		if rest != "" {
			warn(n, "ignoring extra text after IF statement: %q", rest)
		}
	} else if rest == "" {
		warn(n, "no lookup result: skipping this rule")
		return r, false
	}
	r.result = rest
	addr, bits, hasMask := pat, "", false
	if k := strings.IndexByte(pat, '/'); k >= 0 {
		addr, bits, hasMask = pat[:k], pat[k+1:], true
	}
	if len(addr) > 2 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Zone() != "" {
		warn(n, "bad address pattern: %q: skipping this rule", pat)
		return r, false
	}
	plen := ip.BitLen()
	if hasMask {
		v, err := strconv.Atoi(bits)
		if bits == "" || err != nil || bits[0] == '+' || bits[0] == '-' {
			warn(n, "bad mask value in %q: skipping this rule", pat)
			return r, false
		}
		if v > ip.BitLen() {
			warn(n, "bad mask length in %q: skipping this rule", pat)
			return r, false
		}
		plen = v
	}
	pfx := netip.PrefixFrom(ip, plen)
	if pfx.Masked().Addr() != ip {
		warn(n, "non-null host address bits in %q, perhaps you should use \"%s/%d\" instead: skipping this rule",
			pat, pfx.Masked().Addr(), plen)
		return r, false
	}
	r.prefix = pfx
	return r, true
}

// match reports whether the rule's network contains ip, honouring "!";
// a key of the other address family never matches.
func (r *cidrRule) match(ip netip.Addr) bool {
	if ip.Is4() != r.prefix.Addr().Is4() {
		return false
	}
	return r.prefix.Contains(ip) != r.negate
}

// Lookup implements mapdrivers.Map. A key that is not an IP address is
// simply not found.
func (t *CIDR) Lookup(_ context.Context, key string) (string, bool, error) {
	ip, err := netip.ParseAddr(key)
	if err != nil || ip.Zone() != "" {
		return "", false, nil
	}
	for i := 0; i < len(t.rules); {
		r := &t.rules[i]
		switch r.kind {
		case ruleEndif:
			i++
		case ruleIf:
			if r.match(ip) {
				i++
			} else {
				i = r.end + 1
			}
		default:
			if r.match(ip) {
				return r.result, true, nil
			}
			i++
		}
	}
	return "", false, nil
}

// Props implements mapdrivers.Map.
func (t *CIDR) Props() mapdrivers.Props { return mapdrivers.Props{Pattern: true} }

// Close implements mapdrivers.Map.
func (t *CIDR) Close() error { return nil }
