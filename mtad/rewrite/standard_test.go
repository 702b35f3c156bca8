package rewrite

import "testing"

// postfixDefaults is trivial-rewrite at compatibility_level 3.6.
func postfixDefaults() *Resolver {
	return &Resolver{
		MyDestination:    set{"mail.example.com": true, "localhost": true},
		MyOrigin:         "mail.example.com",
		MyDomain:         "example.com",
		SwapBangpath:     true,
		AllowPercentHack: true,
		AppendAtMyorigin: true,
	}
}

func TestQualifyStandardForm(t *testing.T) {
	cases := []struct {
		name, in, want string
		tweak          func(*Resolver)
	}{
		{name: "null sender", in: "", want: ""},
		{name: "lone at", in: "@", want: ""},
		{name: "quoted empty", in: `""`, want: ""},
		{name: "qualified", in: "bob@example.org", want: "bob@example.org"},
		{name: "append at myorigin", in: "bob", want: "bob@mail.example.com"},
		{name: "append at myorigin off", in: "bob", want: "bob", tweak: func(r *Resolver) { r.AppendAtMyorigin = false }},
		{name: "trailing dot", in: "bob@example.org.", want: "bob@example.org"},
		{name: "only one trailing dot", in: "bob@example.org..", want: "bob@example.org.."},
		{name: "at-dot left alone", in: "bob@.", want: "bob@."},
		{name: "source route", in: "@relay1.example,@relay2.example:bob@site.example", want: "bob@site.example"},
		{name: "source route alone", in: "@relay.example:", want: "@relay.example:"},
		{name: "bang path", in: "site.example!bob", want: "bob@site.example"},
		{name: "bang path twice", in: "a.example!b.example!bob", want: "b.example!bob@a.example"},
		{name: "bang path off, percent on", in: "site!bob%x.example", want: "site!bob@x.example", tweak: func(r *Resolver) { r.SwapBangpath = false }},
		{name: "bang path with at", in: "site!bob@x.example", want: "site!bob@x.example"},
		{name: "percent hack", in: "bob%x.example", want: "bob@x.example"},
		{name: "percent hack rightmost", in: "bob%a.example%b.example", want: "bob%a.example@b.example"},
		{name: "percent hack with at", in: "bob%a.example@b.example", want: "bob%a.example@b.example"},
		{name: "percent hack off", in: "bob%x.example", want: "bob%x.example@mail.example.com", tweak: func(r *Resolver) { r.AllowPercentHack = false }},
		{name: "dot mydomain off by default", in: "bob@host", want: "bob@host"},
		{name: "dot mydomain", in: "bob@host", want: "bob@host.example.com", tweak: func(r *Resolver) { r.AppendDotMydomain = true }},
		{name: "dot mydomain after myorigin without dot", in: "bob", want: "bob@mailhost.example.com", tweak: func(r *Resolver) {
			r.AppendDotMydomain = true
			r.MyOrigin = "mailhost"
		}},
		{name: "dot mydomain not for literal", in: "bob@[192.0.2.1]", want: "bob@[192.0.2.1]", tweak: func(r *Resolver) { r.AppendDotMydomain = true }},
		{name: "dot mydomain not for dotted", in: "bob@a.b", want: "bob@a.b", tweak: func(r *Resolver) { r.AppendDotMydomain = true }},
		{name: "dot mydomain not for trailing at", in: "bob@", want: "bob@", tweak: func(r *Resolver) { r.AppendDotMydomain = true }},
		{name: "quoted at in localpart", in: `"a@b"`, want: `"a@b"@mail.example.com`},
		{name: "quoted percent untouched", in: `"a%b"`, want: `"a%b"@mail.example.com`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := postfixDefaults()
			if c.tweak != nil {
				c.tweak(r)
			}
			if got := r.Qualify(c.in); got != c.want {
				t.Errorf("Qualify(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestMailerDaemon(t *testing.T) {
	r := postfixDefaults()
	for in, want := range map[string]bool{
		"MAILER-DAEMON@mail.example.com": true,
		"mailer-daemon@Mail.Example.COM": true,
		"MAILER-DAEMON@other.example":    false,
		"MAILER-DAEMON":                  false, // cleanup qualifies first; the bare form is never compared
		"postmaster@mail.example.com":    false,
	} {
		if got := r.MailerDaemon(in); got != want {
			t.Errorf("MailerDaemon(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLocalpartLookup(t *testing.T) {
	r := postfixDefaults()
	r.MyOrigin = "origin.example"
	for in, want := range map[string]bool{"origin.example": true, "Localhost.": true, "mail.example.com": true, "elsewhere.example": false, "": false} {
		if got := r.LocalpartLookup(in); got != want {
			t.Errorf("LocalpartLookup(%q) = %v, want %v", in, got, want)
		}
	}
}
