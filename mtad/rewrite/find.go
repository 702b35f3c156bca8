package rewrite

import (
	"context"
	"strings"

	"sqlmta/mapdrivers"
)

// Tables is one *_maps parameter opened: its tables in the order given.
// The zero value (no tables) finds nothing.
type Tables struct {
	Title string // the parameter name, as Postfix's warnings show it
	Maps  []mapdrivers.Map
}

// Empty reports whether the parameter names no table.
func (t *Tables) Empty() bool { return t == nil || len(t.Maps) == 0 }

// Find is maps_find: each table in turn, the first hit wins, the first
// error ends the search. Pattern tables see only full keys (partial is
// false); fixed-string tables get the key lowercased.
func (t *Tables) Find(ctx context.Context, key string, partial bool) (string, bool, error) {
	if t == nil {
		return "", false, nil
	}
	for _, m := range t.Maps {
		p := m.Props()
		if partial && p.Pattern {
			continue
		}
		k := key
		if p.FoldCase {
			k = strings.ToLower(k)
		}
		v, ok, err := m.Lookup(ctx, k)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return "", false, nil
}

// FindAddr is mail_addr_find with the default strategy: user+ext@domain,
// user@domain, then — only when the domain is $myorigin or local —
// user+ext and user, then @domain; each key in every table before the
// next key. ext is the extension that was stripped to find the match.
// delims is recipient_delimiter.
func (r *Resolver) FindAddr(ctx context.Context, t *Tables, addr, delims string) (value, ext string, found bool, err error) {
	return FindAddr(ctx, t, addr, delims, r.LocalpartLookup)
}

// FindAddr is Resolver.FindAddr for callers without a Resolver: localpart
// says whether a domain allows bare-localpart keys.
func FindAddr(ctx context.Context, t *Tables, addr, delims string, localpart func(domain string) bool) (value, ext string, found bool, err error) {
	bare, savedExt, hasExt := StripExtension(addr, delims)
	if value, found, err = t.Find(ctx, addr, false); found || err != nil {
		return value, "", found, err
	}
	if hasExt {
		if value, found, err = t.Find(ctx, bare, true); found || err != nil {
			return value, savedExt, found, err
		}
	}
	local, domain, hasAt := SplitLocal(addr)
	if !hasAt {
		return "", "", false, nil
	}
	if localpart != nil && localpart(domain) {
		if value, found, err = t.Find(ctx, local, true); found || err != nil {
			return value, "", found, err
		}
		if hasExt {
			bareLocal, _, _ := SplitLocal(bare)
			if value, found, err = t.Find(ctx, bareLocal, true); found || err != nil {
				return value, savedExt, found, err
			}
		}
	}
	value, found, err = t.Find(ctx, "@"+domain, true)
	return value, "", found, err
}

// SplitLocal splits an address at its last '@'; domain is "" when there is none.
func SplitLocal(addr string) (local, domain string, hasAt bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, "", false
	}
	return addr[:i], addr[i+1:], true
}

// StripExtension is strip_addr: "user+foo@domain" → "user@domain" and
// "+foo" for recipient_delimiter "+" (any of its characters delimits). As
// in Postfix, postmaster, MAILER-DAEMON and double-bounce are never split,
// nor (with '-' as a delimiter) owner-foo and foo-request, nor a localpart
// that would become empty.
func StripExtension(addr, delims string) (bare, ext string, ok bool) {
	if delims == "" || !strings.ContainsAny(addr, delims) {
		return "", "", false
	}
	local, domain, hasAt := SplitLocal(addr)
	for _, special := range []string{"postmaster", "MAILER-DAEMON", "double-bounce"} {
		if strings.EqualFold(local, special) {
			return "", "", false
		}
	}
	if strings.Contains(delims, "-") {
		lower := strings.ToLower(local)
		if strings.HasPrefix(lower, "owner-") || (len(lower) > 8 && strings.HasSuffix(lower, "-request")) {
			return "", "", false
		}
	}
	n := strings.IndexAny(local, delims)
	if n <= 0 {
		return "", "", false
	}
	bare, ext = local[:n], local[n:]
	if hasAt {
		bare += "@" + domain
	}
	return bare, ext, true
}
