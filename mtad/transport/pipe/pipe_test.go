package pipe

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/transport"
)

// TestMasterCfServiceRunsScript parses a master.cf pipe entry and runs a
// real script through it: argv expansion (one argument per recipient),
// flags, the recipient limit and the exit status.
func TestMasterCfServiceRunsScript(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "sqlmta-pipe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777) // the script runs as nobody
	script := filepath.Join(dir, "deliver.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nout="+dir+"/run.$$\n"+
		"{ id -un; printf '%s|' \"$@\"; echo; cat; } > $out\n"+
		"case \"$*\" in *fail@*) echo \"4.2.2 over quota\"; exit 1;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	master := "smtp inet n - n - - smtpd\n" +
		"myfilter unix - n n - - pipe\n" +
		"  flags=FRDOhu. user=nobody argv=" + script + " -f ${sender} -n ${nexthop} ${recipient} ${user}+${extension}\n"
	svcs, err := config.ParsePipeServices("master.cf", strings.NewReader(master))
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Name != "myfilter" || svcs[0].Flags != "FRDOhu." || svcs[0].User != "nobody" {
		t.Fatalf("parsed %+v", svcs)
	}
	s := svcs[0]
	tr := New(Config{Name: s.Name, Argv: s.Argv, Flags: s.Flags, User: s.User, NullSender: s.NullSender,
		RecipientLimit: 1, TimeLimit: time.Minute})
	content := "Subject: p\r\n\r\n.dot line\r\nFrom x\r\n"
	d := &transport.Delivery{QueueID: "4P", Sender: "", Nexthop: "Filter.Example", Size: int64(len(content)),
		Recipients: []transport.Recipient{{ID: 1, Address: "Ann+Box@Example.test"}, {ID: 2, Address: "fail@example.test"}},
		Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(content)), nil
		}}
	res := tr.Deliver(context.Background(), d)
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivered via myfilter service" || r.Relay != "myfilter" {
		t.Errorf("ann: %+v", r)
	}
	if r := res[1]; r.Status != transport.Deferred || r.DSN != "4.2.2" || r.Text != "over quota" {
		t.Errorf("fail: %+v", r)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "run.*"))
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2 (recipient limit 1)", len(runs))
	}
	var ann string
	for _, p := range runs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "ann+box@") {
			ann = string(b)
		}
	}
	who := "nobody"
	if os.Geteuid() != 0 {
		who = `\w+`
	}
	want := `^` + who + `\n-f\|MAILER-DAEMON\|-n\|filter\.example\|ann\+box@example\.test\|ann\+box\|\n` +
		`From MAILER-DAEMON  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\nReturn-Path: <>\n` +
		`X-Original-To: Ann\+Box@Example\.test\nDelivered-To: ann\+box@example\.test\n` +
		`Subject: p\n\n\.\.dot line\nFrom x\n$`
	if !regexp.MustCompile(want).MatchString(ann) {
		t.Errorf("script saw\n%q\nwant %s", ann, want)
	}
}

func TestRootUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("user= is only used when running as root")
	}
	tr := New(Config{Name: "p", Argv: []string{"/bin/true"}, User: "root"})
	d := &transport.Delivery{Recipients: []transport.Recipient{{ID: 1, Address: "a@b"}},
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }}
	if r := tr.Deliver(context.Background(), d)[0]; r.Status != transport.Deferred || r.DSN != "4.3.5" {
		t.Errorf("got %+v", r)
	}
}
