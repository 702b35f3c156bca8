package rewrite

import "testing"

type set map[string]bool

func (s set) Contains(d string) bool { return s[d] }

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
	if !r.AuthDestination("hosted.example") || r.AuthDestination("elsewhere.org") {
		t.Error("AuthDestination wrong")
	}
	if got := r.Qualify("root"); got != "root@mail.example.com" {
		t.Errorf("Qualify = %q", got)
	}
	if got := r.Qualify(""); got != "" {
		t.Errorf("Qualify null sender = %q", got)
	}
}
