package matchlist

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestNetworksContains(t *testing.T) {
	n, err := ParseNetworks([]string{"!127.0.0.2, 127.0.0.0/8", "[::1]/128 192.168.1.1", "10.0.0.0/8", "[2001:db8::]/32"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"127.0.0.1":        true,
		"127.0.0.2":        false, // excluded before the /8 matches
		"::ffff:127.0.0.1": true,  // v4-mapped is the v4 address
		"::1":              true,
		"::2":              false,
		"192.168.1.1":      true,
		"192.168.1.2":      false,
		"10.200.3.4":       true,
		"2001:db8::5":      true,
		"2001:db9::5":      false,
	}
	for s, want := range cases {
		if got := n.Contains(netip.MustParseAddr(s)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestNetworksFirstMatchWins(t *testing.T) {
	n, err := ParseNetworks([]string{"127.0.0.0/8", "!127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Contains(netip.MustParseAddr("127.0.0.2")) {
		t.Error("exclusion after a broader match must not apply")
	}
}

func TestNetworksErrors(t *testing.T) {
	for _, bad := range []string{"192.168.1.1/24", "nonsense", "10.0.0.0/33", "hash:/etc/postfix/networks", "cidr:/x"} {
		if _, err := ParseNetworks([]string{bad}); err == nil {
			t.Errorf("ParseNetworks(%q) succeeded", bad)
		}
	}
	_, err := ParseNetworks([]string{"hash:/etc/x"})
	var tne *ErrTableNotSupported
	if !errors.As(err, &tne) {
		t.Errorf("want ErrTableNotSupported, got %v", err)
	}
}

func TestNetworksFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "nets")
	if err := os.WriteFile(f, []byte("# trusted\n192.0.2.0/24, 198.51.100.7\n\n[::1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := ParseNetworks([]string{"!192.0.2.9", f})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"192.0.2.1": true, "192.0.2.9": false, "198.51.100.7": true, "::1": true, "127.0.0.1": false} {
		if got := n.Contains(netip.MustParseAddr(s)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", s, got, want)
		}
	}
	if _, err := ParseNetworks([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing file accepted")
	}
}

func TestNilNetworks(t *testing.T) {
	var n *Networks
	if n.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("nil list matched")
	}
}

func TestDomains(t *testing.T) {
	d, err := ParseDomains([]string{"!bad.example.com", "example.com, .sub.example.net", "LOCALHOST"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"example.com":       true,
		"EXAMPLE.COM.":      true,
		"a.example.com":     true,
		"bad.example.com":   false,
		"x.bad.example.com": false, // with subdomain matching the exclusion covers subdomains too
		"sub.example.net":   false,
		"a.sub.example.net": true,
		"localhost":         true,
		"notexample.com":    false,
		"":                  false,
	}
	for s, want := range cases {
		if got := d.Contains(s); got != want {
			t.Errorf("Contains(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDomainsWithoutSubdomainMatching(t *testing.T) {
	d, err := ParseDomains([]string{"example.com", ".example.org"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"example.com": true, "a.example.com": false, "example.org": false, "a.example.org": true} {
		if got := d.Contains(s); got != want {
			t.Errorf("Contains(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDomainsFileAndTables(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "domains")
	if err := os.WriteFile(f, []byte("one.example\n# two.example\nthree.example four.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := ParseDomains([]string{f}, false)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"one.example": true, "two.example": false, "four.example": true} {
		if got := d.Contains(s); got != want {
			t.Errorf("Contains(%q) = %v, want %v", s, got, want)
		}
	}
	if _, err := ParseDomains([]string{"hash:/etc/postfix/relay_domains"}, true); err == nil {
		t.Error("type:table accepted")
	}
}
