package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("main.cf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func hasWarning(c *Config, sub string) bool {
	for _, w := range c.Warnings() {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func TestLogicalLines(t *testing.T) {
	c := mustParse(t, "# leading comment\n"+
		"a = one\n"+
		"  two,\n"+
		"   # indented comment inside a continuation is dropped\n"+
		"# so is a column-0 comment, and the value goes on\n"+
		"\n"+
		"\tthree   \n"+
		"b=x # not a comment\r\n"+
		"c =\n"+
		"d = first\n"+
		"d = second\n")
	cases := map[string]string{
		"a": "one  two,\tthree", // continuation text is appended verbatim
		"b": "x # not a comment",
		"c": "",
		"d": "second",
	}
	for k, want := range cases {
		if got, _ := c.Raw(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !hasWarning(c, "main.cf, line 11: overriding earlier entry: d=first") {
		t.Errorf("no override warning in %q", c.Warnings())
	}
	if got := c.Explicit(); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("Explicit = %q", got)
	}
}

func TestLeadingWhitespaceIgnored(t *testing.T) {
	c := mustParse(t, "   orphan = 1\n  more\nx = 2\n")
	if _, ok := c.values["orphan"]; ok {
		t.Error("a logical line starting with whitespace was used")
	}
	if c.Get("x") != "2" {
		t.Errorf("x = %q", c.Get("x"))
	}
	if !hasWarning(c, "line 1: logical line must not start with whitespace") {
		t.Errorf("warnings: %q", c.Warnings())
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		text, msg string
		line      int
	}{
		{"a = 1\n\n# c\nfoo bar\n", "missing '='", 4},
		{"a = 1\nfoo-bar = x\n", `bad parameter name "foo-bar"`, 2},
		{"a = 1\n  b\n= x\n", "missing attribute name", 3},
		{"x = 1\nfoo bar\n  continued = here\n", `bad parameter name "foo bar  continued"`, 2}, // the logical line starts at line 2
	}
	for _, tc := range cases {
		_, err := Parse("/etc/sqlmta/main.cf", strings.NewReader(tc.text))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: error %v is not a *ParseError", tc.text, err)
		}
		if pe.File != "/etc/sqlmta/main.cf" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%q: got %+v, want line %d msg containing %q", tc.text, pe, tc.line, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "/etc/sqlmta/main.cf, line ") {
			t.Errorf("error text %q", err)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("a = 1\n\nfoo bar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	want := filepath.Join(dir, "main.cf") + ", line 3: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Load error = %v, want prefix %q", err, want)
	}
}

func TestLoadMissingMainCF(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get("config_directory"); got != dir {
		t.Errorf("config_directory = %q, want %q", got, dir)
	}
	if got := c.Get("relay_transport"); got != "relay" {
		t.Errorf("relay_transport = %q", got)
	}
	if len(c.Explicit()) != 0 {
		t.Errorf("Explicit = %q, want none", c.Explicit())
	}
	if got := c.Get("database_url"); got != "sqlite:/var/lib/sqlmta/sqlmta.db" {
		t.Errorf("database_url = %q", got)
	}
}

func TestExpand(t *testing.T) {
	c := mustParse(t, `
a = x
emp =
re = $emp
n10 = 10
name_with_dollar = cost $$5
chain = <$a|${a}|$(a)|$a.b|$a-b|${a}c>
`)
	cases := []struct{ in, want string }{
		{"$a $$ ${a} $(a)", "x $ x x"},
		{"$chain", "<x|x|x|x.b|x-b|xc>"},
		{"$name_with_dollar", "cost $5"},
		{"$$a", "$a"},
		{"[$undefined_thing]", "[]"},
		{"[${a?{ yes }}][${zz:{ e }}]", "[ yes ][ e ]"},
		{"[${a?   {t}  :  { f }  }][${zz?{t}:  f }]", "[t][  f ]"},
		{"[${a?  t }][${a ? {q}}][${ a }]", "[  t ][q][x]"},
		{"[${a?foo:{b}ar}]", "[foo:{b}ar]"}, // 2.x form: unbraced text runs to the end
		{"[${a?}][${emp?x}][${emp:y}][${a:y}]", "[][][y][]"},
		{"[${re?yes}][${re:no}]", "[yes][]"}, // the raw value is tested, not its expansion
		{"[${a?$a$a}][${zz:$a}]", "[xx][x]"},
		{"[$(a?x)][$(zz:(z))]", "[x][(z)]"},
		{"[${a?{x}}}]", "[x}]"},
		{"{a}", "{a}"},
		{"${{$a} == {x} ? {eq} : {ne}}", "eq"},
		{"${{$a} != {x} ? {eq} : {ne}}", "ne"},
		{"[${{a}=={a}}][${{$a}!={x}}]", "[true][]"},
		{"[${{a}=={a}?{t}}|${{a}=={b}:{f}}]", "[t|f]"},
		{"[${{a} == {b} ? yes : no}]", "[]"}, // unbraced text runs to the end
		{"[${{ 1 } == {1}}][${{01} == {1}}][${{01} <= {1}}]", "[][true][true]"},
		{"[${{10} < {9}}][${{10} < {9a}}][${{$n10} > {9}}][${{ab}<{b}}]", "[][true][true][true]"},
		{"[${{1} <= {01}}][${{2} >= {10}}][${{007} == {7}}]", "[true][][true]"},
		{"[${{99999999999999999999} > {9}}]", "[true]"},
		{"[${{3.6} <level {2}?{old}:{new}}][${{2} >level {3.6}}][${{3.6.1} >level {3.6}}]", "[new][][true]"},
		{"[${{3.6} >=level {3.6}}][${{3} <=level {3.6}}][${{3.10} >level {3.9}}][${{2}==level{2.0}}]", "[true][true][true][true]"},
		{"[${{1}<level{2}}][${{3.6}!=level{3.6.0}}]", "[true][]"},
		{"${{$compatibility_level} <level {2} ? {subnet} : {host}}", "host"},
		{"${{${a}} == {x}?{nested}}", "nested"},
		{"${a?{${{1}=={1}?{deep}}}}", "deep"},
	}
	for _, tc := range cases {
		got, err := c.Expand(tc.in)
		if err != nil {
			t.Errorf("Expand(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !hasWarning(c, "main.cf: undefined parameter: undefined_thing") {
		t.Errorf("no undefined-parameter warning: %q", c.Warnings())
	}
}

func TestExpandErrors(t *testing.T) {
	c := mustParse(t, "a = x\n")
	cases := []struct{ in, msg string }{
		{"a$", "empty macro name"},
		{"a $ b", "empty macro name"},
		{"a $-b", "empty macro name"},
		{"${a", "truncated macro reference"},
		{"$(a", "truncated macro reference"},
		{"${}", "empty macro name"},
		{"${a b}", "attribute name syntax error"},
		{"${a:{x}:{y}}", "unexpected input"},
		{"${zz?{x} junk}", `":" expected`},
		{"${{a}=={a}junk}", `"?" or ":" expected`},
		{"${{a} === {b}}", `"==" or "!=" or "<" or "<=" or ">=" or ">" expected`},
		{"${{1}<>{1}}", `"==" or "!="`},
		{"${{a} == b}", `"{expression}" expected`},
		{"${{x} <level {b}}", "malformed compatibility level syntax"},
		{"${{1.2.3.4} <level {3}}", "malformed compatibility level syntax"},
		{"$(a?{x)", "unbalanced {}"},
		{"${{a == {b}}", "truncated macro reference"},
	}
	for _, tc := range cases {
		_, err := c.Expand(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Expand(%q) error = %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func TestExpandLoop(t *testing.T) {
	c := mustParse(t, `
l1 = a $l2
l2 = ${l3?{$l1}}
l3 = set
self = $self
cond = ${{$cond} == {x}}
ok = $l3
`)
	for _, name := range []string{"l1", "l2", "self", "cond"} {
		_, err := c.Lookup(name)
		var ee *ExpandError
		if !errors.As(err, &ee) || !strings.Contains(ee.Msg, "recursive parameter reference") {
			t.Errorf("Lookup(%s) = %v, want a recursive reference error", name, err)
		}
	}
	if got, _ := c.Lookup("l1"); got != "" {
		t.Errorf("looping value = %q, want empty", got)
	}
	if _, err := c.Lookup("l1"); !strings.Contains(err.Error(), "l1 -> l2 -> l1") {
		t.Errorf("error %q does not show the chain", err)
	}
	if got := c.Get("ok"); got != "set" {
		t.Errorf("ok = %q", got)
	}
	// Get does not fail; it records the problem.
	c.Get("self")
	if !hasWarning(c, "recursive parameter reference: self -> self") {
		t.Errorf("warnings: %q", c.Warnings())
	}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "l1") {
		t.Errorf("Check = %v", err)
	}
}

func TestDeepNestingIsAnErrorNotAStackOverflow(t *testing.T) {
	var b strings.Builder
	b.WriteString("p0 = end\n")
	for i := 1; i <= 200; i++ {
		b.WriteString("p" + itoaTest(i) + " = $p" + itoaTest(i-1) + "\n")
	}
	c := mustParse(t, b.String())
	if _, err := c.Lookup("p200"); err == nil || !strings.Contains(err.Error(), "nesting") {
		t.Errorf("deep chain: %v", err)
	}
	if got, err := c.Lookup("p50"); err != nil || got != "end" {
		t.Errorf("p50 = %q, %v", got, err)
	}
	deep := strings.Repeat("${a?{", 150) + "x" + strings.Repeat("}}", 150)
	c.Set("a", "1")
	if _, err := c.Expand(deep); err == nil {
		t.Error("150 nested conditionals expanded without error")
	}
}

func itoaTest(i int) string {
	return strconv.Itoa(i)
}

func TestCheckCleanConfig(t *testing.T) {
	c := mustParse(t, "myhostname = mx.example.com\n")
	if err := c.Check(); err != nil {
		t.Errorf("Check on defaults: %v", err)
	}
}

func TestSplitList(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,\t\n", nil},
		{"a,b c", []string{"a", "b", "c"}},
		{"a , , b,,c\n\td", []string{"a", "b", "c", "d"}},
		{"$myhostname, localhost.$mydomain, localhost", []string{"$myhostname", "localhost.$mydomain", "localhost"}},
		{"a, { b c , d } e", []string{"a", "b c , d", "e"}},
		{"{a b, c}", []string{"a b, c"}},
		{"{ }", []string{""}},
		{"check_ccert_access { type:table, { search_order = cert_fingerprint } }",
			[]string{"check_ccert_access", "type:table, { search_order = cert_fingerprint }"}},
		{"inline:{ key=value, { key = text with space } } static:x",
			[]string{"inline:{ key=value, { key = text with space } }", "static:x"}},
		{"!example.com, .example.com", []string{"!example.com", ".example.com"}},
	}
	for _, tc := range cases {
		if got := SplitList(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := ParseList("a {b c"); err == nil || !strings.Contains(err.Error(), "missing '}'") {
		t.Errorf("ParseList unbalanced: %v", err)
	}
	if items, err := ParseList("{b}c d"); err == nil || !strings.Contains(err.Error(), "syntax error after '}'") || len(items) != 2 {
		t.Errorf("ParseList trailing text: %q %v", items, err)
	}
	c := mustParse(t, "mydestination = $myhostname, localhost\nmyhostname = mx.example.com\n")
	if got := c.List("mydestination"); !reflect.DeepEqual(got, []string{"mx.example.com", "localhost"}) {
		t.Errorf("List = %q", got)
	}
}

func TestBool(t *testing.T) {
	c := mustParse(t, "t1 = yes\nt2 = YES\nf1 = No\nindirect = $t1\nbad = true\nbad2 = 1\n")
	for name, want := range map[string]bool{"t1": true, "t2": true, "f1": false, "indirect": true,
		"smtpd_helo_required": false, "smtpd_delay_reject": true, "append_dot_mydomain": false} {
		got, err := c.Bool(name)
		if err != nil || got != want {
			t.Errorf("Bool(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"bad", "bad2"} {
		v, _ := c.Raw(name)
		_, err := c.Bool(name)
		if err == nil || err.Error() != "bad boolean configuration: "+name+" = "+v {
			t.Errorf("Bool(%s) error = %v", name, err)
		}
	}
}

func TestDuration(t *testing.T) {
	c := mustParse(t, `
maximal_queue_lifetime = 2
bounce_queue_lifetime = 12h
delay_warning_time = 4
queue_run_delay = 90
smtpd_timeout = 1w
minimal_backoff_time = 5m
command_time_limit = 10x
smtp_connect_timeout = -5s
smtp_helo_timeout = S
my_own_time = 7
smtp_quit_timeout = 5S
`)
	want := map[string]time.Duration{
		"maximal_queue_lifetime": 48 * time.Hour, // default unit d
		"bounce_queue_lifetime":  12 * time.Hour,
		"delay_warning_time":     4 * time.Hour, // default unit h
		"queue_run_delay":        90 * time.Second,
		"smtpd_timeout":          7 * 24 * time.Hour,
		"minimal_backoff_time":   5 * time.Minute,
		"my_own_time":            7 * time.Second,
		"maximal_backoff_time":   4000 * time.Second, // default
		"qmgr_lease_time":        300 * time.Second,
		"qmgr_poll_interval":     time.Second,
		"smtp_data_done_timeout": 600 * time.Second,
	}
	for name, w := range want {
		got, err := c.Duration(name)
		if err != nil || got != w {
			t.Errorf("Duration(%s) = %v, %v; want %v", name, got, err, w)
		}
	}
	for _, name := range []string{"command_time_limit", "smtp_connect_timeout", "smtp_helo_timeout", "smtp_quit_timeout"} {
		if _, err := c.Duration(name); err == nil || !strings.Contains(err.Error(), "bad time configuration: "+name) {
			t.Errorf("Duration(%s) error = %v", name, err)
		}
	}
	// The default expression ${stress?{10}:{300}}s depends on stress.
	d := mustParse(t, "")
	if got, _ := d.Duration("smtpd_timeout"); got != 300*time.Second {
		t.Errorf("smtpd_timeout = %v", got)
	}
	d.Set("stress", "yes")
	if got, _ := d.Duration("smtpd_timeout"); got != 10*time.Second {
		t.Errorf("smtpd_timeout under stress = %v", got)
	}
	if n, _ := d.Int("smtpd_hard_error_limit"); n != 1 {
		t.Errorf("smtpd_hard_error_limit under stress = %d", n)
	}
}

func TestIntAndSize(t *testing.T) {
	c := mustParse(t, "message_size_limit = 52428800\nsmtpd_recipient_limit = abc\nbig = 10000000000\nhalf = $big\n")
	if n, err := c.Size("message_size_limit"); err != nil || n != 52428800 {
		t.Errorf("Size = %d, %v", n, err)
	}
	if n, err := c.Size("half"); err != nil || n != 10000000000 {
		t.Errorf("Size(half) = %d, %v", n, err)
	}
	if _, err := c.Int("smtpd_recipient_limit"); err == nil || !strings.Contains(err.Error(), "smtpd_recipient_limit = abc") {
		t.Errorf("Int error = %v", err)
	}
	if _, err := c.Size("line_length_limit"); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]int{"smtpd_soft_error_limit": 10, "smtpd_hard_error_limit": 20,
		"default_destination_recipient_limit": 50, "smtp_destination_recipient_limit": 50, "qmgr_claim_batch_size": 256} {
		if n, err := c.Int(name); err != nil || n != want {
			t.Errorf("Int(%s) = %d, %v; want %d", name, n, err, want)
		}
	}
	if _, err := c.Size("1k"); err == nil {
		t.Error("undefined parameter parsed as a size")
	}
}

func TestCompatibilityDefaults(t *testing.T) {
	c := mustParse(t, "myhostname = mx.example.com\n")
	want := map[string]string{
		"compatibility_level":      "3.6",
		"mynetworks_style":         "host",
		"relay_domains":            "",
		"append_dot_mydomain":      "no",
		"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
		"smtputf8_enable":          "yes",
		"mydomain":                 "example.com",
		"mydestination":            "mx.example.com, localhost.example.com, localhost",
		"smtpd_banner":             "mx.example.com ESMTP Postfix",
		"local_transport":          "local:mx.example.com",
		"syslog_name":              "postfix",
		"smtpd_relay_before_recipient_restrictions": "yes",
		"virtual_alias_domains":                     "",
	}
	for k, w := range want {
		if got := c.Get(k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	old := mustParse(t, "myhostname = mx.example.com\ncompatibility_level = 0\n")
	wantOld := map[string]string{
		"mynetworks_style":                          "subnet",
		"relay_domains":                             "mx.example.com, localhost.example.com, localhost",
		"append_dot_mydomain":                       "yes",
		"smtpd_relay_restrictions":                  "",
		"smtputf8_enable":                           "no",
		"smtpd_relay_before_recipient_restrictions": "no",
	}
	for k, w := range wantOld {
		if got := old.Get(k); got != w {
			t.Errorf("level 0: %s = %q, want %q", k, got, w)
		}
	}
	if raw, _ := c.Raw("relay_domains"); raw != "${{$compatibility_level} <level {2} ? {$mydestination} : {}}" {
		t.Errorf("Raw(relay_domains) = %q", raw)
	}
}

func TestComputedHostDefaults(t *testing.T) {
	cases := []struct {
		hostname, main, myhostname, mydomain string
	}{
		{"vm", "", "vm.localdomain", "localdomain"},
		{"mail.example.org", "", "mail.example.org", "example.org"},
		{"vm", "mydomain = example.net\n", "vm.example.net", "example.net"},
		{"vm", "myhostname = a.b.c\n", "a.b.c", "b.c"},
		{"vm", "myhostname = single\n", "single", "localdomain"},
	}
	for _, tc := range cases {
		c := mustParse(t, tc.main)
		c.hostname = tc.hostname
		if got := c.Get("myhostname"); got != tc.myhostname {
			t.Errorf("%q/%q: myhostname = %q, want %q", tc.hostname, tc.main, got, tc.myhostname)
		}
		if got := c.Get("mydomain"); got != tc.mydomain {
			t.Errorf("%q/%q: mydomain = %q, want %q", tc.hostname, tc.main, got, tc.mydomain)
		}
	}
	// A dot-less host name with mydomain = $myhostname is a loop in Postfix too.
	c := mustParse(t, "mydomain = $myhostname\n")
	c.hostname = "vm"
	if _, err := c.Lookup("mydomain"); err == nil {
		t.Error("mydomain = $myhostname with a dot-less host name did not fail")
	}
}

func TestMynetworks(t *testing.T) {
	c := mustParse(t, "")
	nets := c.List("mynetworks")
	for _, must := range []string{"127.0.0.1/32"} {
		found := false
		for _, n := range nets {
			found = found || n == must
		}
		if !found {
			t.Errorf("mynetworks %q lacks %s", nets, must)
		}
	}
	c.Set("mynetworks", "10.0.0.0/8")
	if got := c.Get("mynetworks"); got != "10.0.0.0/8" {
		t.Errorf("explicit mynetworks = %q", got)
	}
}

func TestMynetworksFor(t *testing.T) {
	ipn := func(cidr string) *ipNetAddr { return mustCIDR(t, cidr) }
	addrs := addrList(ipn("127.0.0.1/8"), ipn("::1/128"), ipn("192.0.2.2/24"), ipn("fd00::2/64"), ipn("172.16.5.4/24"))
	cases := []struct {
		style  string
		v4, v6 bool
		want   string
	}{
		{"host", true, true, "127.0.0.1/32 192.0.2.2/32 172.16.5.4/32 [::1]/128 [fd00::2]/128"},
		{"subnet", true, true, "127.0.0.0/8 192.0.2.0/24 172.16.5.0/24 [::1]/128 [fd00::]/64"},
		{"class", true, false, "127.0.0.0/8 192.0.2.0/24 172.16.0.0/16"},
		{"host", false, true, "[::1]/128 [fd00::2]/128"},
	}
	for _, tc := range cases {
		if got := mynetworksFor(tc.style, addrs, tc.v4, tc.v6); got != tc.want {
			t.Errorf("%s v4=%v v6=%v: %q, want %q", tc.style, tc.v4, tc.v6, got, tc.want)
		}
	}
}

func TestWithAndSet(t *testing.T) {
	c := mustParse(t, "myhostname = mx.example.com\nsmtpd_banner = $myhostname hello\n")
	s := c.With(map[string]string{"smtpd_banner": "submission on $myhostname", "smtpd_tls_security_level": "encrypt"})
	if got := s.Get("smtpd_banner"); got != "submission on mx.example.com" {
		t.Errorf("override banner = %q", got)
	}
	if got := c.Get("smtpd_banner"); got != "mx.example.com hello" {
		t.Errorf("original changed: %q", got)
	}
	if c.IsExplicit("smtpd_tls_security_level") || !s.IsExplicit("smtpd_tls_security_level") {
		t.Error("explicitness not tracked per copy")
	}
	c.Set("myhostname", "other.example.com")
	if got := s.Get("smtpd_banner"); got != "submission on mx.example.com" {
		t.Errorf("copy follows later Set on original: %q", got)
	}
	if got := c.Get("smtpd_banner"); got != "other.example.com hello" {
		t.Errorf("Set ignored: %q", got)
	}
}

func TestExpandWith(t *testing.T) {
	c := mustParse(t, "recipient_delimiter = +\n")
	fp, _ := c.Raw("forward_path")
	got, err := c.ExpandWith(fp, map[string]string{"home": "/home/u", "extension": "x"})
	if err == nil && got != "/home/u/.forward+x, /home/u/.forward" {
		t.Errorf("forward_path = %q", got)
	}
	if err != nil {
		t.Error(err)
	}
	raw, _ := c.Raw("default_rbl_reply")
	got, err = c.ExpandWith(raw, map[string]string{"rbl_code": "554", "rbl_class": "Client host",
		"rbl_what": "192.0.2.1", "rbl_domain": "zen.example", "rbl_reason": ""})
	if err != nil || got != "554 Service unavailable; Client host [192.0.2.1] blocked using zen.example" {
		t.Errorf("default_rbl_reply = %q, %v", got, err)
	}
}

func TestParamTable(t *testing.T) {
	required := strings.Fields(`myhostname mydomain myorigin mydestination mynetworks mynetworks_style
	inet_interfaces inet_protocols relay_domains relayhost smtpd_banner mail_name message_size_limit
	smtpd_recipient_limit smtpd_relay_restrictions smtpd_recipient_restrictions smtpd_client_restrictions
	smtpd_helo_restrictions smtpd_sender_restrictions smtpd_helo_required smtpd_error_sleep_time
	smtpd_soft_error_limit smtpd_hard_error_limit smtpd_timeout line_length_limit header_size_limit
	queue_run_delay minimal_backoff_time maximal_backoff_time maximal_queue_lifetime bounce_queue_lifetime
	default_transport local_transport relay_transport virtual_transport virtual_mailbox_domains
	virtual_mailbox_base virtual_mailbox_maps virtual_alias_domains home_mailbox mail_spool_directory
	mailbox_command alias_maps local_recipient_maps append_dot_mydomain append_at_myorigin compatibility_level
	default_destination_concurrency_limit initial_destination_concurrency default_destination_recipient_limit
	smtp_destination_recipient_limit smtp_connect_timeout smtp_helo_name smtp_helo_timeout smtp_data_done_timeout
	smtp_tls_security_level config_directory data_directory queue_directory maillog_file syslog_name
	smtpd_delay_reject soft_bounce mail_owner default_privs recipient_delimiter hopcount_limit disable_dns_lookups
	smtp_dns_support_level enable_long_queue_ids delay_warning_time 2bounce_notice_recipient
	bounce_notice_recipient notify_classes proxy_interfaces database_url qmgr_lease_time qmgr_claim_batch_size
	qmgr_poll_interval`)
	for _, n := range required {
		if !Known(n) {
			t.Errorf("parameter %s missing from the table", n)
		}
	}
	seen := map[string]bool{}
	for _, p := range Defaults() {
		if seen[p.Name] {
			t.Errorf("duplicate parameter %s", p.Name)
		}
		seen[p.Name] = true
		if p.Desc == "" {
			t.Errorf("%s has no description", p.Name)
		}
		if p.Unit != 0 {
			if _, ok := ParseDuration(mustParse(t, "").Get(p.Name), p.Unit); !ok {
				t.Errorf("%s: default %q is not a valid time", p.Name, p.Default)
			}
		}
		if p.Name == "myhostname" && !strings.Contains(p.Default, ".") {
			t.Errorf("computed myhostname default %q has no dot", p.Default)
		}
	}
	// Every built-in default expands without error or undefined names,
	// except templates filled in per message.
	c := mustParse(t, "")
	if err := c.Check(); err != nil {
		t.Error(err)
	}
	for _, w := range c.Warnings() {
		if strings.Contains(w, "undefined parameter") && !strings.Contains(w, "rbl_") &&
			!strings.HasSuffix(w, ": home") && !strings.HasSuffix(w, ": extension") {
			t.Errorf("default refers to an unknown parameter: %s", w)
		}
	}
}
