package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// mapEnv is a configuration directory whose database_url is url, and a directory for map files.
type mapEnv struct {
	t     *testing.T
	conf  string
	files string
}

func newMapEnv(t *testing.T, url string) *mapEnv {
	t.Helper()
	return &mapEnv{t: t, conf: confDir(t, "database_url = "+url+"\n"), files: t.TempDir()}
}

func (e *mapEnv) file(name, text string) string {
	e.t.Helper()
	p := filepath.Join(e.files, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// postmapIn runs mtactl as postmap.
func (e *mapEnv) postmap(in string, args ...string) (string, string, int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := postmapMain(append([]string{"-c", e.conf}, args...), strings.NewReader(in), &out, &errb)
	return out.String(), errb.String(), code
}

func dialects(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, testdb.SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, testdb.PostgresURL(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, testdb.MySQLURL(t)) })
}

const virtualMap = `# virtual alias map
alice@example.com     alice
Bob@Example.COM       bob,
    robert
"quoted key"          q
carol@example.com     carol
alice@example.com     duplicate
`

func TestMapCLI(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		e := newMapEnv(t, url)
		virtual := e.file("virtual", virtualMap)
		_, errs, code := mtactl(t, "-c", e.conf, "map", "import", virtual)
		if code != 0 {
			t.Fatalf("import: %d %s", code, errs)
		}
		if !strings.Contains(errs, virtual+", line 7: duplicate entry: \"alice@example.com\"") {
			t.Errorf("no duplicate warning naming file and line: %q", errs)
		}
		for _, tc := range []struct {
			args []string
			out  string
			code int
		}{
			{[]string{"query", "alice@example.com", virtual}, "alice\n", 0},
			{[]string{"query", "BOB@example.com", "hash:" + virtual}, "bob,    robert\n", 0},
			{[]string{"query", "-f", "BOB@example.com", virtual}, "", 1},
			{[]string{"query", `"quoted key"`, virtual}, "q\n", 0},
			{[]string{"query", "nobody@example.com", virtual}, "", 1},
		} {
			out, errs, code := mtactl(t, append([]string{"-c", e.conf, "map"}, tc.args...)...)
			if out != tc.out || code != tc.code {
				t.Errorf("map %q = %q, %d (%s); want %q, %d", tc.args, out, code, errs, tc.out, tc.code)
			}
		}
		out, _, code := mtactlIn(t, "carol@example.com\nnobody\nALICE@example.com\n", "-c", e.conf, "map", "query", "-", virtual)
		if code != 0 || out != "carol@example.com\tcarol\nALICE@example.com\talice\n" {
			t.Errorf("query - = %q, %d", out, code)
		}
		out, _, code = mtactl(t, "-c", e.conf, "map", "dump", virtual)
		want := "\"quoted key\"\tq\nalice@example.com\talice\nbob@example.com\tbob,    robert\ncarol@example.com\tcarol\n"
		if code != 0 || out != want {
			t.Errorf("dump = %q, %d; want %q", out, code, want)
		}
		if _, _, code := mtactl(t, "-c", e.conf, "map", "delete", "carol@example.com", virtual); code != 0 {
			t.Errorf("delete: %d", code)
		}
		if _, _, code := mtactl(t, "-c", e.conf, "map", "delete", "carol@example.com", virtual); code != 1 {
			t.Errorf("second delete: %d, want 1", code)
		}
		// Incremental: new keys added, existing ones kept with a warning, or replaced with -r.
		_, errs, code = mtactlIn(t, "dave@example.com dave\nalice@example.com other\n", "-c", e.conf, "map", "import", "-i", virtual)
		if code != 0 || !strings.Contains(errs, `duplicate entry: "alice@example.com"`) {
			t.Errorf("import -i: %d %q", code, errs)
		}
		_, _, code = mtactlIn(t, "alice@example.com other\n", "-c", e.conf, "map", "import", "-i", "-r", virtual)
		out, _, _ = e.postmap("alice@example.com\ndave@example.com\ncarol@example.com\n", "-q", "-", virtual)
		if code != 0 || out != "alice@example.com\tother\ndave@example.com\tdave\n" {
			t.Errorf("after -i: %q", out)
		}
		out, _, code = mtactl(t, "-c", e.conf, "map", "list")
		if code != 0 || !strings.HasPrefix(out, virtual+"\t") {
			t.Errorf("list = %q, %d", out, code)
		}

		// A bad line names file and line and changes nothing.
		bad := e.file("virtual", "new@example.com new\nthis-line-has-no-value\n")
		_, errs, code = mtactl(t, "-c", e.conf, "map", "import", bad)
		if code != 1 || !strings.Contains(errs, bad+", line 2: expected format: key whitespace value") {
			t.Errorf("bad import: %d %q", code, errs)
		}
		out, _, _ = e.postmap("", "-s", virtual)
		if !strings.Contains(out, "alice@example.com\tother\n") || strings.Contains(out, "new@example.com") {
			t.Errorf("after a failed import the table is %q", out)
		}

		// -r: the last duplicate wins; -w: the first, silently.
		dups := e.file("dups", "k 1\nk 2\n")
		if _, errs, code := e.postmap("", "-r", dups); code != 0 || errs != "" {
			t.Errorf("postmap -r: %d %q", code, errs)
		}
		if out, _, _ := e.postmap("", "-q", "k", dups); out != "2\n" {
			t.Errorf("-r kept %q", out)
		}
		if _, errs, code := e.postmap("", "-w", dups); code != 0 || errs != "" {
			t.Errorf("postmap -w: %d %q", code, errs)
		}
		if out, _, _ := e.postmap("", "-q", "k", dups); out != "1\n" {
			t.Errorf("-w kept %q", out)
		}

		// A table never imported is an error (exit 1 with a message), not "not found".
		_, errs, code = e.postmap("", "-q", "x", filepath.Join(e.files, "never"))
		if code != 1 || !strings.Contains(errs, "postmap: fatal:") {
			t.Errorf("query of a missing table: %d %q", code, errs)
		}
		// Other table types are queried as postmap -q does; they cannot be written.
		if _, errs, code := e.postmap("", "-q", "x", "regexp:/nonexistent/x"); code != 1 || !strings.Contains(errs, "postmap: fatal: open /nonexistent/x") {
			t.Errorf("query of a missing regexp file: %d %q", code, errs)
		}
		if _, errs, code := e.postmap("", "regexp:/etc/x"); code != 1 || !strings.Contains(errs, "unsupported map type") {
			t.Errorf("import into regexp: %d %q", code, errs)
		}
	})
}

func TestNewaliases(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		e := newMapEnv(t, url)
		aliases := e.file("aliases", "# aliases\nPostmaster: root\nroot: alice, \"|/usr/bin/cmd arg\",\n  /var/mail/archive\nlist: :include:/etc/list\n")
		if err := os.WriteFile(filepath.Join(e.conf, "main.cf"), []byte("database_url = "+url+"\nalias_database = hash:"+aliases+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errs, code := mtactl(t, "-c", e.conf, "aliases"); code != 0 {
			t.Fatalf("aliases: %d %s", code, errs)
		}
		out, _, _ := e.postmap("", "-s", aliases)
		want := "@\t@\nlist\t:include:/etc/list\npostmaster\troot\nroot\talice, \"|/usr/bin/cmd arg\", /var/mail/archive\n"
		if out != want {
			t.Errorf("aliases table = %q, want %q", out, want)
		}
	})
}

// TestPostmapDifferential builds the same file with Postfix's postmap (hash:, in a temp dir) and with
// ours, and compares `postmap -q -` answers for tricky keys.
func TestPostmapDifferential(t *testing.T) {
	real := peers.Require(t, "postmap")
	src := `# tricky input
plain@example.com          plain
MiXeD@Example.Com          mixed
"quoted key"               quoted
"quoted\"inner" x          qi
back\slash                 bs
key.with.trailing.space    value with   inner   spaces   
continued                  first
  second
	third
# comment between
  after-comment
pct%s                      100%
semi;colon                 a;b
été@example.com            utf8
ÉTÉ2@example.com           utf8-upper
empty-looking              ""
@example.com               catchall
dup                        first
dup                        second
`
	keys := []string{"plain@example.com", "PLAIN@EXAMPLE.COM", "mixed@example.com", "MiXeD@Example.Com",
		`"quoted key"`, "quoted key", `"quoted\"inner"`, `back\slash`, "key.with.trailing.space",
		"continued", "pct%s", "semi;colon", "été@example.com", "ÉTÉ@EXAMPLE.COM", "été2@example.com",
		"empty-looking", "@example.com", "dup", "nothing", "Dup"}
	dir := t.TempDir()
	file := filepath.Join(dir, "virtual")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Postfix's postmap wants a config directory with a main.cf; point it at an empty one.
	pfconf := t.TempDir()
	if err := os.WriteFile(filepath.Join(pfconf, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runReal := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(real, append([]string{"-c", pfconf}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("postmap: %v", err)
		}
		return out.String(), code
	}
	for _, fold := range []bool{true, false} {
		t.Run(fmt.Sprintf("fold=%v", fold), func(t *testing.T) {
			var flags []string
			if !fold {
				flags = []string{"-f"}
			}
			if out, code := runReal("", append(flags, "hash:"+file)...); code != 0 {
				t.Fatalf("real postmap: %d %s", code, out)
			}
			e := newMapEnv(t, testdb.SQLiteURL(t))
			if _, errs, code := e.postmap("", append(flags, "hash:"+file)...); code != 0 {
				t.Fatalf("our postmap: %d %s", code, errs)
			}
			in := strings.Join(keys, "\n") + "\n"
			want, wantCode := runReal(in, append(flags, "-q", "-", "hash:"+file)...)
			got, _, gotCode := e.postmap(in, append(flags, "-q", "-", "hash:"+file)...)
			if got != want || gotCode != wantCode {
				t.Errorf("postmap -q - differs:\nours   %d %q\npostfix %d %q", gotCode, got, wantCode, want)
			}
			for _, k := range keys {
				want, wantCode := runReal("", append(flags, "-q", k, "hash:"+file)...)
				got, _, gotCode := e.postmap("", append(flags, "-q", k, "hash:"+file)...)
				if got != want || gotCode != wantCode {
					t.Errorf("postmap -q %q: ours %d %q, postfix %d %q", k, gotCode, got, wantCode, want)
				}
			}
		})
	}
}

// TestImportAtomicCLI re-imports a table through the CLI while a reader looks up a key in a loop: it sees
// the old value or the new one, never a missing key.
func TestImportAtomicCLI(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		e := newMapEnv(t, url)
		var b strings.Builder
		for i := range 20000 {
			fmt.Fprintf(&b, "k%d old\n", i)
		}
		file := e.file("big", b.String())
		if _, errs, code := e.postmap("", file); code != 0 {
			t.Fatalf("import: %s", errs)
		}
		file = e.file("big", strings.ReplaceAll(b.String(), " old\n", " new\n"))
		var stop atomic.Bool
		var wg sync.WaitGroup
		var bad atomic.Value
		var lookups atomic.Int64
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				out, errs, code := e.postmap("", "-q", "k19999", file)
				if code != 0 || (out != "old\n" && out != "new\n") {
					bad.Store(fmt.Sprintf("mid-import lookup: %d %q %q", code, out, errs))
					return
				}
				lookups.Add(1)
			}
		}()
		_, errs, code := e.postmap("", file)
		// A few lookups overlap or follow the import.
		peers.WaitFor(t, 30*time.Second, func() bool { return lookups.Load() >= 3 || bad.Load() != nil }, "lookups")
		stop.Store(true)
		wg.Wait()
		if code != 0 {
			t.Fatalf("re-import: %s", errs)
		}
		if v := bad.Load(); v != nil {
			t.Fatal(v)
		}
		if out, _, _ := e.postmap("", "-q", "k0", file); out != "new\n" {
			t.Errorf("after re-import k0 = %q", out)
		}
	})
}
