package mapfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"sqlmta/internal/peers"
)

func collect(t *testing.T, in string, opts Options) ([]Entry, error) {
	t.Helper()
	var got []Entry
	err := Parse("f", strings.NewReader(in), opts, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	return got, err
}

func TestParse(t *testing.T) {
	in := "Foo bar\n" +
		"# comment\n" +
		"\n" +
		"cont line1\n" +
		"  line2\n" +
		"# inside\n" +
		"\tline3\n" +
		"\"a B\"   quoted value  \n" +
		"x\\ y v\n" +
		"last no-newline"
	got, err := collect(t, in, Options{FoldCase: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"foo", "bar", 1},
		{"cont", "line1  line2\tline3", 4},
		{"\"a b\"", "quoted value", 8},
		{"x\\ y", "v", 9},
		{"last", "no-newline", 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	got, _ = collect(t, "Foo Bar\n", Options{})
	if got[0].Key != "Foo" || got[0].Value != "Bar" {
		t.Fatalf("no fold: %+v", got)
	}
}

func TestParseFoldUnicode(t *testing.T) {
	got, _ := collect(t, "STRAẞE a\nÄBC b\n", Options{FoldCase: true})
	if got[0].Key != "strasse" || got[1].Key != "äbc" {
		t.Fatalf("fold: %+v", got)
	}
}

func TestParseStrictErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"a b\nnokey\n", "f, line 2: expected format: key whitespace value"},
		{"a b\n\"unbal v\n", "f, line 2: unbalanced '\"' in '\"unbal v'"},
		{"a b\nk\\\n", "f, line 2: expected format: key whitespace value"},
		{"  orphan x\na b\n", "f, line 1: logical line must not start with whitespace: \"  orphan x\""},
		{"a b\n\xff\xfe x\n", "f, line 2: non-UTF-8 input \"\\xff\\xfe x\""},
	} {
		_, err := collect(t, tc.in, Options{})
		var le *LineError
		if !errors.As(err, &le) || err.Error() != tc.msg {
			t.Errorf("%q: err %v, want %s", tc.in, err, tc.msg)
		}
	}
}

func TestParseLenient(t *testing.T) {
	var warns []string
	got, err := collect(t, "  orphan\nnokey\na: b\nc d\n", Options{Lenient: true, Warn: func(m string) { warns = append(warns, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "a:" || got[1].Key != "c" {
		t.Fatalf("got %+v", got)
	}
	want := []string{
		"f, line 1: logical line must not start with whitespace: \"  orphan\"",
		"f, line 2: expected format: key whitespace value -- ignoring this line",
		"f, line 3: record is in \"key: value\" format; is this an alias file?",
	}
	if !reflect.DeepEqual(warns, want) {
		t.Fatalf("warnings %q", warns)
	}
}

func TestParseCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Parse("f", strings.NewReader("a 1\nb 2\nc 3\n"), Options{}, func(Entry) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("err %v n %d", err, n)
	}
}

func TestParseLongLine(t *testing.T) {
	long := strings.Repeat("x", 200000)
	got, err := collect(t, "k "+long+"\n  "+long+"\n", Options{})
	if err != nil || len(got) != 1 || len(got[0].Value) != 400002 {
		t.Fatalf("long line: %v %d", err, len(got))
	}
}

func TestParseAliases(t *testing.T) {
	in := "Root: a,b\n" +
		"\"x y\":  c ,  d\n" +
		"cmd: \"|/bin/foo bar\", /var/f\n" +
		"inc: :include:/etc/x\n" +
		"multi: a,\n  b,\n# c\n  c\n" +
		"Sp : x@Y.com (Comment)  <b@c>\n" +
		"bs: a\\,b\n" +
		"p: a % b ! c | d / e\n"
	var got []Entry
	if err := ParseAliases("al", strings.NewReader(in), func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"root", "a, b", 1},
		{"x y", "c, d", 2},
		{"cmd", "\"|/bin/foo bar\", /var/f", 3},
		{"inc", ":include:/etc/x", 4},
		{"multi", "a, b, c", 5},
		{"sp", "x@Y.com (Comment) <b@c>", 9},
		{"bs", "\"a,b\"", 10},
		{"p", "a%b!c|d / e", 11},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct{ in, msg string }{
		{"a: b\nnocolon x\n", "al, line 2: need name:value pair"},
		{"a, b: c\n", "al, line 1: need name:value pair"},
		{"e:\n", "al, line 1: need name:value pair"},
		{"u@d: x\n", "al, line 1: name must be local"},
	} {
		err := ParseAliases("al", strings.NewReader(tc.in), func(Entry) error { return nil })
		if err == nil || err.Error() != tc.msg {
			t.Errorf("%q: err %v, want %s", tc.in, err, tc.msg)
		}
	}
}

// Tricky input shared by the differential tests.
const trickyMap = `Foo bar
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
k\
  orphan
UPPER   MiXeD Value  
ÄÖÜ umlaut
STRAẞE gross
e1 ""
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "map")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// postmapDump runs a Postfix dump tool (-s) and returns its sorted lines.
func postmapDump(t *testing.T, tool string, args ...string) []string {
	t.Helper()
	bin := peers.Require(t, tool)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

// firstWins applies postmap's duplicate rule and renders sorted dump lines.
func firstWins(entries []Entry, sep string) []string {
	seen := map[string]bool{}
	var lines []string
	for _, e := range entries {
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		lines = append(lines, e.Key+sep+e.Value)
	}
	sort.Strings(lines)
	return lines
}

func TestDifferentialPostmap(t *testing.T) {
	p := writeFile(t, trickyMap)
	want := postmapDump(t, "postmap", "-s", "texthash:"+p)
	f, _ := os.Open(p)
	defer f.Close()
	var got []Entry
	if err := Parse(p, f, Options{FoldCase: true, Lenient: true}, func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if g := firstWins(got, "\t"); !reflect.DeepEqual(g, want) {
		t.Fatalf("ours:\n%s\npostmap:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	// The same file built into a hash: database.
	want = nil
	bin := peers.Require(t, "postmap")
	if out, err := exec.Command(bin, "hash:"+p).CombinedOutput(); err != nil {
		t.Fatalf("postmap hash: %v %s", err, out)
	}
	want = postmapDump(t, "postmap", "-s", "hash:"+p)
	if g := firstWins(got, "\t"); !reflect.DeepEqual(g, want) {
		t.Fatalf("hash: ours:\n%s\npostmap:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestDifferentialPostalias(t *testing.T) {
	in := "Root: a,b\n" +
		"\"x y\":  c ,  d\n" +
		"cmd: \"|/bin/foo bar\", /var/f\n" +
		"cmd2: |/bin/foo\n" +
		"inc: :include:/etc/x\n" +
		"multi: a,\n  b,\n# c\n  c\n" +
		"nocolon x\n" +
		"at@dom: x\n" +
		"e1:\n" +
		"e2: \"\"\n" +
		"Sp : x@Y.com (Comment)  <b@c>\n" +
		"bs: a\\,b\n" +
		"q2: \"a\\\"b\"\n" +
		"p1: a |b\n" +
		"p2: a % b ! c\n" +
		"p4: a / b = c\n" +
		"p7: [1.2.3.4] x\n" +
		"p8: (a(b)c) x\n" +
		"p9: \"a\\\\b\" y\n" +
		"p10: a  . b\n" +
		"p11: a\tb\n" +
		"p12: x \"unterminated\n" +
		"p13: ä ö\n" +
		"a b c: x\n" +
		"root: dup\n" +
		"trail: a,\n"
	p := writeFile(t, in)
	bin := peers.Require(t, "postalias")
	if out, err := exec.Command(bin, "hash:"+p).CombinedOutput(); err != nil {
		t.Fatalf("postalias: %v %s", err, out)
	}
	var want []string
	for _, l := range postmapDump(t, "postalias", "-s", "hash:"+p) {
		if l == "@:\t@" || strings.HasPrefix(l, "YP_") {
			continue // postalias's own signature records
		}
		want = append(want, l)
	}
	var got []Entry
	err := ParseAliasesOptions(p, strings.NewReader(in), Options{FoldCase: true, Lenient: true}, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := firstWins(got, ":\t"); !reflect.DeepEqual(g, want) {
		t.Fatalf("ours:\n%s\npostalias:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}
