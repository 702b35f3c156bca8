package cleanup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sqlmta/mapdrivers/filemap"
	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
	"sqlmta/mtad/rewrite"
	"sqlmta/store"
)

// fixture is a cleanup over a real SQLite queue, with real tables: files
// (texthash, regexp, pcre) in a temporary directory and managed hash:
// tables in the same database, all opened by the daemon's own Opener.
type fixture struct {
	t   testing.TB
	st  store.Store
	dir string
	log strings.Builder
	res *rewrite.Resolver
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{t: t, st: sqliteStore(t), dir: t.TempDir()}
	dest, err := matchlist.ParseDomains([]string{"example.com", "mail.example.com", "localhost"}, false)
	if err != nil {
		t.Fatal(err)
	}
	// trivial-rewrite with Postfix's defaults at compatibility level 3.6.
	f.res = &rewrite.Resolver{MyDestination: dest, MyOrigin: "example.com", MyDomain: "example.com",
		SwapBangpath: true, AllowPercentHack: true, AppendAtMyorigin: true}
	return f
}

// file writes a table source file and returns "typ:path".
func (f *fixture) file(typ, name, text string) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return typ + ":" + p
}

// hash imports text (postmap syntax) as the managed table hash:dir/name.
func (f *fixture) hash(name, text string) string {
	p := filepath.Join(f.dir, name)
	_, err := f.st.(store.MapStore).MapImport(context.Background(), p, func(yield func(k, v string) error) error {
		return filemap.ParseMapFile(p, strings.NewReader(text), true, func(k, v string, _ int) error { return yield(k, v) })
	}, store.MapImportParams{})
	if err != nil {
		f.t.Fatal(err)
	}
	return "hash:" + p
}

// cleanup returns a Cleanup with main.cf's defaults and what edit changes.
func (f *fixture) cleanup(edit func(*Config)) *Cleanup {
	opener := &mapopen.Opener{Store: f.st}
	f.t.Cleanup(func() { opener.Close() })
	cfg := Config{
		Hostname:                     "mail.example.com",
		Qualify:                      f.res.Qualify,
		IsLocalDomain:                f.res.LocalpartLookup,
		OpenMap:                      opener.Open,
		CanonicalClasses:             []string{"envelope_sender", "envelope_recipient", "header_sender", "header_recipient"},
		SenderCanonicalClasses:       []string{"envelope_sender", "header_sender"},
		RecipientCanonicalClasses:    []string{"envelope_recipient", "header_recipient"},
		MasqueradeClasses:            []string{"envelope_sender", "header_sender", "header_recipient"},
		PropagateUnmatchedExtensions: []string{"canonical", "virtual"},
		DuplicateFilterLimit:         1000,
	}
	if edit != nil {
		edit(&cfg)
	}
	return New(cfg, f.st, maillog.New(&f.log, "mail", "postfix"))
}

// submit sends one message from a remote client and returns the stored
// envelope (nil when nothing was stored) and Submit's error.
func (f *fixture) submit(c *Cleanup, sender string, rcpts []string, content string) (*store.Message, error) {
	f.t.Helper()
	env := &envelope.Envelope{QueueID: queueid.New(), Sender: sender, ClientName: "client.example", ClientAddr: "192.0.2.1",
		Helo: "client.example", Protocol: "ESMTP"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, envelope.Recipient{Address: r, Orig: r})
	}
	err := c.Submit(context.Background(), env, strings.NewReader(content))
	m, gerr := f.st.MessageGet(context.Background(), env.QueueID)
	if gerr != nil {
		if !errors.Is(gerr, store.ErrNotFound) {
			f.t.Fatal(gerr)
		}
		return nil, err
	}
	return m, err
}

func addrs(m *store.Message) []string {
	var out []string
	for _, r := range m.Recipients {
		out = append(out, r.Address)
	}
	return out
}

const plainMessage = "Subject: test\r\n\r\nbody\r\n"

func TestEnvelopeStandardForm(t *testing.T) {
	f := newFixture(t)
	c := f.cleanup(nil)
	cases := []struct{ sender, rcpt, wantSender, wantRcpt string }{
		{"MAILER-DAEMON", "site.example!bob", "", "bob@site.example"},
		{"mailer-daemon@Example.COM", "bob%x.example", "", "bob@x.example"},
		{"MAILER-DAEMON@other.example", "@r1.example,@r2.example:carol@y.example", "MAILER-DAEMON@other.example", "carol@y.example"},
		{"alice", "dave", "alice@example.com", "dave@example.com"},
		{"alice@host.", "erin@z.example.", "alice@host", "erin@z.example"},
		{"", "", "", "MAILER-DAEMON@example.com"}, // empty_address_recipient
	}
	for _, tc := range cases {
		m, err := f.submit(c, tc.sender, []string{tc.rcpt}, plainMessage)
		if err != nil {
			t.Fatalf("%q → %q: %v", tc.sender, tc.rcpt, err)
		}
		if m.Sender != tc.wantSender || !slices.Equal(addrs(m), []string{tc.wantRcpt}) {
			t.Errorf("sender %q rcpt %q: stored sender %q rcpts %q, want %q %q", tc.sender, tc.rcpt, m.Sender, addrs(m), tc.wantSender, tc.wantRcpt)
		}
	}
}

func TestCanonicalLookupOrder(t *testing.T) {
	f := newFixture(t)
	first := f.file("texthash", "canonical1", `
user+ext@example.com  a1@t.example
plain@example.com     a2@t.example
bare                  a3@t.example
bare2+x               a4@t.example
@other.example        @mapped.example
@dom.example          catchall@t.example
chain1@example.com    chain2@example.com
chain2@example.com    chain3@t.example
self@example.com      self@example.com
empty@example.com     ,
`)
	second := f.hash("canonical2", `
order@dom.example  full-key-in-second-table@t.example
`)
	// A pattern table sees only the full address, never "bare3" or "@domain".
	rx := f.file("regexp", "canonical.re", `
/^bare3$/  wrong@t.example
/^rx@(.*)$/ rx-result@$1
`)
	cases := []struct {
		name, in, want string
		noPropagate    bool
	}{
		{"full address with extension", "user+ext@example.com", "a1@t.example", false},
		{"extension stripped and propagated", "plain+foo@example.com", "a2+foo@t.example", false},
		{"extension stripped, not propagated", "plain+foo@example.com", "a2@t.example", true},
		{"case folded", "PLAIN@Example.COM", "a2@t.example", false},
		{"bare localpart in a local domain", "bare@example.com", "a3@t.example", false},
		{"bare localpart in mydestination", "bare@localhost", "a3@t.example", false},
		{"bare localpart not for a remote domain", "bare@elsewhere.example", "bare@elsewhere.example", false},
		{"bare localpart, extension propagated", "bare+y@example.com", "a3+y@t.example", false},
		{"localpart with extension", "bare2+x@example.com", "a4@t.example", false},
		{"@domain keeps the user", "joe+z@other.example", "joe+z@mapped.example", false},
		{"@domain catch-all", "joe@dom.example", "catchall@t.example", false},
		{"each key in every table before the next key", "order@dom.example", "full-key-in-second-table@t.example", false},
		{"canonical result mapped again", "chain1@example.com", "chain3@t.example", false},
		{"self mapping ends", "self@example.com", "self@example.com", false},
		{"pattern table never sees a partial key", "bare3@example.com", "bare3@example.com", false},
		{"pattern table sees the full key", "rx@Pattern.example", "rx-result@Pattern.example", false},
		{"unqualified result gets myorigin", "unknown@example.com", "unknown@example.com", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.cleanup(func(cfg *Config) {
				cfg.RecipientDelimiter = "+"
				cfg.CanonicalMaps = []string{first, second, rx}
				if tc.noPropagate {
					cfg.PropagateUnmatchedExtensions = []string{"virtual"}
				}
			})
			m, err := f.submit(c, "sender@t.example", []string{tc.in}, plainMessage)
			if err != nil {
				t.Fatal(err)
			}
			if got := addrs(m); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s → %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	t.Run("non-address result is a temporary failure", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) { cfg.CanonicalMaps = []string{first} })
		_, err := f.submit(c, "s@t.example", []string{"empty@example.com"}, plainMessage)
		if r := reply.As(err); r == nil || r.String() != "451 4.3.0 Error: queue file write error" {
			t.Errorf("got %v", err)
		}
	})
}

func TestSenderAndRecipientCanonical(t *testing.T) {
	f := newFixture(t)
	c := f.cleanup(func(cfg *Config) {
		cfg.SenderCanonicalMaps = []string{f.file("texthash", "sc", "s@example.com s2@example.com\nr@example.com wrong-sender-map@t.example\n")}
		cfg.RecipientCanonicalMaps = []string{f.file("texthash", "rc", "r@example.com r2@example.com\ns@example.com wrong-recipient-map@t.example\n")}
		cfg.CanonicalMaps = []string{f.hash("c", "s2@example.com s3@t.example\nr2@example.com r3@t.example\n")}
	})
	m, err := f.submit(c, "s", []string{"r", "s"}, plainMessage)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sender != "s3@t.example" || !slices.Equal(addrs(m), []string{"r3@t.example", "wrong-recipient-map@t.example"}) {
		t.Errorf("sender %q recipients %q", m.Sender, addrs(m))
	}
	// canonical_classes without envelope_recipient: recipients keep their address.
	c = f.cleanup(func(cfg *Config) {
		cfg.CanonicalMaps = []string{f.file("texthash", "c2", "r@example.com mapped@t.example\n")}
		cfg.CanonicalClasses = []string{"envelope_sender"}
	})
	if m, err = f.submit(c, "r", []string{"r"}, plainMessage); err != nil {
		t.Fatal(err)
	}
	if m.Sender != "mapped@t.example" || !slices.Equal(addrs(m), []string{"r@example.com"}) {
		t.Errorf("classes ignored: sender %q recipients %q", m.Sender, addrs(m))
	}
}

func TestMasquerade(t *testing.T) {
	c := &Cleanup{cfg: Config{
		MasqueradeDomains:    []string{"!sub.keep.example", "keep.example", "example.com"},
		MasqueradeExceptions: []string{"root"},
	}}
	for in, want := range map[string]string{
		"u@host.example.com":       "u@example.com",
		"u@a.b.Example.COM":        "u@example.com",
		"u@example.com":            "u@example.com",
		"u@notexample.com":         "u@notexample.com",
		"x@b.keep.example":         "x@keep.example",
		"x@a.sub.keep.example":     "x@a.sub.keep.example",
		"x@sub.keep.example":       "x@sub.keep.example",
		"Root@host.example.com":    "Root@host.example.com",
		"postmaster@h.example.com": "postmaster@example.com",
		"nodomain":                 "nodomain",
	} {
		if got := c.masquerade(in); got != want {
			t.Errorf("masquerade(%q) = %q, want %q", in, got, want)
		}
	}

	// Envelope: senders by default, recipients only with envelope_recipient.
	f := newFixture(t)
	cl := f.cleanup(func(cfg *Config) { cfg.MasqueradeDomains = []string{"example.com"} })
	m, err := f.submit(cl, "a@host.example.com", []string{"b@host.example.com"}, plainMessage)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sender != "a@example.com" || addrs(m)[0] != "b@host.example.com" {
		t.Errorf("default classes: sender %q recipients %q", m.Sender, addrs(m))
	}
	cl = f.cleanup(func(cfg *Config) {
		cfg.MasqueradeDomains = []string{"example.com"}
		cfg.MasqueradeClasses = append(cfg.MasqueradeClasses, "envelope_recipient")
	})
	if m, err = f.submit(cl, "a@host.example.com", []string{"b@host.example.com"}, plainMessage); err != nil {
		t.Fatal(err)
	}
	if addrs(m)[0] != "b@example.com" {
		t.Errorf("envelope_recipient class: recipients %q", addrs(m))
	}
}

const virtualTable = `
list@example.com    a@example.com, b@t.example, list@example.com
a@example.com       a2@t.example
loop1@example.com   loop2@example.com
loop2@example.com   loop1@example.com
big@example.com     r1@t.example, r2@t.example, r3@t.example, r4@t.example, r5@t.example
long@example.com    a-very-long-address-indeed@t.example
dup@example.com     x@t.example, x@t.example, X@T.example
three@example.com   r1@t.example, r2@t.example, r2@t.example
vx@example.com      vy@t.example
@vdom.example       @t.example
`

func TestVirtualAliasExpansion(t *testing.T) {
	f := newFixture(t)
	texthash := f.file("texthash", "virtual", virtualTable)
	hash := f.hash("virtual", virtualTable)
	cases := []struct {
		name  string
		rcpts []string
		edit  func(*Config)
		want  []string
		reply string
	}{
		{name: "1:N with recursion and self-reference", rcpts: []string{"list@example.com"},
			want: []string{"a2@t.example", "b@t.example", "list@example.com"}},
		{name: "not in the table", rcpts: []string{"nobody@example.com"}, want: []string{"nobody@example.com"}},
		{name: "@domain", rcpts: []string{"joe@vdom.example"}, want: []string{"joe@t.example"}},
		{name: "extension propagated", rcpts: []string{"vx+tag@example.com"}, want: []string{"vy+tag@t.example"},
			edit: func(c *Config) { c.RecipientDelimiter = "+" }},
		{name: "loop hits the recursion limit", rcpts: []string{"loop1@example.com"}, reply: "451 4.6.0 Alias expansion error"},
		{name: "expansion limit", rcpts: []string{"big@example.com"}, reply: "451 4.6.0 Alias expansion error",
			edit: func(c *Config) { c.VirtualAliasExpansionLimit = 3 }},
		{name: "under the expansion limit", rcpts: []string{"big@example.com"},
			want: []string{"r1@t.example", "r2@t.example", "r3@t.example", "r4@t.example", "r5@t.example"},
			edit: func(c *Config) { c.VirtualAliasExpansionLimit = 5 }},
		{name: "address length limit", rcpts: []string{"long@example.com"}, reply: "451 4.6.0 Alias expansion error",
			edit: func(c *Config) { c.VirtualAliasAddressLengthLimit = 20 }},
		{name: "duplicates removed, case-insensitively", rcpts: []string{"dup@example.com"}, want: []string{"x@t.example"}},
		{name: "same recipient twice", rcpts: []string{"a@example.com", "a@example.com"}, want: []string{"a2@t.example"}},
		{name: "duplicate filter limit", rcpts: []string{"three@example.com"},
			want: []string{"r1@t.example", "r2@t.example", "r2@t.example"},
			edit: func(c *Config) { c.DuplicateFilterLimit = 1 }},
		{name: "lookup error", rcpts: []string{"list@example.com"}, reply: "451 4.3.0 Error: queue file write error",
			edit: func(c *Config) { c.VirtualAliasMaps = []string{"fail:virtual"} }},
		{name: "managed table never imported", rcpts: []string{"list@example.com"}, reply: "451 4.3.0 Error: queue file write error",
			edit: func(c *Config) { c.VirtualAliasMaps = []string{"hash:" + filepath.Join(f.dir, "missing")} }},
	}
	for _, table := range []string{texthash, hash} {
		for _, tc := range cases {
			t.Run(strings.SplitN(table, ":", 2)[0]+"/"+tc.name, func(t *testing.T) {
				c := f.cleanup(func(cfg *Config) {
					cfg.VirtualAliasMaps = []string{table}
					if tc.edit != nil {
						tc.edit(cfg)
					}
				})
				m, err := f.submit(c, "s@t.example", tc.rcpts, plainMessage)
				if tc.reply != "" {
					if r := reply.As(err); r == nil || r.String() != tc.reply || m != nil {
						t.Fatalf("got %v (stored %v), want %s", err, m != nil, tc.reply)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := addrs(m); !slices.Equal(got, tc.want) {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			})
		}
	}
	if !strings.Contains(f.log.String(), "warning: ") || !strings.Contains(f.log.String(), "unreasonable virtual_alias_maps map nesting for loop1@example.com -- message not accepted, try again later") {
		t.Errorf("no nesting warning in the log:\n%s", f.log.String())
	}
}

func TestStripExtension(t *testing.T) {
	for _, c := range []struct{ in, delims, bare, ext string }{
		{"user+foo@d", "+", "user@d", "+foo"},
		{"user+foo+bar@d", "+", "user@d", "+foo+bar"},
		{"user-foo@d", "+-", "user@d", "-foo"},
		{"+foo@d", "+", "", ""},
		{"owner-list@d", "-", "", ""},
		{"list-request@d", "-", "", ""},
		{"postmaster+x@d", "+", "postmaster@d", "+x"}, // only the whole localpart is exempt
		{"MAILER-DAEMON@d", "-", "", ""},
		{"user+foo", "+", "user", "+foo"},
		{"user@d", "+", "", ""},
	} {
		bare, ext, _ := rewrite.StripExtension(c.in, c.delims)
		if bare != c.bare || ext != c.ext {
			t.Errorf("rewrite.StripExtension(%q, %q) = %q %q, want %q %q", c.in, c.delims, bare, ext, c.bare, c.ext)
		}
	}
}
