package sqlmap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sqlmta/mapdrivers"
)

// TestRequireResultSet: a CALL of a procedure that SELECTs nothing is an
// error by default and "not found" with require_result_set = no; rows of a
// procedure's SELECT are results. Compared with real postmap.
func TestRequireResultSet(t *testing.T) {
	b := newBackend(t, "mysql")
	b.fill(t)
	b.exec(t, `CREATE PROCEDURE getdest(IN k VARCHAR(200))
BEGIN
  IF k <> 'nobody@example.com' THEN
    SELECT dest FROM virt WHERE addr = k AND active = 1 ORDER BY id;
  END IF;
END`)
	keys := []string{"alice@example.com", "dave@example.com", "nobody@example.com", "o'brien@example.com", "zz@example.com"}
	cfNo := writeCF(t, "no.cf", b.cfHead+"require_result_set = no\nquery = CALL getdest('%s')\n")
	want := postmapQuery(t, "mysql", cfNo, keys)
	m, err := Open(context.Background(), "mysql", cfNo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, k := range keys {
		v, found, err := m.Lookup(context.Background(), k)
		pv, pfound := want[k]
		if err != nil || found != pfound || v != pv {
			t.Errorf("%q: sqlmta %q %v %v; postmap %q %v", k, v, found, err, pv, pfound)
		}
	}
	if _, ok := want["alice@example.com"]; !ok {
		t.Error("postmap found nothing for alice: the fixture is wrong")
	}

	cfYes := writeCF(t, "yes.cf", b.cfHead+"query = CALL getdest('%s')\n")
	m2, err := Open(context.Background(), "mysql", cfYes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if v, found, err := m2.Lookup(context.Background(), "nobody@example.com"); err == nil {
		t.Errorf("no result set with require_result_set = yes: %q %v, no error", v, found)
	}
	// The host was not marked dead: the next lookup still works.
	if v, found, err := m2.Lookup(context.Background(), "dave@example.com"); err != nil || !found || v != "dave" {
		t.Errorf("after the error: %q %v %v", v, found, err)
	}
	if err := os.WriteFile(cfYes, []byte(b.cfHead+"require_result_set = maybe\nquery = SELECT 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m3, err := Open(context.Background(), "mysql", cfYes, Options{}); err == nil {
		m3.Close()
		t.Error("require_result_set = maybe accepted")
	}
}

// TestOptionFile: user, port and password come from the option file's
// groups ([client] always, option_group too) when the .cf lacks them.
// Real Postfix 3.7 (Connector/C) takes the user and port but never the
// password (it passes "" rather than NULL) and requires dbname in the .cf:
// we do take the password, the point of an option file; that case is not
// compared with postmap.
func TestOptionFile(t *testing.T) {
	b := newBackend(t, "mysql")
	b.fill(t)
	var user, pass, db string
	for _, l := range strings.Split(b.conn, "\n") {
		k, v, _ := strings.Cut(l, " = ")
		switch k {
		case "user":
			user = v
		case "password":
			pass = v
		case "dbname":
			db = v
		}
	}
	host, port, _ := strings.Cut(b.host, ":")
	dir := t.TempDir()
	opt := filepath.Join(dir, "my.cnf")
	text := fmt.Sprintf(`# test option file
[client]
password = "%s"  # quoted
port = %s
[mysqld]
user = wrong
[sqlmta]
user=%s
password = wrong-password
`, pass, port, user)
	if err := os.WriteFile(opt, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, body string
		ok, diff   bool
	}{
		// user and dbname in the .cf, password and port from [client].
		{"client", fmt.Sprintf("hosts = %s\nuser = %s\ndbname = %s\noption_file = %s\n", host, user, db, opt), true, false},
		// user from [sqlmta], port from [client]; the .cf password wins.
		{"group", fmt.Sprintf("hosts = %s\npassword = %s\ndbname = %s\noption_file = %s\noption_group = sqlmta\n", host, pass, db, opt), true, true},
		// password from [sqlmta], read after [client]: wrong.
		{"group-wrong", fmt.Sprintf("hosts = %s\ndbname = %s\noption_file = %s\noption_group = sqlmta\n", host, db, opt), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cf := writeCF(t, c.name+".cf", c.body+"query = SELECT dest FROM virt WHERE addr='%s'\n")
			m, err := Open(context.Background(), "mysql", cf, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			v, found, err := m.Lookup(context.Background(), "dave@example.com")
			if !c.ok {
				if err == nil {
					t.Errorf("wrong password from [sqlmta]: %q %v, no error", v, found)
				}
				return
			}
			if err != nil || !found || v != "dave" {
				t.Fatalf("%q %v %v", v, found, err)
			}
			if c.diff {
				want := postmapQuery(t, "mysql", cf, []string{"dave@example.com", "nobody@example.com"})
				if want["dave@example.com"] != "dave" || len(want) != 1 {
					t.Errorf("postmap: %q", want)
				}
			}
		})
	}
	cf := writeCF(t, "missing.cf", fmt.Sprintf("hosts = %s\noption_file = %s\nquery = SELECT 1\n", b.host, filepath.Join(dir, "nonexistent.cnf")))
	if m, err := Open(context.Background(), "mysql", cf, Options{}); err == nil {
		m.Close()
		t.Error("missing option_file: no error")
	}
}

func TestMyValue(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                    "plain",
		`"quoted # not a comment"`: "quoted # not a comment",
		`'single'`:                 "single",
		`value # comment`:          "value",
		`a\sb\\c`:                  `a b\c`,
		`"tab\there"`:              "tab\there",
		``:                         "",
	} {
		if got := myValue(in); got != want {
			t.Errorf("myValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTLSWithoutServerSupport: the test server has no TLS, so a .cf that
// asks for TLS fails its lookups with an error (never "not found"); bad
// tls_* files fail at Open.
func TestTLSWithoutServerSupport(t *testing.T) {
	b := newBackend(t, "mysql")
	b.fill(t)
	cf := writeCF(t, "tls.cf", b.cfHead+"tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-CIPHER\ntls_verify_cert = no\nquery = SELECT dest FROM virt WHERE addr='%s'\n")
	var warnings []string
	m, err := Open(context.Background(), "mysql", cf, Options{Warnf: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "NO-SUCH-CIPHER") {
		t.Errorf("warnings: %q", warnings)
	}
	if v, found, err := m.Lookup(context.Background(), "dave@example.com"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "tls") {
		t.Errorf("TLS to a server without TLS: %q %v %v", v, found, err)
	}
	// tls_verify_cert alone does not turn TLS on (Postfix calls
	// mysql_ssl_set only for the files and ciphers).
	cf2 := writeCF(t, "verify.cf", b.cfHead+"tls_verify_cert = yes\nquery = SELECT dest FROM virt WHERE addr='%s'\n")
	m2, err := Open(context.Background(), "mysql", cf2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if v, found, err := m2.Lookup(context.Background(), "dave@example.com"); err != nil || !found || v != "dave" {
		t.Errorf("tls_verify_cert only: %q %v %v", v, found, err)
	}
	bad := writeCF(t, "bad.cf", b.cfHead+"tls_CAfile = /nonexistent/ca.pem\nquery = SELECT 1\n")
	if m3, err := Open(context.Background(), "mysql", bad, Options{}); err == nil {
		m3.Close()
		t.Error("missing tls_CAfile: no error at Open")
	}
}

// TestDomainTable: a "domain" list with a type:table item (here another
// mysql: table, opened through Options.OpenMap) admits keys whose domain
// is a key of that table; the first matching item decides. Compared with
// postmap; a failing domain table is a lookup error.
func TestDomainTable(t *testing.T) {
	b := newBackend(t, "mysql")
	b.fill(t)
	doms := writeCF(t, "doms.cf", b.cfHead+"query = SELECT label FROM doms WHERE name='%s'\n")
	openMap := func(ctx context.Context, spec string) (mapdrivers.Map, error) {
		typ, path, _ := strings.Cut(spec, ":")
		return Open(ctx, typ, path, Options{})
	}
	cf := writeCF(t, "virt.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s' ORDER BY id\ndomain = !example.org, mysql:"+doms+"\n")
	keys := []string{"alice@example.com", "dave@example.com", "who@example.org", "someone@sub.example",
		"user@mail.sub.example.com", "example.com", "@example.com", "x", "nobody@nowhere.test"}
	want := postmapQuery(t, "mysql", cf, keys)
	if _, err := Open(context.Background(), "mysql", cf, Options{}); err == nil {
		t.Error("type:table domain item without OpenMap: no error")
	}
	m, err := Open(context.Background(), "mysql", cf, Options{OpenMap: openMap})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, k := range keys {
		v, found, err := m.Lookup(context.Background(), k)
		pv, pfound := want[k]
		if err != nil || found != pfound || v != pv {
			t.Errorf("%q: sqlmta %q %v %v; postmap %q %v", k, v, found, err, pv, pfound)
		}
	}
	if want["dave@example.com"] != "dave" {
		t.Errorf("postmap did not find dave: %q", want)
	}

	dead := writeCF(t, "dead.cf", "hosts = "+closedPort(t)+"\n"+b.conn+"query = SELECT label FROM doms WHERE name='%s'\n")
	cf2 := writeCF(t, "virt2.cf", b.cfHead+"query = SELECT dest FROM virt WHERE addr='%s'\ndomain = mysql:"+dead+"\n")
	m2, err := Open(context.Background(), "mysql", cf2, Options{OpenMap: openMap})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if v, found, err := m2.Lookup(context.Background(), "dave@example.com"); err == nil {
		t.Errorf("domain table down: %q %v, no error", v, found)
	}
	if _, found, err := m2.Lookup(context.Background(), "example.com"); err != nil || found {
		t.Errorf("bare domain must not reach the domain table: %v %v", found, err)
	}
}

func TestReadMyOptionsIncludes(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"main.cnf":     "[client]\nuser = a\n!include " + filepath.Join(dir, "other.cnf") + "\n!includedir " + inc + "\n[mysqld]\nport = 9\n",
		"other.cnf":    "[client-server]\nsocket = /run/x.sock\n[mine]\npassword = b\n",
		"inc/x.cnf":    "[client]\nport=1234\n",
		"inc/skip.txt": "[client]\nport=1\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o, err := readMyOptions(filepath.Join(dir, "main.cnf"), "mine")
	if err != nil {
		t.Fatal(err)
	}
	if got := (myOptions{user: "a", password: "b", port: "1234", socket: "/run/x.sock"}); *o != got {
		t.Errorf("got %+v, want %+v", *o, got)
	}
	o, err = readMyOptions(filepath.Join(dir, "main.cnf"), "client")
	if err != nil || o.password != "" {
		t.Errorf("group client read [mine]: %+v %v", o, err)
	}
}
