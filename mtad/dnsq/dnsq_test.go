package dnsq

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/testdns"
)

func newTest(t *testing.T) (*testdns.Server, *Resolver) {
	t.Helper()
	srv := testdns.Start(t)
	r, err := New(Config{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func TestLookups(t *testing.T) {
	srv, r := newTest(t)
	srv.Add(t,
		"host.example.test. A 192.0.2.1",
		"host.example.test. AAAA 2001:db8::1",
		"example.test. MX 20 b.example.test.",
		"example.test. MX 10 a.example.test.",
		"example.test. NS ns1.example.test.",
		`example.test. TXT "v=spf1" " -all"`,
		"nomail.test. MX 0 .",
		"alias.example.test. CNAME host.example.test.",
	)
	srv.AddPTR(t, "192.0.2.1", "host.example.test")
	ctx := context.Background()

	ips, err := r.IP(ctx, "host.example.test")
	if err != nil || len(ips) != 2 || ips[0] != netip.MustParseAddr("192.0.2.1") || ips[1] != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("IP = %v, %v", ips, err)
	}
	mxs, err := r.MX(ctx, "example.test")
	if err != nil || len(mxs) != 2 || mxs[0] != (MX{20, "b.example.test"}) || mxs[1] != (MX{10, "a.example.test"}) {
		t.Errorf("MX = %v, %v", mxs, err)
	}
	if mxs, err := r.MX(ctx, "nomail.test"); err != nil || !NullMX(mxs) {
		t.Errorf("null MX = %v, %v", mxs, err)
	}
	if ns, err := r.NS(ctx, "example.test"); err != nil || len(ns) != 1 || ns[0] != "ns1.example.test" {
		t.Errorf("NS = %v, %v", ns, err)
	}
	if txt, err := r.TXT(ctx, "example.test"); err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" {
		t.Errorf("TXT = %q, %v", txt, err)
	}
	if names, err := r.PTR(ctx, netip.MustParseAddr("192.0.2.1")); err != nil || len(names) != 1 || names[0] != "host.example.test" {
		t.Errorf("PTR = %v, %v", names, err)
	}
	// The CNAME's target records come back with the alias's answer.
	srv.Add(t, "alias2.example.test. CNAME host.example.test.", "alias2.example.test. A 192.0.2.1")
	if a, err := r.A(ctx, "alias2.example.test"); err != nil || len(a) != 1 {
		t.Errorf("A via CNAME = %v, %v", a, err)
	}
}

func TestFailureKinds(t *testing.T) {
	srv, r := newTest(t)
	srv.Add(t, "exists.test. A 192.0.2.7", "a.b.parent.test. A 192.0.2.8")
	srv.ServFail("broken.test")
	srv.Timeout("slow.test")
	ctx := context.Background()

	_, err := r.A(ctx, "missing.test")
	var e *Error
	if !IsNotFound(err) || IsTemporary(err) || !asError(err, &e) || !e.NXDomain {
		t.Errorf("NXDOMAIN: %#v", err)
	}
	_, err = r.MX(ctx, "exists.test")
	if !IsNotFound(err) || !asError(err, &e) || e.NXDomain {
		t.Errorf("no data: %#v", err)
	}
	// An empty non-terminal exists: no data, not NXDOMAIN.
	_, err = r.A(ctx, "b.parent.test")
	if !IsNotFound(err) || !asError(err, &e) || e.NXDomain {
		t.Errorf("empty non-terminal: %#v", err)
	}
	if _, err = r.A(ctx, "broken.test"); !IsTemporary(err) || IsNotFound(err) {
		t.Errorf("SERVFAIL: %#v", err)
	}
	if _, err = r.A(ctx, "slow.test"); !IsTemporary(err) {
		t.Errorf("timeout: %#v", err)
	}
	// Every round asks again: two attempts, two questions.
	n := 0
	for _, q := range srv.Queries() {
		if q == "slow.test A" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("slow.test asked %d times, want 2", n)
	}
	if _, err = r.A(ctx, "bad..name"); !IsNotFound(err) {
		t.Errorf("malformed name: %#v", err)
	}
}

func asError(err error, e **Error) bool {
	x, ok := err.(*Error)
	*e = x
	return ok
}

// A reply too big for UDP comes back truncated; the client asks again
// over TCP and gets all of it.
func TestTCPFallback(t *testing.T) {
	srv, r := newTest(t)
	var recs []string
	for i := 0; i < 40; i++ {
		recs = append(recs, `big.test. TXT "`+strings.Repeat("x", 100)+`"`)
	}
	srv.Add(t, recs...)
	txt, err := r.TXT(context.Background(), "big.test")
	if err != nil || len(txt) != 40 {
		t.Fatalf("TXT over TCP: %d records, %v", len(txt), err)
	}
}

// A server that fails is skipped for the next one.
func TestSecondServer(t *testing.T) {
	bad := testdns.Start(t)
	bad.ServFail("host.test")
	good := testdns.Start(t)
	good.Add(t, "host.test. A 192.0.2.9")
	r, err := New(Config{Servers: []string{bad.Addr(), good.Addr()}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := r.A(context.Background(), "host.test"); err != nil || len(a) != 1 {
		t.Fatalf("A = %v, %v", a, err)
	}
}

func TestHostsFile(t *testing.T) {
	srv := testdns.Start(t)
	srv.AddPTR(t, "192.0.2.5", "dns.example.test")
	srv.Add(t, "dns.example.test. A 192.0.2.5")
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("# comment\n127.0.0.1 localhost loopy # tail\n::1 localhost6\n"), 0o644)
	r, err := New(Config{Servers: []string{srv.Addr()}, HostsFile: hosts})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := r.HostName(ctx, netip.MustParseAddr("127.0.0.1")); err != nil || n != "localhost" {
		t.Errorf("HostName(127.0.0.1) = %q, %v", n, err)
	}
	if a, err := r.HostAddrs(ctx, "LOOPY"); err != nil || len(a) != 1 || a[0].String() != "127.0.0.1" {
		t.Errorf("HostAddrs(loopy) = %v, %v", a, err)
	}
	if n, err := r.HostName(ctx, netip.MustParseAddr("192.0.2.5")); err != nil || n != "dns.example.test" {
		t.Errorf("HostName via PTR = %q, %v", n, err)
	}
	if a, err := r.HostAddrs(ctx, "dns.example.test"); err != nil || len(a) != 1 {
		t.Errorf("HostAddrs via DNS = %v, %v", a, err)
	}
	if _, err := r.HostName(ctx, netip.MustParseAddr("192.0.2.6")); !IsNotFound(err) {
		t.Errorf("HostName of an unknown address: %v", err)
	}
}
