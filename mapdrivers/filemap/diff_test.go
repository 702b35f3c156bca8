package filemap

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/internal/peers"
	"sqlmta/mapdrivers"
)

// postmapQuery asks the real "postmap -q - spec" for every key and returns
// the values it found.
func postmapQuery(t *testing.T, spec string, keys []string) map[string]string {
	t.Helper()
	bin := peers.Require(t, "postmap")
	cmd := exec.Command(bin, "-q", "-", spec)
	cmd.Stdin = strings.NewReader(strings.Join(keys, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("postmap -q - %s: %v %s", spec, err, out)
		}
	}
	got := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			got[k] = v
		}
	}
	return got
}

// compare looks every key up in ours and in Postfix and reports differences.
func compare(t *testing.T, m mapdrivers.Map, spec string, keys []string) {
	t.Helper()
	want := postmapQuery(t, spec, keys)
	found := 0
	for _, k := range keys {
		v, ok, err := m.Lookup(context.Background(), k)
		if err != nil {
			t.Errorf("%s: lookup %q: %v", spec, k, err)
			continue
		}
		wv, wok := want[k]
		if ok != wok || v != wv {
			t.Errorf("%s: key %q: ours (%q, %v), postmap (%q, %v)", spec, k, v, ok, wv, wok)
		}
		if wok {
			found++
		}
	}
	// Guard against a vacuous comparison (postmap finding nothing).
	if found == 0 || found == len(keys) {
		t.Errorf("%s: postmap found %d of %d keys: test data does not discriminate", spec, found, len(keys))
	}
}

func writeTable(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "table")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func quiet(string) {}

func TestDifferentialTexthash(t *testing.T) {
	p := writeTable(t, `Foo bar
"a b" quoted
"c\"d" esc
dup first
DUP second
cont line1
  line2
# comment
	line3
nokey
colon: val
x\ y  val2
"unbal v
UPPER   MiXeD Value  
ÄÖÜ umlaut
STRAẞE gross
empty ""
user@Example.COM   addr
`)
	m, err := OpenTexthash(p, WithWarn(quiet))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, m, "texthash:"+p, []string{"foo", "FOO", "Foo", "\"a b\"", "a b", "\"c\\\"d\"", "dup", "cont",
		"nokey", "colon:", "colon", "x\\ y", "x y", "\"unbal", "upper", "äöü", "ÄÖÜ", "strasse", "straße",
		"empty", "user@example.com", "USER@EXAMPLE.COM", "missing", "line2"})
}

const regexpTable = `/^Foo(.*)@(example)\.com$/	r1 $1 ${2} $(1) $$ end
/^bad/ dollar $ x
/^CaSe$/i	case-sensitive
if /^in/
/^inner(x)?$/	inner[$1]
endif
IF !/^z/
/^(a)$|^(b)$/	alt[$1][$2]
endif
/^multi/	line1
  line2
/^(a+)(a*)$/	longest[$1][$2]
/^(x|xy)(y?)z$/	submatch[$1][$2]
/^d/ d is $1x
/^(c)/ out of range $2
/^flag/o unknown flag
/^empty$/
/^dot.dot$/ dot-matches
/^(k)\/(l)$/ slash[$2$1]
if /^n/
!/@/	no-at
endif
/@(.*)\.org$/ domain=$1
`

var regexpKeys = []string{"FOOx@example.com", "foo@EXAMPLE.COM", "CaSe", "case", "nothing@here", "innerx",
	"inner", "b", "a", "aaa", "xyz", "multi@x", "q", "d@x", "c@x", "flag@x", "empty", "dot_dot", "k/l",
	"zz@x", "in@x", "user@Example.Org", "nobody", "bad"}

func TestDifferentialRegexp(t *testing.T) {
	p := writeTable(t, regexpTable+"/^mline$/m ml\n/^x y$/x ext-off\n/^p{2}$/ braces\n")
	m, err := OpenRegexp(p, WithWarn(quiet))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, m, "regexp:"+p, append(regexpKeys, "mline", "x y", "pp", "p{2}"))
}

func TestDifferentialPCRE(t *testing.T) {
	p := writeTable(t, regexpTable+`/^ (u+) \d # comment
  $/x ext[$1]
/^greedy(a+)/U ungreedy[$1]
/^SdOT.$/s dotall
/^ml$/m multiline
/^anch/A anchored
/\bword\b/ wordboundary
`)
	m, err := OpenPCRE(p, WithWarn(quiet))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, m, "pcre:"+p, append(regexpKeys, "uu1", "greedyaaa", "sdotx", "ml", "anchor",
		"a word here", "awordhere"))
}

func TestDifferentialCIDR(t *testing.T) {
	p := writeTable(t, `10.0.0.0/8	ten
10.1.0.0/16	tenone
192.168.1.1	exact
! 192.168.0.0/16	not192
2001:db8::/32	v6doc
[::1]/128	loop6
[2001:db8::1]	brack
if 172.16.0.0/12
172.16.5.0/24	inner
endif
IF !9.0.0.0/8
9.9.0.0/16 never
ENDIF
1.2.3.4/24	hostbits
1.2.3.0/33 badmask
foo bar
100.64.0.0/10
0.0.0.0/0 all	 v4
::/0 v6all
`)
	m, err := OpenCIDR(p, WithWarn(quiet))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, m, "cidr:"+p, []string{"10.1.2.3", "10.2.3.4", "192.168.1.1", "192.168.2.2", "8.8.8.8",
		"2001:db8::5", "::1", "2001:DB8::1", "172.16.5.9", "172.17.0.1", "[::1]", "2001:db8:0:0::1",
		"::ffff:10.1.1.1", "notanip", "010.1.1.1", "1.2.3.4", "9.9.1.1", "100.64.1.1", "fe80::1"})
}

func TestDifferentialInlineStatic(t *testing.T) {
	for _, spec := range []string{
		"{ K1=v1, { k2 = text with space }, k3=, Dup=1, dup=2 }",
		"{a=1 b=2,c=3}",
		"{{ Spaced=v  }, {Tab\t=\t x }}",
	} {
		m, err := OpenInline(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		compare(t, m, "inline:"+spec, []string{"k1", "K1", "k2", "k3", "dup", "a", "b", "c", "spaced", "tab", "nope"})
	}
	for _, spec := range []string{"foo", "{ text with  space }", "{x}"} {
		m, err := OpenStatic(spec)
		if err != nil {
			t.Fatal(err)
		}
		want := postmapQuery(t, "static:"+spec, []string{"any"})
		v, ok, _ := m.Lookup(context.Background(), "any")
		if !ok || v != want["any"] {
			t.Errorf("static:%s: ours %q, postmap %q", spec, v, want["any"])
		}
	}
}

func TestDifferentialUnix(t *testing.T) {
	for _, name := range []string{"passwd.byname", "group.byname"} {
		m, err := OpenUnixPasswd(name)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, m, "unix:"+name, []string{"root", "ROOT", "daemon", "mail", "nosuchuser-xyz"})
	}
}
