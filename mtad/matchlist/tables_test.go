package matchlist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/filemap"
)

func openTestTable(ctx context.Context, spec string) (mapdrivers.Map, error) {
	typ, name, _ := strings.Cut(spec, ":")
	switch typ {
	case "texthash":
		return filemap.OpenTexthash(name)
	case "regexp":
		return filemap.OpenRegexp(name)
	case "fail":
		return filemap.OpenFail(name)
	case "inline":
		return filemap.OpenInline(name)
	}
	return nil, fmt.Errorf("%s: unsupported", spec)
}

func TestDomainTables(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hosted := "texthash:" + write("hosted", "example.com x\n.parent.test x\nexcluded.example.com x\n")
	re := "regexp:" + write("re", "/^re[0-9]+\\.test$/ x\n")
	ctx := context.Background()
	cases := []struct {
		items []string
		sub   bool
		want  map[string]bool
	}{
		{[]string{hosted}, false, map[string]bool{
			"example.com": true, "EXAMPLE.com.": true, "a.example.com": false,
			"x.parent.test": true, "parent.test": false, "other.test": false,
		}},
		{[]string{hosted}, true, map[string]bool{"a.b.example.com": true, "x.parent.test": false}},
		{[]string{"!" + hosted, "example.com"}, false, map[string]bool{"example.com": false}},
		{[]string{re}, true, map[string]bool{"re42.test": true, "a.re42.test": false}},
		{[]string{"other.test", hosted}, false, map[string]bool{"other.test": true, "example.com": true}},
		// An inline table with spaces and commas inside its braces is one
		// item, as config.List hands it over.
		{[]string{"inline:{ { one.test = x }, two.test=x }"}, false, map[string]bool{"one.test": true, "two.test": true, "three.test": false}},
	}
	for _, c := range cases {
		d, err := ParseDomainsTables(ctx, c.items, c.sub, openTestTable)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range c.want {
			got, err := d.Match(ctx, name)
			if err != nil || got != want {
				t.Errorf("%v (sub=%v) Match(%q) = %v, %v; want %v", c.items, c.sub, name, got, err, want)
			}
		}
	}
	d, err := ParseDomainsTables(ctx, []string{"first.test", "fail:down", "last.test"}, false, openTestTable)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Match(ctx, "first.test"); !ok || err != nil {
		t.Errorf("an item before the failing table decides: %v %v", ok, err)
	}
	if ok, err := d.Match(ctx, "last.test"); ok || err == nil {
		t.Errorf("a failing table ends the scan with an error: %v %v", ok, err)
	}
	if _, err := ParseDomains([]string{hosted}, false); err == nil {
		t.Error("ParseDomains without an opener refuses tables")
	}
}
