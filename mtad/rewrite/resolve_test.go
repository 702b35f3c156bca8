package rewrite

import (
	"context"
	"errors"
	"testing"
)

type set map[string]bool

func (s set) Match(_ context.Context, d string) (bool, error) { return s[d], nil }

func TestResolve(t *testing.T) {
	r := &Resolver{
		MyDestination:         set{"mail.example.com": true, "localhost": true},
		VirtualMailboxDomains: set{"hosted.example": true},
		RelayDomains:          set{"relayed.example": true},
		LocalTransport:        "local:mail.example.com",
		VirtualTransport:      "virtual",
		RelayTransport:        "relay",
		DefaultTransport:      "smtp",
		MyOrigin:              "mail.example.com",
		AppendAtMyorigin:      true,
	}
	cases := []struct {
		addr, transport, nexthop string
		class                    Class
	}{
		{"bob@Localhost.", "local", "mail.example.com", ClassLocal},
		{"bob", "local", "mail.example.com", ClassLocal},
		{"ann@hosted.example", "virtual", "hosted.example", ClassVirtual},
		{"x@relayed.example", "relay", "relayed.example", ClassRelay},
		{"x@Elsewhere.ORG", "smtp", "elsewhere.org", ClassDefault},
	}
	for _, c := range cases {
		got := r.Resolve(c.addr)
		if got.Transport != c.transport || got.Nexthop != c.nexthop || got.Class != c.class {
			t.Errorf("Resolve(%q) = %+v, want %s:%s class %s", c.addr, got, c.transport, c.nexthop, c.class)
		}
	}
	r.Relayhost = "[127.0.0.1]:2526"
	if got := r.Resolve("x@elsewhere.org"); got.Nexthop != "[127.0.0.1]:2526" {
		t.Errorf("with relayhost: %+v", got)
	}
	r.DefaultTransport = "smtp:[10.1.1.1]:25"
	if got := r.Resolve("x@elsewhere.org"); got.Nexthop != "[10.1.1.1]:25" || got.Transport != "smtp" {
		t.Errorf("explicit nexthop: %+v", got)
	}
	ctx := context.Background()
	if ok, _ := r.AuthDestination(ctx, "hosted.example"); !ok {
		t.Error("AuthDestination(hosted.example) = false")
	}
	if ok, _ := r.AuthDestination(ctx, "elsewhere.org"); ok {
		t.Error("AuthDestination(elsewhere.org) = true")
	}
	if got := r.Qualify("root"); got != "root@mail.example.com" {
		t.Errorf("Qualify = %q", got)
	}
	if got := r.Qualify(""); got != "" {
		t.Errorf("Qualify null sender = %q", got)
	}
}

// failing is a domain list whose table is down.
type failing struct{}

func (failing) Match(context.Context, string) (bool, error) { return false, errors.New("table down") }

// TestDomainTableFailure: a failing domain table is a resolver failure
// (retry, 4.3.0), never "not ours"; an alias domain resolves to the error
// transport.
func TestDomainTableFailure(t *testing.T) {
	r := postfixDefaults()
	r.VirtualMailboxDomains = failing{}
	r.VirtualAliasDomains = set{"alias.example": true}
	ctx := context.Background()
	if _, err := r.AuthDestination(ctx, "hosted.example"); err == nil {
		t.Error("AuthDestination hides a table failure")
	}
	if got := r.Resolve("x@hosted.example"); got.Transport != RetryTransport || got.Nexthop != ResolveFailure {
		t.Errorf("Resolve with a failing table = %+v", got)
	}
	if got := r.Resolve("x@alias.example"); got.Transport != "error" || got.Nexthop != "5.1.1 User unknown in virtual alias table" || got.Class != ClassAlias {
		t.Errorf("Resolve in an alias domain = %+v", got)
	}
	if c, err := r.ClassOf(ctx, "localhost"); c != ClassLocal || err != nil {
		t.Errorf("ClassOf(localhost) = %v, %v", c, err)
	}
}
