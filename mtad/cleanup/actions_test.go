package cleanup

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/rewrite"
	"sqlmta/store"
)

// send submits a message from a remote client with env's actions and
// returns the stored message.
func (f *fixture) send(submit func(context.Context, *envelope.Envelope) error, env *envelope.Envelope) *store.Message {
	f.t.Helper()
	if env.QueueID == "" {
		env.QueueID = queueid.New()
	}
	if env.Sender == "" {
		env.Sender = "s@t.example"
	}
	if env.ClientAddr == "" {
		env.ClientName, env.ClientAddr, env.Helo, env.Protocol = "client.example", "192.0.2.1", "client.example", "ESMTP"
	}
	if err := submit(context.Background(), env); err != nil {
		f.t.Fatal(err)
	}
	m, err := f.st.MessageGet(context.Background(), env.QueueID)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func rcpts(addrs ...string) []envelope.Recipient {
	var out []envelope.Recipient
	for _, a := range addrs {
		out = append(out, envelope.Recipient{Address: a, Orig: a})
	}
	return out
}

func recipientSummary(m *store.Message) []string {
	var out []string
	for _, r := range m.Recipients {
		out = append(out, fmt.Sprintf("%s orig=%s notify=%s state=%s", r.Address, r.Orig, r.Notify, r.State))
	}
	slices.Sort(out)
	return out
}

func TestActions(t *testing.T) {
	f := newFixture(t)
	checks := f.file("regexp", "hc", `
/^Subject: hold-me/      HOLD
/^Subject: redirect-me/  REDIRECT hdr@t.example
/^Subject: filter-me/    FILTER scan:[127.0.0.1]:10026
/^Subject: bcc-me/       BCC hbcc@t.example
/^Subject: two-bccs/     BCC one@t.example
/^X-Second: /            BCC two@t.example
`)
	senderBcc := f.hash("sbcc", "s@t.example sender-copy@t.example\n")
	rcptBcc := f.hash("rbcc", "@r.example rcpt-copy@t.example\n")
	virtual := f.hash("virt", "copy@t.example c1@t.example, c2@t.example\n")
	c := f.cleanup(func(cfg *Config) {
		cfg.HeaderChecks = []string{checks}
		cfg.ContentFilter = "smtp:[127.0.0.1]:10025"
		cfg.SenderBccMaps = []string{senderBcc}
		cfg.RecipientBccMaps = []string{rcptBcc}
		cfg.VirtualAliasMaps = []string{virtual}
	})
	submit := func(body string) func(context.Context, *envelope.Envelope) error {
		return func(ctx context.Context, env *envelope.Envelope) error {
			return c.Submit(ctx, env, strings.NewReader(body))
		}
	}
	plain := submit(plainMessage)

	cases := []struct {
		name   string
		body   string
		env    envelope.Envelope
		filter string
		want   []string
	}{
		{name: "content_filter applies to every message", env: envelope.Envelope{Recipients: rcpts("a@t.example")},
			filter: "smtp:[127.0.0.1]:10025",
			want:   []string{"a@t.example orig=a@t.example notify= state=queued", "sender-copy@t.example orig=sender-copy@t.example notify=NEVER state=queued"}},
		{name: "smtpd HOLD holds every recipient", env: envelope.Envelope{Sender: "x@t.example", Hold: true, Recipients: rcpts("a@t.example", "b@t.example")},
			filter: "smtp:[127.0.0.1]:10025",
			want:   []string{"a@t.example orig=a@t.example notify= state=hold", "b@t.example orig=b@t.example notify= state=hold"}},
		{name: "header HOLD", body: "Subject: hold-me\r\n\r\nb\r\n", env: envelope.Envelope{Sender: "x@t.example", Recipients: rcpts("a@t.example")},
			filter: "smtp:[127.0.0.1]:10025", want: []string{"a@t.example orig=a@t.example notify= state=hold"}},
		{name: "smtpd FILTER overrides content_filter", env: envelope.Envelope{Sender: "x@t.example", Filter: "relay:[10.0.0.1]", Recipients: rcpts("a@t.example")},
			filter: "relay:[10.0.0.1]", want: []string{"a@t.example orig=a@t.example notify= state=queued"}},
		{name: "header FILTER overrides smtpd FILTER", body: "Subject: filter-me\r\n\r\nb\r\n",
			env:    envelope.Envelope{Sender: "x@t.example", Filter: "relay:[10.0.0.1]", Recipients: rcpts("a@t.example")},
			filter: "scan:[127.0.0.1]:10026", want: []string{"a@t.example orig=a@t.example notify= state=queued"}},
		{name: "smtpd REDIRECT keeps the first recipient in qmgr order, clears the filter",
			env:  envelope.Envelope{Sender: "x@t.example", Redirect: "red", Filter: "relay:[10.0.0.1]", Recipients: rcpts("z@b.example", "y@a.example", "x@a.example")},
			want: []string{"red@example.com orig=x@a.example notify= state=queued"}},
		{name: "header REDIRECT wins over smtpd's", body: "Subject: redirect-me\r\n\r\nb\r\n",
			env:  envelope.Envelope{Sender: "x@t.example", Redirect: "red@t.example", Recipients: rcpts("a@t.example")},
			want: []string{"hdr@t.example orig=a@t.example notify= state=queued"}},
		{name: "smtpd BCC adds NOTIFY=NEVER recipients, virtual-expanded",
			env:    envelope.Envelope{Sender: "x@t.example", Bcc: []string{"copy@t.example", "b2@t.example"}, Recipients: rcpts("a@t.example")},
			filter: "smtp:[127.0.0.1]:10025",
			want: []string{"a@t.example orig=a@t.example notify= state=queued", "b2@t.example orig=b2@t.example notify=NEVER state=queued",
				"c1@t.example orig=copy@t.example notify=NEVER state=queued", "c2@t.example orig=copy@t.example notify=NEVER state=queued"}},
		{name: "header BCC, each one", body: "Subject: two-bccs\r\nX-Second: y\r\n\r\nb\r\n",
			env: envelope.Envelope{Sender: "x@t.example", Recipients: rcpts("a@t.example")}, filter: "smtp:[127.0.0.1]:10025",
			want: []string{"a@t.example orig=a@t.example notify= state=queued", "one@t.example orig=one@t.example notify=NEVER state=queued",
				"two@t.example orig=two@t.example notify=NEVER state=queued"}},
		{name: "recipient_bcc_maps by @domain", env: envelope.Envelope{Sender: "x@t.example", Recipients: rcpts("u@r.example")},
			filter: "smtp:[127.0.0.1]:10025",
			want:   []string{"rcpt-copy@t.example orig=rcpt-copy@t.example notify=NEVER state=queued", "u@r.example orig=u@r.example notify= state=queued"}},
		{name: "no automatic BCC for internal mail", env: envelope.Envelope{Internal: true, Recipients: rcpts("u@r.example")},
			filter: "smtp:[127.0.0.1]:10025", want: []string{"u@r.example orig=u@r.example notify= state=queued"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send := plain
			if tc.body != "" {
				send = submit(tc.body)
			}
			env := tc.env
			m := f.send(send, &env)
			if m.Filter != tc.filter {
				t.Errorf("filter %q, want %q", m.Filter, tc.filter)
			}
			if got := recipientSummary(m); !slices.Equal(got, tc.want) {
				t.Errorf("recipients:\n got %q\nwant %q", got, tc.want)
			}
		})
	}

	t.Run("service content_filter override", func(t *testing.T) {
		svc := c.Service("", nil)
		m := f.send(func(ctx context.Context, env *envelope.Envelope) error {
			return svc.Submit(ctx, env, strings.NewReader(plainMessage))
		}, &envelope.Envelope{Sender: "x@t.example", Recipients: rcpts("a@t.example")})
		if m.Filter != "" {
			t.Errorf("-o content_filter= kept %q", m.Filter)
		}
	})
	t.Run("always_bcc", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) { cfg.AlwaysBcc = "archive" })
		m := f.send(func(ctx context.Context, env *envelope.Envelope) error {
			return c.Submit(ctx, env, strings.NewReader(plainMessage))
		}, &envelope.Envelope{Recipients: rcpts("a@t.example")})
		want := []string{"a@t.example orig=a@t.example notify= state=queued", "archive@example.com orig=archive notify=NEVER state=queued"}
		if got := recipientSummary(m); !slices.Equal(got, want) {
			t.Errorf("recipients %q, want %q", got, want)
		}
	})
}

func TestHeaderRewriteContext(t *testing.T) {
	f := newFixture(t)
	canon := f.hash("canon", "joe joseph@example.com\n")
	clients := f.file("cidr", "clients", "198.51.100.0/24 OK\n")
	const body = "From: Joe <joe>\r\nTo: ann@sub.example.com, bob\r\nBcc: secret@t.example\r\nReturn-Path: <x@y>\r\nSubject: s\r\n\r\nbody\r\n"
	remote := *f.res
	remote.MyOrigin, remote.MyDomain = "remote.invalid", "remote.invalid"
	cases := []struct {
		name       string
		clientAddr string
		edit       func(*Config)
		want       string // the From and To lines
	}{
		{name: "local client: $myorigin, canonical and masquerading", clientAddr: "127.0.0.1",
			want: "From: Joe <joseph@example.com>\r\nTo: ann@example.com, bob@example.com\r\n"},
		{name: "pickup is always local", clientAddr: "",
			want: "From: Joe <joseph@example.com>\r\nTo: ann@example.com, bob@example.com\r\n"},
		{name: "remote client: headers untouched", clientAddr: "192.0.2.1",
			want: "From: Joe <joe>\r\nTo: ann@sub.example.com, bob\r\n"},
		{name: "remote client with remote_header_rewrite_domain", clientAddr: "192.0.2.1",
			edit: func(cfg *Config) { cfg.RemoteHeaderRewriteDomain, cfg.QualifyRemote = "remote.invalid", remote.Qualify },
			want: "From: Joe <joe@remote.invalid>\r\nTo: ann@example.com, bob@remote.invalid\r\n"},
		{name: "permit_mynetworks", clientAddr: "192.0.2.1",
			edit: func(cfg *Config) {
				cfg.LocalHeaderRewriteClients = []string{"permit_mynetworks"}
				cfg.MyNetworks = func(a netip.Addr) bool { return netip.MustParsePrefix("192.0.2.0/24").Contains(a) }
			},
			want: "From: Joe <joseph@example.com>\r\nTo: ann@example.com, bob@example.com\r\n"},
		{name: "check_address_map", clientAddr: "198.51.100.9",
			edit: func(cfg *Config) { cfg.LocalHeaderRewriteClients = []string{"check_address_map", clients} },
			want: "From: Joe <joseph@example.com>\r\nTo: ann@example.com, bob@example.com\r\n"},
		{name: "static:all", clientAddr: "203.0.113.1",
			edit: func(cfg *Config) { cfg.LocalHeaderRewriteClients = []string{"static:all"} },
			want: "From: Joe <joseph@example.com>\r\nTo: ann@example.com, bob@example.com\r\n"},
		{name: "no header_recipient canonical class", clientAddr: "127.0.0.1",
			edit: func(cfg *Config) { cfg.MasqueradeClasses = []string{"header_sender"} },
			want: "From: Joe <joseph@example.com>\r\nTo: ann@sub.example.com, bob@example.com\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.cleanup(func(cfg *Config) {
				cfg.CanonicalMaps = []string{canon}
				cfg.MasqueradeDomains = []string{"example.com"}
				if tc.edit != nil {
					tc.edit(cfg)
				}
			})
			env := &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", ClientAddr: tc.clientAddr,
				Recipients: rcpts("r@t.example")}
			if tc.clientAddr != "" {
				env.ClientName, env.Protocol = "client.example", "ESMTP"
			}
			if err := c.Submit(context.Background(), env, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			got := stored(t, f.st, env.QueueID)
			if !strings.Contains(got, tc.want) {
				t.Errorf("content lacks %q:\n%s", tc.want, got)
			}
			for _, gone := range []string{"Bcc:", "Return-Path:", "secret@"} {
				if strings.Contains(got, gone) {
					t.Errorf("content keeps %q:\n%s", gone, got)
				}
			}
		})
	}
}

func TestExternalizeHeader(t *testing.T) {
	for in, want := range map[string]string{
		`Joe Q. <joe@x>`:                      `Joe Q. <joe@x>`,
		`a@x , b@y`:                           "a@x,\nb@y",
		`g: a@x, b@y;, c@z`:                   "g: a@x,\nb@y;,\nc@z",
		`(c) joe @ x . com`:                   `joe@x.com (c)`,
		`"q, n" <a@b> (c)`:                    `"q, n" <a@b>(c)`,
		`undisclosed-recipients:;`:            `undisclosed-recipients: ;`,
		`Joe Smith`:                           `Joe Smith`,
		`<@r1,@r2:u@d>`:                       `<@r1,@r2:u@d>`,
		"\"john doe\"@x, first.last":          "\"john doe\"@x,\nfirst.last",
		`odd "unterminated`:                   `odd "unterminated`,
		`a@[1.2.3.4] (nested (comment))`:      `a@[1.2.3.4] (nested (comment))`,
		`name <broken`:                        `name <broken`,
		`=?utf-8?q?J=C3=B6rg?= <j@x.example>`: `=?utf-8?q?J=C3=B6rg?= <j@x.example>`,
	} {
		if got := externalizeHeader(parseAddrHeader(scanHeaderTokens(in))); got != want {
			t.Errorf("externalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuoteLocal(t *testing.T) {
	for in, want := range map[string]string{
		"joe@x":         "joe@x",
		"john doe@x":    `"john doe"@x`,
		`a"b@x`:         `"a\"b"@x`,
		".lead@x":       `".lead"@x`,
		"first.last@x":  "first.last@x",
		"plain":         "plain",
		"a..b@x":        `"a..b"@x`,
		"x@y@z.example": `"x@y"@z.example`,
	} {
		if got := rewrite.QuoteLocal(in); got != want {
			t.Errorf("QuoteLocal(%q) = %q, want %q", in, got, want)
		}
		if got := internalAddr(rewrite.QuoteLocal(in)); got != in {
			t.Errorf("internalAddr(QuoteLocal(%q)) = %q", in, got)
		}
	}
}

func FuzzAddrHeader(f *testing.F) {
	for _, s := range []string{`Joe Q. <joe>`, `g: a, b;, (c) d`, `"x\" y" <a@b>`, `(((`, `<<>>`, `a\`, "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		toks := scanHeaderTokens(in)
		var raw strings.Builder
		for _, tk := range toks {
			if tk.raw == "" {
				t.Fatalf("empty token in %q", in)
			}
			raw.WriteString(tk.raw)
		}
		// Tokens are the input without the white space between them: the
		// tokenizer's (ASCII) white space, not strings.Fields' Unicode one,
		// which would take two halves of U+00A0 joined for a space.
		squeeze := func(s string) string {
			b := make([]byte, 0, len(s))
			for i := 0; i < len(s); i++ {
				if c := s[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
					b = append(b, c)
				}
			}
			return string(b)
		}
		if squeeze(raw.String()) != squeeze(in) {
			t.Fatalf("tokens %q lose text of %q", raw.String(), in)
		}
		out := externalizeHeader(parseAddrHeader(toks))
		if squeeze(out) == "" && squeeze(in) != "" {
			t.Fatalf("externalize(%q) is empty", in)
		}
		_ = foldHeader("To: " + out)
	})
}

// TestReceiveOverrideOptions: after a content filter (smtpd -o
// receive_override_options=no_address_mappings,no_header_body_checks)
// nothing is mapped, no automatic BCC is added and header_checks do not
// run; the same message through main.cf's settings gets all of them.
func TestReceiveOverrideOptions(t *testing.T) {
	f := newFixture(t)
	checks := f.file("regexp", "hc", "/^Subject: reject-me/ REJECT no thanks\n")
	c := f.cleanup(func(cfg *Config) {
		cfg.HeaderChecks = []string{checks}
		cfg.VirtualAliasMaps = []string{f.hash("virt", "list@t.example m1@t.example, m2@t.example\n")}
		cfg.CanonicalMaps = []string{f.hash("canon", "old@t.example new@t.example\n")}
		cfg.AlwaysBcc = "archive@t.example"
	})
	body := "Subject: reject-me\r\n\r\nb\r\n"
	reinjected := c.Service("", nil).WithOverrides([]string{"no_address_mappings", "no_header_body_checks"})
	m := f.send(func(ctx context.Context, env *envelope.Envelope) error {
		return reinjected.Submit(ctx, env, strings.NewReader(body))
	}, &envelope.Envelope{Sender: "old@t.example", Recipients: rcpts("list@t.example")})
	if want := []string{"list@t.example orig=list@t.example notify= state=queued"}; m.Sender != "old@t.example" || !slices.Equal(recipientSummary(m), want) {
		t.Errorf("with overrides: sender %s, recipients %v; want old@t.example, %v", m.Sender, recipientSummary(m), want)
	}
	env := &envelope.Envelope{QueueID: queueid.New(), Sender: "old@t.example", Recipients: rcpts("list@t.example"),
		ClientName: "client.example", ClientAddr: "192.0.2.1", Helo: "client.example", Protocol: "ESMTP"}
	if err := c.Service("", nil).Submit(context.Background(), env, strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), "no thanks") {
		t.Errorf("without overrides: %v; want the header_checks REJECT", err)
	}
	m = f.send(func(ctx context.Context, env *envelope.Envelope) error {
		return c.Submit(ctx, env, strings.NewReader("Subject: fine\r\n\r\nb\r\n"))
	}, &envelope.Envelope{Sender: "old@t.example", Recipients: rcpts("list@t.example")})
	if m.Sender != "new@t.example" || len(m.Recipients) != 3 {
		t.Errorf("without overrides: sender %s, recipients %v; want new@t.example and m1, m2, archive", m.Sender, recipientSummary(m))
	}
}
