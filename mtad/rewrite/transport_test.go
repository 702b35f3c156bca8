package rewrite

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"sqlmta/mapdrivers"
)

// fakeMap is a fixed-string (or pattern) table that records its keys.
type fakeMap struct {
	name    string
	entries map[string]string
	pattern bool
	fail    bool
	keys    *[]string
}

func (m *fakeMap) Lookup(_ context.Context, key string) (string, bool, error) {
	if m.keys != nil {
		*m.keys = append(*m.keys, m.name+":"+key)
	}
	if m.fail {
		return "", false, errors.New("database down")
	}
	v, ok := m.entries[key]
	return v, ok, nil
}

func (m *fakeMap) Props() mapdrivers.Props {
	return mapdrivers.Props{Pattern: m.pattern, FoldCase: !m.pattern}
}

func (m *fakeMap) Close() error { return nil }

// transportResolver has the classes of TestResolve and transport_maps made
// of the given tables, named t0, t1, ….
func transportResolver(maps ...*fakeMap) *Resolver {
	byName := map[string]mapdrivers.Map{}
	var specs []string
	for i, m := range maps {
		spec := fmt.Sprintf("fake:t%d", i)
		byName[spec] = m
		specs = append(specs, spec)
	}
	return &Resolver{
		MyDestination:         set{"mail.example.com": true},
		VirtualMailboxDomains: set{"hosted.example": true},
		LocalTransport:        "local:mail.example.com",
		VirtualTransport:      "virtual",
		RelayTransport:        "relay",
		DefaultTransport:      "smtp",
		Relayhost:             "[relay.example]:2525",
		Transport: &TransportMaps{
			Specs:     specs,
			Delimiter: "+",
			Open: func(_ context.Context, spec string) (mapdrivers.Map, error) {
				m, ok := byName[spec]
				if !ok {
					return nil, fmt.Errorf("no table %s", spec)
				}
				return m, nil
			},
		},
	}
}

func TestTransportMapsLookupOrder(t *testing.T) {
	var keys []string
	m := &fakeMap{name: "t0", entries: map[string]string{}, keys: &keys}
	r := transportResolver(m)
	r.Resolve("Bob+Box@Sub.Deep.Example.COM")
	want := []string{
		"t0:bob+box@sub.deep.example.com", // the full address (folded for a fixed-string table)
		"t0:bob@sub.deep.example.com",     // without the extension
		"t0:sub.deep.example.com",         // the domain
		"t0:.deep.example.com",            // parent domains with a leading dot
		"t0:.example.com",
		"t0:.com",
		"t0:*", // the wild card last
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys looked up:\n got %q\nwant %q", keys, want)
	}

	keys = nil
	r.Transport.Parent = true
	r.Resolve("bob@sub.example.com")
	want = []string{"t0:bob@sub.example.com", "t0:sub.example.com", "t0:example.com", "t0:com", "t0:*"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("parent style:\n got %q\nwant %q", keys, want)
	}
}

func TestTransportMapsEachKeyInEveryTable(t *testing.T) {
	var keys []string
	fixed := &fakeMap{name: "hash", entries: map[string]string{"example.com": "lmtp:inet:127.0.0.1:24"}, keys: &keys}
	pattern := &fakeMap{name: "regexp", entries: map[string]string{}, pattern: true, keys: &keys}
	r := transportResolver(pattern, fixed)
	got := r.Resolve("a+x@example.com")
	if got.Transport != "lmtp" || got.Nexthop != "inet:127.0.0.1:24" {
		t.Errorf("Resolve = %+v, want lmtp:inet:127.0.0.1:24", got)
	}
	// The pattern table sees only full keys (the address, "*"); the domain
	// is tried in every table only after the address failed in all.
	want := []string{"regexp:a+x@example.com", "hash:a+x@example.com", "hash:a@example.com", "hash:example.com"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys:\n got %q\nwant %q", keys, want)
	}
}

func TestTransportMapsFirstMatchWins(t *testing.T) {
	tab := &fakeMap{entries: map[string]string{
		"vip@example.com": "smtp:[vip.example]",
		"example.com":     "lmtp:unix:/run/dovecot/lmtp",
		".example.com":    "relay:[inner.example]",
		"*":               "smtp:[smarthost.example]:587",
	}}
	r := transportResolver(tab)
	for _, c := range []struct{ addr, transport, nexthop string }{
		{"vip@example.com", "smtp", "[vip.example]"},
		{"vip+tag@example.com", "smtp", "[vip.example]"},
		{"ann@example.com", "lmtp", "unix:/run/dovecot/lmtp"},
		{"ann@a.b.example.com", "relay", "[inner.example]"},
		{"ann@elsewhere.org", "smtp", "[smarthost.example]:587"},
		{"root@mail.example.com", "relay", "[inner.example]"}, // transport_maps override every class, local too
	} {
		got := r.Resolve(c.addr)
		if got.Transport != c.transport || got.Nexthop != c.nexthop {
			t.Errorf("Resolve(%q) = %s:%s, want %s:%s", c.addr, got.Transport, got.Nexthop, c.transport, c.nexthop)
		}
	}
}

func TestTransportMapsEmptyParts(t *testing.T) {
	tab := &fakeMap{entries: map[string]string{
		"noop.example":       ":",                 // change nothing
		"hop.example":        ":[10.0.0.9]:2525",  // keep the transport, new next hop
		"tr.example":         "smtp:",             // new transport, next hop back to the domain
		"hosted.example":     "lmtp",              // no colon at all: same as "lmtp:"
		"gone.example":       "error:",            // error with no text
		"moved.example":      "error:5.1.6 moved", // error with its text
		"quiet.example":      "discard:",
		"mail.example.com":   ":other.example.com",
		"x@virtual.example":  "virtual:",
		"virtual.example":    "smtp:[should.not.match]",
		"spaced.example":     "  relay:[r.example]  ",
		"ipv6.example":       "smtp:[ipv6:2001:db8::1]:25",
		"localhost.example":  "local:",
		"defaults.example":   "",
		"retry.example":      "retry:4.7.1 try later",
		"otherhop.example":   ":[h.example]",
		"relayhost.example":  "relay:",
		"sub.parent.example": ":",
	}}
	r := transportResolver(tab)
	for _, c := range []struct{ addr, transport, nexthop string }{
		{"a@noop.example", "smtp", "[relay.example]:2525"},
		{"a@hop.example", "smtp", "[10.0.0.9]:2525"},
		{"a@tr.example", "smtp", "tr.example"},
		{"a@hosted.example", "lmtp", "hosted.example"},
		{"a@gone.example", "error", "Address is undeliverable"},
		{"a@moved.example", "error", "5.1.6 moved"},
		{"a@quiet.example", "discard", "quiet.example"},
		{"a@mail.example.com", "local", "other.example.com"},
		{"x@virtual.example", "virtual", "virtual.example"},
		{"a@spaced.example", "relay", "[r.example]"},
		{"a@ipv6.example", "smtp", "[ipv6:2001:db8::1]:25"},
		{"a@defaults.example", "smtp", "[relay.example]:2525"},
		{"a@retry.example", "retry", "4.7.1 try later"},
		{"a@otherhop.example", "smtp", "[h.example]"},
		{"a@relayhost.example", "relay", "relayhost.example"},
	} {
		got := r.Resolve(c.addr)
		if got.Transport != c.transport || got.Nexthop != c.nexthop {
			t.Errorf("Resolve(%q) = %s:%s, want %s:%s", c.addr, got.Transport, got.Nexthop, c.transport, c.nexthop)
		}
	}
}

func TestTransportMapsFailureDefers(t *testing.T) {
	var warned []string
	r := transportResolver(&fakeMap{fail: true})
	r.Transport.Warnf = func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }
	got := r.Resolve("a@example.org")
	if got.Transport != RetryTransport || got.Nexthop != ResolveFailure {
		t.Errorf("Resolve on a failing table = %s:%s, want %s:%s", got.Transport, got.Nexthop, RetryTransport, ResolveFailure)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "database down") {
		t.Errorf("warnings = %q", warned)
	}
	// A table that cannot be opened is a failure too, not "no match".
	r.Transport.Specs = []string{"fake:missing"}
	if got := r.Resolve("a@example.org"); got.Transport != RetryTransport {
		t.Errorf("Resolve with an unopenable table = %+v", got)
	}
	if _, err := r.ResolveContext(context.Background(), "a@example.org"); err == nil {
		t.Error("ResolveContext with an unopenable table: no error")
	}
}

func TestTransportMapsNoMatchKeepsClassRoute(t *testing.T) {
	r := transportResolver(&fakeMap{entries: map[string]string{"other.example": "lmtp:x"}})
	if got := r.Resolve("ann@hosted.example"); got.Transport != "virtual" || got.Nexthop != "hosted.example" || got.Class != ClassVirtual {
		t.Errorf("Resolve = %+v, want the virtual class's route", got)
	}
	r.Transport = nil
	if got := r.Resolve("x@elsewhere.org"); got.Transport != "smtp" || got.Nexthop != "[relay.example]:2525" {
		t.Errorf("without transport_maps: %+v", got)
	}
}
