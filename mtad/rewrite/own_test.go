package rewrite

import (
	"context"
	"net/netip"
	"testing"
)

func TestOwnAddressLiterals(t *testing.T) {
	own, err := ParseOwnAddrs(context.Background(), []string{"192.0.2.1", "[2001:db8::1]"}, []string{"198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Own: own}
	for domain, want := range map[string]bool{
		"[192.0.2.1]":          true,
		"[198.51.100.7]":       true, // proxy_interfaces
		"[ipv6:2001:db8::1]":   true,
		"[IPv6:2001:DB8::1]":   true,
		"[2001:db8::1]":        false, // an IPv6 literal needs its tag
		"[ipv6:192.0.2.1]":     false,
		"[192.0.2.2]":          false,
		"192.0.2.1":            false, // not a literal
		"[192.0.2.1":           false,
		"":                     true, // no domain is local
		"[ipv6:::ffff:c000:2]": false,
	} {
		if got := r.IsLocalDomain(domain); got != want {
			t.Errorf("IsLocalDomain(%q) = %v, want %v", domain, got, want)
		}
	}
	if !r.LocalpartLookup("[192.0.2.1]") {
		t.Error("a local literal allows bare-localpart lookups")
	}
	lo, err := ParseOwnAddrs(context.Background(), []string{"loopback-only"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !lo.Contains(netip.MustParseAddr("::ffff:127.0.0.1")) || lo.Contains(netip.MustParseAddr("127.0.0.2")) {
		t.Error("loopback-only is 127.0.0.1 and ::1")
	}
}
