package rewrite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sqlmta/mapdrivers"
)

// TransportMaps is transport_maps (transport(5)): per-address and
// per-domain overrides of the transport and next hop that the address class
// chose. Tables are opened at each lookup through Open, which shares one
// instance per table, so that a table that cannot be opened defers the
// recipients it would route instead of stopping the node.
type TransportMaps struct {
	Specs []string // the table references, in order: "hash:/etc/postfix/transport", …
	Open  func(ctx context.Context, spec string) (mapdrivers.Map, error)
	// Parent: parent_domain_matches_subdomains lists transport_maps, so the
	// key "example.com" also matches its subdomains. Otherwise subdomains
	// match only a ".example.com" key (Postfix's default).
	Parent    bool
	Delimiter string // recipient_delimiter, for the user@domain key of user+ext@domain
	// Warnf reports a lookup failure (the recipient is deferred); may be nil.
	Warnf func(format string, args ...any)
}

// resolveTimeout bounds the table lookups of one Resolve, which has no
// context of its own: a hung database defers mail instead of the qmgr.
const resolveTimeout = 30 * time.Second

// Resolver failure, as Postfix's qmgr words it when trivial-rewrite cannot
// answer: the recipient goes to the retry transport (deferred) with this text.
const (
	RetryTransport   = "retry"
	ResolveFailure   = "4.3.0 address resolver failure"
	errorTransport   = "error"
	errorNoNexthop   = "Address is undeliverable" // "error:" with no text
	transportWildKey = "*"
)

// Resolve finds the transport and next hop for a recipient address: the
// address class's transport (resolveClass), then transport_maps. A table
// failure routes the recipient to the retry transport.
func (r *Resolver) Resolve(addr string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	res, err := r.ResolveContext(ctx, addr)
	if err != nil {
		if r.Transport != nil && r.Transport.Warnf != nil {
			r.Transport.Warnf("address resolver failure for %s: %v", addr, err)
		}
		res.Transport, res.Nexthop = RetryTransport, ResolveFailure
	}
	return res
}

// ResolveContext is Resolve with the lookups under ctx; a table error is
// returned with the class's route.
func (r *Resolver) ResolveContext(ctx context.Context, addr string) (Result, error) {
	res, err := r.resolveClass(ctx, addr)
	if err != nil || r.Transport == nil || len(r.Transport.Specs) == 0 {
		return res, err
	}
	route := res
	if _, err := r.Transport.Lookup(ctx, addr, &route); err != nil {
		return res, err
	}
	return route, nil
}

// Lookup is trivial-rewrite's transport_lookup: the full address, then
// user@domain without the extension, then the domain and its parents
// (".parent" keys, or "parent" with Parent set), then "*". Each key is
// tried in every table before the next key; pattern tables (regexp, pcre)
// see only the full address and "*". The first match updates res as
// transport(5) says; found is false when nothing matched.
func (t *TransportMaps) Lookup(ctx context.Context, addr string, res *Result) (found bool, err error) {
	tabs := &Tables{Title: "transport_maps"}
	for _, spec := range t.Specs {
		m, err := t.Open(ctx, spec)
		if err != nil {
			return false, fmt.Errorf("transport_maps: %w", err)
		}
		tabs.Maps = append(tabs.Maps, m)
	}
	try := func(key string, partial bool) (bool, error) {
		v, ok, err := tabs.Find(ctx, key, partial)
		if err != nil {
			return false, fmt.Errorf("transport_maps: %s: %w", key, err)
		}
		if ok {
			applyTransportEntry(res, v)
		}
		return ok, nil
	}
	if _, domain, hasAt := SplitLocal(addr); hasAt && domain != "" {
		if ok, err := try(addr, false); ok || err != nil {
			return ok, err
		}
		if bare, _, ok := StripExtension(addr, t.Delimiter); ok {
			if ok, err := try(bare, true); ok || err != nil {
				return ok, err
			}
		}
		name := strings.TrimSuffix(strings.ToLower(domain), ".")
		for name != "" {
			if ok, err := try(name, true); ok || err != nil {
				return ok, err
			}
			// The next dot after the first character: "a.b.c" → ".b.c" →
			// ".c", or "b.c" → "c" in parent style.
			i := strings.IndexByte(name[1:], '.')
			if i < 0 {
				break
			}
			name = name[i+1:]
			if t.Parent {
				name = name[1:]
			}
		}
	}
	return try(transportWildKey, false)
}

// applyTransportEntry is update_entry: "transport:nexthop" with empty parts
// meaning "keep": ":" changes nothing, ":nexthop" only the next hop, and a
// transport with no next hop resets the next hop to the recipient domain
// (the error transport gets "Address is undeliverable").
func applyTransportEntry(res *Result, value string) {
	tr, hop, _ := strings.Cut(strings.TrimSpace(value), ":")
	if tr == "" {
		if hop != "" {
			res.Nexthop = hop
		}
		return
	}
	res.Transport = tr
	switch {
	case hop != "":
		res.Nexthop = hop
	case tr == errorTransport:
		res.Nexthop = errorNoNexthop
	default:
		res.Nexthop = res.Domain
	}
}
