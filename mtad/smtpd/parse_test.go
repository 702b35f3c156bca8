package smtpd

import (
	"sqlmta/mtad/envelope"
	"testing"
)

func TestSplitPath(t *testing.T) {
	cases := []struct {
		args, kw, token string
		params          []string
		syntax, tok     bool
	}{
		{"FROM:<a@b>", "FROM:", "<a@b>", nil, true, true},
		{"from: <a@b> SIZE=10 BODY=8BITMIME", "FROM:", "<a@b>", []string{"SIZE=10", "BODY=8BITMIME"}, true, true},
		{"FROM:a@b", "FROM:", "a@b", nil, true, true},
		{"FROM:<>", "FROM:", "<>", nil, true, true},
		{"FROM:", "FROM:", "", nil, false, false},
		{"TO:<a@b>", "FROM:", "", nil, false, false},
		{"FROM:<a@b", "FROM:", "<a@b", nil, true, false},
		{`TO:<"a>b"@c> NOTIFY=NEVER`, "TO:", `<"a>b"@c>`, []string{"NOTIFY=NEVER"}, true, true},
		{"TO:<a@b>x", "TO:", "<a@b>", nil, true, false},
	}
	for _, c := range cases {
		token, params, syn, tok := splitPath(c.args, c.kw)
		if syn != c.syntax || tok != c.tok || (syn && tok && (token != c.token || len(params) != len(c.params))) {
			t.Errorf("splitPath(%q) = %q %q %v %v", c.args, token, params, syn, tok)
			continue
		}
		for i := range c.params {
			if params[i] != c.params[i] {
				t.Errorf("splitPath(%q) params %q", c.args, params)
			}
		}
	}
}

func TestExtractAddr(t *testing.T) {
	cases := []struct {
		in, want   string
		allowEmpty bool
		ok         bool
	}{
		{"<a@example.com>", "a@example.com", false, true},
		{"a@example.com", "a@example.com", false, true},
		{"<@relay.example,@r2.example:user@example.com>", "user@example.com", false, true},
		{`<"john doe"@example.com>`, "john doe@example.com", false, true},
		{"<>", "", true, true},
		{"<>", "", false, false},
		{"<a b@example.com>", "", false, false},
		{"<a@b>,<c@d>", "", false, false},
		{"<user@[192.0.2.1]>", "user@[192.0.2.1]", false, true},
		{"<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", false, true},
		{"<a\x01@b>", "a\x01@b", false, true}, // as Postfix: the control character stays
		{"<a\tb@c>", "", false, false},
		{"<a\\\x00@b>", "", false, false},  // not even escaped
		{"<\"a\tb\"@c>", "", false, false}, // nor quoted
		{"postmaster", "postmaster", false, true},
	}
	for _, c := range cases {
		got, ok := extractAddr(c.in, c.allowEmpty)
		if ok != c.ok || got != c.want {
			t.Errorf("extractAddr(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestXtextNotifyOrcpt(t *testing.T) {
	if s, ok := envelope.DecodeXtext("a+2Bb+3Dc"); !ok || s != "a+b=c" {
		t.Errorf("xtextDecode = %q %v", s, ok)
	}
	for _, bad := range []string{"a+2", "a+ZZ", "+"} {
		if _, ok := envelope.DecodeXtext(bad); ok {
			t.Errorf("envelope.DecodeXtext(%q) accepted", bad)
		}
	}
	if n, ok := parseNotify("failure,delay"); !ok || n != "FAILURE,DELAY" {
		t.Errorf("parseNotify = %q %v", n, ok)
	}
	for _, bad := range []string{"NEVER,SUCCESS", "SOMETIMES", "", "DELAY,DELAY"} {
		if _, ok := parseNotify(bad); ok {
			t.Errorf("parseNotify(%q) accepted", bad)
		}
	}
	if o, ok := parseORCPT("rfc822;bob+2Bx@example.com"); !ok || o != "rfc822;bob+x@example.com" {
		t.Errorf("parseORCPT = %q %v", o, ok)
	}
	for _, bad := range []string{"bob@example.com", ";bob@example.com", "rfc822;a+G1"} {
		if _, ok := parseORCPT(bad); ok {
			t.Errorf("parseORCPT(%q) accepted", bad)
		}
	}
	if got := neuter("foo bar<x>"); got != "foo?bar?x?" {
		t.Errorf("neuter = %q", got)
	}
}
