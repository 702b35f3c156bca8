package cleanup

import (
	"context"
	"fmt"
	"sqlmta/mtad/rewrite"
	"strings"
)

// Postfix's cleanup status bits (cleanup_user.h) that this package raises.
// When several are set the SMTP reply follows smtpd's order: defer, then
// content, then write.
const (
	statDefer = 1 << iota // temporary, with the reason's DSN (4.6.0 Alias expansion error, REJECT 4.x.x)
	statCont              // content rejected (header_checks REJECT)
	statWrite             // lookup problem: "queue file write error"
)

// state is one message's progress through cleanup: its errors and the
// fields that Postfix's action log lines show.
type state struct {
	queueID string
	errs    int
	reason  string // "D.S.N text" for statDefer/statCont
	sender  string // envelope sender after rewriting
	recip   string // last envelope recipient after rewriting (before virtual)
	discard bool
	passed  bool // header_checks PASS: the rest of the message goes unchecked
	// What header_checks' HOLD, REDIRECT and FILTER asked for (the last
	// one wins; hold is the header that triggered it), and BCC's addresses.
	hold, redirect, filter string
	bcc                    []string
}

// maps is one *_maps parameter opened: its tables in the order given.
type maps = rewrite.Tables

// openMaps opens the tables of parameter title. A table that cannot be
// opened is a temporary failure of this message, never a silent skip.
func (c *Cleanup) openMaps(ctx context.Context, title string, specs []string) (*maps, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if c.cfg.OpenMap == nil {
		return nil, fmt.Errorf("%s: no table opener configured", title)
	}
	m := &maps{Title: title}
	for _, spec := range specs {
		t, err := c.cfg.OpenMap(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", title, err)
		}
		m.Maps = append(m.Maps, t)
	}
	return m, nil
}

// findAddr is mail_addr_find (rewrite.FindAddr) with cleanup's
// recipient_delimiter and local domains. ext is the extension that was
// stripped to find the match.
func (c *Cleanup) findAddr(ctx context.Context, m *maps, addr string) (value, ext string, found bool, err error) {
	return rewrite.FindAddr(ctx, m, addr, c.cfg.RecipientDelimiter, c.localpartLookup)
}

func (c *Cleanup) localpartLookup(domain string) bool {
	return c.cfg.IsLocalDomain != nil && c.cfg.IsLocalDomain(domain)
}

// mapAddr is mail_addr_map: the lookup result split into addresses, each
// put into standard form, "@otherdomain" meaning the same user there, and
// an unmatched extension re-added when propagate is set. A result with no
// address in it is a lookup error, as in Postfix.
func (c *Cleanup) mapAddr(ctx context.Context, m *maps, addr string, propagate bool) ([]string, bool, error) {
	value, ext, found, err := c.findAddr(ctx, m, addr)
	if err != nil || !found {
		return nil, false, err
	}
	if strings.HasPrefix(value, "@") {
		local, _, _ := rewrite.SplitLocal(addr)
		value = strings.TrimSuffix(local, ext) + value
	}
	var out []string
	for _, a := range splitAddrList(value) {
		a = c.qualify(a)
		if propagate && ext != "" {
			if i := strings.LastIndexByte(a, '@'); i >= 0 {
				a = a[:i] + ext + a[i:]
			} else {
				a += ext
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		c.log.Printf("cleanup", "warning: %s lookup of %s returns non-address result \"%s\"", m.Title, addr, value)
		return nil, false, fmt.Errorf("%s: non-address result for %s", m.Title, addr)
	}
	return out, true, nil
}

// splitAddrList splits a table value into addresses: commas (outside
// quotes) separate them, and "<addr>" forms lose their brackets.
func splitAddrList(value string) []string {
	var out []string
	inQuote := false
	start := 0
	flush := func(end int) {
		a := strings.TrimSpace(value[start:end])
		if i := strings.LastIndexByte(a, '<'); i >= 0 && strings.HasSuffix(a, ">") {
			a = strings.TrimSpace(a[i+1 : len(a)-1])
		}
		if a != "" {
			out = append(out, a)
		}
	}
	for i := 0; i < len(value); i++ {
		switch value[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				flush(i)
				start = i + 1
			}
		}
	}
	flush(len(value))
	return out
}

// maxCanonicalRecursion is cleanup_map11.c's MAX_RECURSION.
const maxCanonicalRecursion = 10

// map11 is cleanup_map11: a canonical mapping, applied again to its own
// result until an address maps onto itself (or ten rounds pass). Only the
// first address of a multi-valued result is used.
func (c *Cleanup) map11(ctx context.Context, st *state, m *maps, addr string) string {
	if m == nil || addr == "" {
		return addr
	}
	for range maxCanonicalRecursion {
		res, found, err := c.mapAddr(ctx, m, addr, c.propagate("canonical"))
		if err != nil {
			c.log.Printf("cleanup", "warning: %s: %s map lookup problem for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
			st.errs |= statWrite
			return addr
		}
		if !found {
			return addr
		}
		if len(res) > 1 {
			c.log.Printf("cleanup", "warning: %s: multi-valued %s entry for %s", st.queueID, m.Title, addr)
		}
		self := strings.EqualFold(res[0], addr)
		addr = res[0]
		if self {
			return addr
		}
	}
	c.log.Printf("cleanup", "warning: %s: unreasonable %s map nesting for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
	return addr
}

// aliasExpansionError is the reason cleanup gives for virtual alias
// trouble; smtpd shows it as "451 4.6.0 Alias expansion error" when a limit
// was hit (a lookup failure answers "451 4.3.0 Error: queue file write
// error" instead, as Postfix does).
const aliasExpansionError = "4.6.0 Alias expansion error"

// map1n is cleanup_map1n: virtual alias expansion. Each result is looked
// up again; an address that expands to itself is kept and not expanded
// again. On any trouble the message is not accepted and the address is
// left unexpanded.
func (c *Cleanup) map1n(ctx context.Context, st *state, m *maps, addr string) []string {
	argv := []string{addr}
	beenHere := map[string]bool{}
	fail := func(bit int, format string, args ...any) []string {
		c.log.Printf("cleanup", "warning: "+format, args...)
		st.errs |= bit
		st.reason = aliasExpansionError
		return []string{addr}
	}
	for arg := 0; arg < len(argv); arg++ {
		if len(argv) > c.cfg.VirtualAliasExpansionLimit {
			return fail(statDefer, "%s: unreasonable %s map expansion size for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
		}
		for count := 0; ; count++ {
			if beenHere[strings.ToLower(argv[arg])] {
				break
			}
			if count >= c.cfg.VirtualAliasRecursionLimit {
				return fail(statDefer, "%s: unreasonable %s map nesting for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
			}
			res, found, err := c.mapAddr(ctx, m, argv[arg], c.propagate("virtual"))
			if err != nil {
				return fail(statWrite, "%s: %s map lookup problem for %s -- message not accepted, try again later", st.queueID, m.Title, addr)
			}
			if !found {
				break
			}
			lhs := argv[arg]
			for i, r := range res {
				if len(r) > c.cfg.VirtualAliasAddressLengthLimit {
					return fail(statDefer, "%s: unreasonable %s result %.300s... -- message not accepted, try again later", st.queueID, m.Title, r)
				}
				if i == 0 {
					argv[arg] = r
				} else {
					argv = append(argv, r)
				}
				// An address may expand into itself once.
				if strings.EqualFold(lhs, r) {
					beenHere[strings.ToLower(lhs)] = true
				}
			}
		}
	}
	return argv
}

func (c *Cleanup) propagate(class string) bool {
	for _, p := range c.cfg.PropagateUnmatchedExtensions {
		if strings.EqualFold(p, class) {
			return true
		}
	}
	return false
}

func hasClass(classes []string, class string) bool {
	for _, k := range classes {
		if strings.EqualFold(k, class) {
			return true
		}
	}
	return false
}

// masquerade is cleanup_masquerade: the first masquerade_domains entry that
// is a parent of the address's domain replaces it ("!entry" exempts that
// domain and its subdomains); an entry equal to the domain ends the scan
// unchanged. Localparts in masquerade_exceptions are never masqueraded.
func (c *Cleanup) masquerade(addr string) string {
	local, domain, hasAt := rewrite.SplitLocal(addr)
	if !hasAt || len(c.cfg.MasqueradeDomains) == 0 {
		return addr
	}
	for _, e := range c.cfg.MasqueradeExceptions {
		if strings.EqualFold(e, local) {
			return addr
		}
	}
	domain = strings.ToLower(domain)
	for _, masq := range c.cfg.MasqueradeDomains {
		truncate := true
		for strings.HasPrefix(masq, "!") {
			masq = masq[1:]
			truncate = !truncate
		}
		masq = strings.ToLower(masq)
		switch {
		case masq == "":
			continue
		case masq == domain:
			return addr
		case len(masq) < len(domain) && strings.HasSuffix(domain, "."+masq):
			if truncate {
				return local + "@" + masq
			}
			return addr
		}
	}
	return addr
}
