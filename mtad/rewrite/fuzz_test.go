package rewrite

import (
	"strings"
	"testing"
)

// fuzzResolver is trivial-rewrite with every standard-form switch on, so
// that the fuzzer reaches every branch of Qualify.
func fuzzResolver() *Resolver {
	r := postfixDefaults()
	r.AppendDotMydomain = true
	r.VirtualMailboxDomains = set{"hosted.example": true}
	r.RelayDomains = set{"relayed.example": true}
	r.LocalTransport = "local:mail.example.com"
	r.VirtualTransport = "virtual"
	r.RelayTransport = "relay"
	r.DefaultTransport = "smtp"
	return r
}

var qualifySeeds = []string{
	"", "@", `""`, "bob", "bob@example.org", "bob@example.org.", "bob@example.org..",
	"bob@.", "@relay1.example,@relay2.example:bob@site.example", "@relay.example:",
	"site.example!bob", "a.example!b.example!bob", "bob%x.example", "bob%a.example%b.example",
	"bob@host", "bob@[192.0.2.1]", "bob@[IPv6:2001:db8::1]", `"a@b"`, `"a b"@example.org`,
	`"unterminated`, "[unterminated", `a\"b@c`, "MAILER-DAEMON", "Bob@Localhost.",
	"user@hosted.example", "x@relayed.example", " spaced  out @ example . org ",
}

func FuzzQualify(f *testing.F) {
	for _, s := range qualifySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		r := fuzzResolver()
		once := r.Qualify(addr)
		// Idempotence holds where trivial-rewrite's own algorithm is
		// idempotent (rewrite.c); the exceptions are Postfix's too:
		//   - append_dot_mydomain runs before the trailing dot is stripped,
		//     so "u@host." -> "u@host" -> "u@host.$mydomain";
		//   - only one source route is stripped per pass, so
		//     "@a:@b:u" -> "@b:u" -> "u@$myorigin".
		// An unterminated quoted string or literal is closed on output,
		// as tok822_externalize does, so it too is stable.
		idem := *r
		idem.AppendDotMydomain = false
		once2 := idem.Qualify(addr)
		if twice := idem.Qualify(once2); twice != once2 && !strings.HasPrefix(once2, "@") {
			t.Errorf("Qualify not idempotent: %q -> %q -> %q", addr, once2, twice)
		}
		// Qualify only drops white space and routes, adds domains and
		// writes tokens out as tok822 does: it never invents bytes other
		// than those of the input, myorigin, mydomain, '@', '.', and the
		// quotes, brackets, parentheses, backslashes and spaces of
		// externalized tokens.
		// Bytes, not runes: dropping a space may join two invalid UTF-8
		// fragments into a valid rune.
		extra := "@." + r.MyOrigin + r.MyDomain + "\"[]()\\ "
		for i := 0; i < len(once); i++ {
			if c := once[i]; strings.IndexByte(addr, c) < 0 && strings.IndexByte(extra, c) < 0 {
				t.Errorf("Qualify(%q) = %q: byte %q came from nowhere", addr, once, c)
			}
		}
	})
}

func FuzzResolve(f *testing.F) {
	for _, s := range qualifySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		r := fuzzResolver()
		res := r.Resolve(r.Qualify(addr))
		if res.Transport == "" {
			t.Errorf("Resolve(%q): no transport: %+v", addr, res)
		}
		if res.Domain != strings.ToLower(res.Domain) {
			t.Errorf("Resolve(%q): domain %q not lowercased", addr, res.Domain)
		}
		if res.Class == ClassLocal && res.Transport != "local" {
			t.Errorf("Resolve(%q): local class with transport %q", addr, res.Transport)
		}
	})
}
