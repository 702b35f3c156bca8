package filemap

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sqlmta/mapdrivers"
)

var ctx = context.Background()

func TestTexthashWarnings(t *testing.T) {
	p := writeTable(t, "a 1\nA 2\nnokey\n")
	var warns []string
	m, err := OpenTexthash(p, WithWarn(func(s string) { warns = append(warns, s) }))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := m.Lookup(ctx, "A"); !ok || v != "1" {
		t.Fatalf("first duplicate should win: %q %v", v, ok)
	}
	want := []string{
		p + `, line 2: duplicate entry: "a"`,
		p + ", line 3: expected format: key whitespace value -- ignoring this line",
	}
	if strings.Join(warns, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s", strings.Join(warns, "\n"))
	}
	if _, err := OpenTexthash(p + ".missing"); err == nil {
		t.Fatal("missing file opened")
	}
}

func TestParseMapFile(t *testing.T) {
	var keys []string
	err := ParseMapFile("x", strings.NewReader("K v\n\"Q K\" w\n"), false, func(k, v string, line int) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil || strings.Join(keys, "|") != "K|\"Q K\"" {
		t.Fatalf("%v %q", err, keys)
	}
}

func TestRegexpRE2Error(t *testing.T) {
	p := writeTable(t, "/ok/ 1\n/(a)\\1/ backref\n")
	_, err := OpenRegexp(p)
	if err == nil || !strings.Contains(err.Error(), p+", line 2:") {
		t.Fatalf("err %v", err)
	}
	p = writeTable(t, "/(?<=a)b/ lookbehind\n")
	if _, err := OpenPCRE(p); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err %v", err)
	}
}

func TestRegexpNesting(t *testing.T) {
	p := writeTable(t, "if /a/\nif /b/\n/c/ abc\nendif\n/d/ ad\nendif\n/./ any\n")
	m, err := OpenRegexp(p)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"abc": "abc", "acd": "ad", "bc": "any", "abd": "ad"} {
		if v, ok, _ := m.Lookup(ctx, key); !ok || v != want {
			t.Errorf("%s: %q %v, want %q", key, v, ok, want)
		}
	}
	if m.Props() != (mapdrivers.Props{Pattern: true}) {
		t.Fatal("props")
	}
}

func TestInlineErrors(t *testing.T) {
	for _, spec := range []string{"{}", "{a = 1}", "a=1", "{a=1", "{{ two words = x }}"} {
		if _, err := OpenInline(spec); err == nil {
			t.Errorf("%q: no error", spec)
		}
	}
}

func TestStaticFailUnix(t *testing.T) {
	if _, err := OpenStatic(""); err == nil {
		t.Fatal("empty static")
	}
	f, _ := OpenFail("x")
	if _, _, err := f.Lookup(ctx, "k"); !errors.Is(err, ErrFail) {
		t.Fatalf("fail: %v", err)
	}
	if _, err := OpenUnixPasswd("shadow.byname"); err == nil {
		t.Fatal("unknown unix table")
	}
	old := passwdFile
	passwdFile = writeTable(t, "alice:x:1000:1000:Alice A,,,:/home/alice:/bin/sh\n")
	defer func() { passwdFile = old }()
	u, _ := OpenUnixPasswd("passwd.byname")
	if v, ok, _ := u.Lookup(ctx, "Alice"); !ok || v != "alice:x:1000:1000:Alice A,,,:/home/alice:/bin/sh" {
		t.Fatalf("unix: %q %v", v, ok)
	}
	if _, ok, _ := u.Lookup(ctx, "alic"); ok {
		t.Fatal("prefix matched")
	}
}
