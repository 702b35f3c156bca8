package sqlmap

import (
	"reflect"
	"testing"
)

func TestCompileQueryBindsLiterals(t *testing.T) {
	key, _ := splitAddr("o'brien@mail.example.com", true, true, 2)
	cases := []struct {
		d     dialect
		query string
		sql   string
		args  []any
	}{
		{pgDialect, "SELECT v FROM t WHERE k='%s'", "SELECT v FROM t WHERE k=$1", []any{"o'brien@mail.example.com"}},
		{pgDialect, "SELECT v FROM t WHERE k='%u@%d' AND x='it''s'", "SELECT v FROM t WHERE k=$1 AND x='it''s'", []any{"o'brien@mail.example.com"}},
		{pgDialect, "SELECT v FROM t WHERE k LIKE '%%%s' AND d='%2.%1'", "SELECT v FROM t WHERE k LIKE $1 AND d=$2", []any{"%o'brien@mail.example.com", "example.com"}},
		{pgDialect, "SELECT v FROM t WHERE k=E'\\t%s' AND p LIKE '100%%'", "SELECT v FROM t WHERE k=$1 AND p LIKE '100%'", []any{"\to'brien@mail.example.com"}},
		{myDialect, `SELECT v FROM t WHERE k="%s" AND x='a\'b%u'`, "SELECT v FROM t WHERE k=? AND x=?", []any{"o'brien@mail.example.com", "a'bo'brien"}},
		{liteDialect, `SELECT v FROM t WHERE k='a\%s' -- it's '%s'`, "SELECT v FROM t WHERE k=? -- it's ''", []any{`a\o'brien@mail.example.com`}},
	}
	for _, c := range cases {
		var n needs
		if err := n.scanCodes(c.query, true); err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		q, err := compileQuery(c.query, c.d)
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		sql, args, ok := q.bind(key, c.d)
		if !ok || sql != c.sql || !reflect.DeepEqual(args, c.args) {
			t.Errorf("%s %q:\n got %q %q %v\nwant %q %q", c.d.name, c.query, sql, args, ok, c.sql, c.args)
		}
	}
}

func TestInlineCodesOnlyPasteSafeTokens(t *testing.T) {
	q, err := compileQuery("SELECT v FROM t WHERE id = %u AND d = '%d'", pgDialect)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"42@example.com":          "SELECT v FROM t WHERE id = 42 AND d = $1",
		"1 OR 1=1@example.com":    "",
		"1;DROP TABLE t@x.com":    "",
		"1--@example.com":         "",
		"1'@example.com":          "",
		"a-b.c+d_e@example.com":   "SELECT v FROM t WHERE id = a-b.c+d_e AND d = $1",
		"1/**/OR/**/1@example.co": "",
	} {
		a, _ := splitAddr(key, true, true, 0)
		sql, _, ok := q.bind(a, pgDialect)
		if (want == "") == ok || sql != want {
			t.Errorf("%q: got %q ok=%v, want %q", key, sql, ok, want)
		}
	}
}

func TestScanCodesRejectsBadTemplates(t *testing.T) {
	for _, f := range []string{"SELECT '%x'", "SELECT 1 %", "SELECT '%'"} {
		var n needs
		if err := n.scanCodes(f, true); err == nil {
			t.Errorf("%q: no error", f)
		}
	}
	var n needs
	if err := n.scanCodes("SELECT '%3' || '%U'", true); err != nil || n.nparts != 3 || !n.keyDomain || !n.keyUser {
		t.Errorf("got %+v %v", n, err)
	}
}

func TestSplitAddrSkips(t *testing.T) {
	cases := []struct {
		s              string
		user, domain   bool
		nparts         int
		ok             bool
		wantUser, wDom string
	}{
		{"user@example.com", true, true, 0, true, "user", "example.com"},
		{"@example.com", true, false, 0, false, "", ""},
		{"@example.com", false, true, 0, true, "", "example.com"},
		{"user@", false, true, 0, false, "", ""},
		{"user", true, false, 0, true, "user", ""},
		{"user", false, true, 0, false, "", ""},
		{"u@a..b", false, true, 2, true, "u", "a..b"},
		{"u@com", false, true, 2, false, "", ""},
	}
	for _, c := range cases {
		a, ok := splitAddr(c.s, c.user, c.domain, c.nparts)
		if ok != c.ok {
			t.Errorf("%q: ok=%v", c.s, ok)
			continue
		}
		if ok && (a.user() != c.wantUser || (c.domain && a.domain() != c.wDom)) {
			t.Errorf("%q: user %q domain %q", c.s, a.user(), a.domain())
		}
	}
}
