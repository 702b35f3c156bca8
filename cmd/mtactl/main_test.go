package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mtactl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return mtactlIn(t, "", args...)
}

// mtactlIn runs mtactl with in as its standard input.
func mtactlIn(t *testing.T, in string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(in), &out, &errb)
	return out.String(), errb.String(), code
}

func confDir(t *testing.T, mainCf string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConf(t *testing.T) {
	dir := confDir(t, "myhostname = mx.example.com\nmydestination = $myhostname, other.example\n# comment\nrelayhost = [10.0.0.1]:587\n")
	out, _, code := mtactl(t, "-c", dir, "conf", "-n")
	// postconf -c DIR -n also prints config_directory when DIR is not the default.
	want := "config_directory = " + dir + "\nmydestination = $myhostname, other.example\nmyhostname = mx.example.com\nrelayhost = [10.0.0.1]:587\n"
	if code != 0 || out != want {
		t.Errorf("conf -n = %d %q, want %q", code, out, want)
	}
	out, _, _ = mtactl(t, "-c", dir, "conf", "-x", "mydestination")
	if out != "mydestination = mx.example.com, other.example\n" {
		t.Errorf("conf -x = %q", out)
	}
	out, _, _ = mtactl(t, "-c", dir, "conf", "-h", "relayhost", "mail_name")
	if out != "[10.0.0.1]:587\nPostfix\n" {
		t.Errorf("conf -h = %q", out)
	}
	out, _, _ = mtactl(t, "-c", dir, "conf", "-d", "mydestination", "relay_domains", "minimal_backoff_time")
	if out != "mydestination = $myhostname, localhost.$mydomain, localhost\n"+
		"relay_domains = ${{$compatibility_level} <level {2} ? {$mydestination} : {}}\nminimal_backoff_time = 300s\n" {
		t.Errorf("conf -d = %q", out)
	}
	out, _, _ = mtactl(t, "-c", dir, "conf", "-x", "relay_domains")
	if out != "relay_domains =\n" {
		t.Errorf("conf -x relay_domains = %q (compatibility_level 3.6 default)", out)
	}
	out, errs, _ := mtactl(t, "-c", dir, "conf", "no_such_thing")
	if out != "" || !strings.Contains(errs, "postconf: warning: no_such_thing: unknown parameter") {
		t.Errorf("unknown parameter: out %q err %q", out, errs)
	}
	out, _, _ = mtactl(t, "-c", dir, "conf")
	if !strings.Contains(out, "\nmyhostname = mx.example.com\n") || !strings.Contains(out, "\nmessage_size_limit = 10240000\n") {
		t.Errorf("conf without flags lacks main.cf values or defaults")
	}
}

func TestConfBadMainCf(t *testing.T) {
	dir := confDir(t, "myhostname = a\nthis line is wrong\n")
	_, errs, code := mtactl(t, "-c", dir, "conf", "-n")
	if code != 1 || !strings.Contains(errs, "main.cf, line 2:") {
		t.Errorf("bad main.cf: code %d, stderr %q", code, errs)
	}
}

func TestMigrateSQLite(t *testing.T) {
	data := t.TempDir()
	dir := confDir(t, "data_directory = "+data+"\n")
	out, errs, code := mtactl(t, "-c", dir, "migrate", "up")
	if code != 0 {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(data, "sqlmta.db")); err != nil {
		t.Fatalf("default database not created: %v", err)
	}
	out, errs, code = mtactl(t, "-c", dir, "migrate", "status")
	if code != 0 || !strings.Contains(out, "00001_queue.sql") || !strings.Contains(strings.ToLower(out), "applied") {
		t.Errorf("migrate status: %d %q %q", code, out, errs)
	}
	if _, _, code := mtactl(t, "-c", dir, "migrate", "sideways"); code != 2 {
		t.Errorf("bad migrate argument: exit %d, want 2", code)
	}
}
