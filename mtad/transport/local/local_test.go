package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

const msg = "From: alice@remote.test\r\nSubject: hi\r\n\r\nFrom here\r\nbody\r\n"

type fixture struct {
	dir       string
	cfg       Config
	submitted []*envelope.Envelope
	contents  []string
	log       bytes.Buffer
}

// newFixture has users bob and carol (homes in a temp dir, this process's
// uid), aliases from a texthash file, and a Submit that records.
func newFixture(t *testing.T, aliases string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	users := map[string]*User{}
	for _, n := range []string{"bob", "carol"} {
		home := filepath.Join(f.dir, "home", n)
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatal(err)
		}
		users[n] = &User{Name: n, Home: home, Shell: "/bin/sh", UID: os.Getuid(), GID: os.Getgid()}
	}
	users["nobody"] = &User{Name: "nobody", Home: "/", UID: os.Getuid(), GID: os.Getgid()}
	os.MkdirAll(filepath.Join(f.dir, "spool"), 0o755)
	aliasFile := filepath.Join(f.dir, "aliases")
	// texthash has "key value" lines, not aliases(5)'s "key: value".
	write(t, aliasFile, regexp.MustCompile(`(?m)^([^:\s]+):`).ReplaceAllString(aliases, "$1"))
	maps := &mapopen.Opener{}
	t.Cleanup(func() { maps.Close() })
	f.cfg = Config{
		Hostname:             "mx.test",
		AliasMaps:            []string{"texthash:" + aliasFile},
		OpenMap:              maps.Open,
		ForwardPath:          []string{"$home/.forward"},
		Expand:               func(s string, v map[string]string) (string, error) { return expandVars(s, v), nil },
		AllowMailToCommands:  []string{"alias", "forward"},
		AllowMailToFiles:     []string{"alias", "forward"},
		OwnerRequestSpecial:  true,
		RecipientDelimiter:   "+",
		PrependDelivered:     []string{"command", "file", "forward"},
		DefaultPrivs:         "nobody",
		CommandTimeLimit:     time.Minute,
		MailSpoolDirectory:   filepath.Join(f.dir, "spool"),
		MailboxLocks:         mailbox.Locks{Fcntl: true, Dotlock: true},
		DuplicateFilterLimit: 1000,
		IsLocal:              func(a string) bool { return strings.HasSuffix(strings.ToLower(a), "@local.test") },
		Qualify: func(a string) string {
			if !strings.Contains(a, "@") {
				return a + "@local.test"
			}
			return a
		},
		Submit: func(_ context.Context, env *envelope.Envelope, r io.Reader) (string, error) {
			b, _ := io.ReadAll(r)
			f.submitted = append(f.submitted, env)
			f.contents = append(f.contents, string(b))
			return fmt.Sprintf("NEW%d", len(f.submitted)), nil
		},
		LookupUser: func(n string) (*User, error) { return users[n], nil },
		Log:        maillog.New(&f.log, "mx.test", "postfix"),
	}
	return f
}

// expandVars is enough of config.ExpandWith for these tests: $name and
// ${name}.
func expandVars(s string, v map[string]string) string {
	return regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(s, func(m string) string {
		return v[strings.Trim(m, "${}")]
	})
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func deliver(t *testing.T, f *fixture, content string, rcpts ...string) []transport.Result {
	t.Helper()
	d := &transport.Delivery{QueueID: "4ABC", Sender: "alice@remote.test", Arrival: time.Now()}
	for i, r := range rcpts {
		d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: r})
	}
	d.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }
	return New(f.cfg).Deliver(context.Background(), d)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var fromLine = regexp.MustCompile(`(?m)^From (\S+)  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$`)

func TestSpoolMboxAndHomeMaildir(t *testing.T) {
	f := newFixture(t, "")
	res := deliver(t, f, msg, "Bob@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivered to mailbox" || r.Relay != "local" {
		t.Fatalf("got %+v", r)
	}
	got := fromLine.ReplaceAllString(read(t, filepath.Join(f.dir, "spool", "bob")), "From $1  DATE")
	want := "From alice@remote.test  DATE\nReturn-Path: <alice@remote.test>\nX-Original-To: Bob@local.test\n" +
		"Delivered-To: bob@local.test\nFrom: alice@remote.test\nSubject: hi\n\n>From here\nbody\n\n"
	if got != want {
		t.Errorf("mbox\n%q\nwant\n%q", got, want)
	}

	f.cfg.HomeMailbox = "Maildir/"
	res = deliver(t, f, msg, "carol+tag@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivered to maildir" {
		t.Fatalf("got %+v", r)
	}
	files, _ := filepath.Glob(filepath.Join(f.dir, "home", "carol", "Maildir", "new", "*"))
	if len(files) != 1 || !strings.HasPrefix(read(t, files[0]), "Return-Path: <alice@remote.test>\nX-Original-To: carol+tag@local.test\n") {
		t.Fatalf("maildir: %v", files)
	}
}

func TestUnknownUserAndLuserRelay(t *testing.T) {
	f := newFixture(t, "")
	res := deliver(t, f, msg, "Nosuch+x@local.test")
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.1.1" || r.Text != `unknown user: "nosuch"` {
		t.Fatalf("got %+v", r)
	}
	f.cfg.LuserRelay = "catchall+$user@relay.test"
	res = deliver(t, f, msg, "nosuch@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "forwarded as NEW1" {
		t.Fatalf("got %+v", r)
	}
	if got := f.submitted[0].Recipients[0].Address; got != "catchall+nosuch@relay.test" {
		t.Errorf("relayed to %s", got)
	}
}

// TestAliasExpansion covers an alias list with a local user, a file, a
// command, an include file and a remote address, and its log lines.
func TestAliasExpansion(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	inc := filepath.Join(dir, "members")
	write(t, inc, "# members\ncarol\nfar@remote.test\n")
	f := newFixture(t, fmt.Sprintf("list: bob, %s/file.mbox, \"|cat > %s/cmd.out\", :include:%s, Other@Remote.test\n", dir, dir, inc))
	res := deliver(t, f, msg, "list@local.test")
	if r := res[0]; r.Status != transport.Sent {
		t.Fatalf("got %+v\n%s", r, f.log.String())
	}
	if !strings.Contains(read(t, filepath.Join(f.dir, "spool", "bob")), "\nX-Original-To: list@local.test\nDelivered-To: list@local.test\n") {
		t.Error("bob's mailbox lacks the message")
	}
	file := fromLine.ReplaceAllString(read(t, filepath.Join(dir, "file.mbox")), "From $1  DATE")
	if want := "From alice@remote.test  DATE\nReturn-Path: <alice@remote.test>\nX-Original-To: list@local.test\nDelivered-To: list@local.test\n"; !strings.HasPrefix(file, want) {
		t.Errorf("file:\n%q", file)
	}
	cmd := fromLine.ReplaceAllString(read(t, filepath.Join(dir, "cmd.out")), "From $1  DATE")
	if want := "From alice@remote.test  DATE\nReturn-Path: <alice@remote.test>\nX-Original-To: list@local.test\nDelivered-To: list@local.test\nFrom: alice@remote.test\nSubject: hi\n\nFrom here\nbody\n"; cmd != want {
		t.Errorf("command input:\n%q\nwant\n%q", cmd, want)
	}
	// Include members are resubmitted, as is the remote address: one
	// message per sender.
	if len(f.submitted) != 1 {
		t.Fatalf("%d messages resubmitted", len(f.submitted))
	}
	var rcpts []string
	for _, r := range f.submitted[0].Recipients {
		rcpts = append(rcpts, r.Address)
	}
	if got := strings.Join(rcpts, " "); got != "carol@local.test far@remote.test Other@Remote.test" {
		t.Errorf("resubmitted to %s", got)
	}
	if !strings.HasPrefix(f.contents[0], "Delivered-To: list@local.test\r\nFrom: alice") {
		t.Errorf("forwarded content %q", f.contents[0][:60])
	}
	for _, re := range []string{
		`local\[\d+\]: 4ABC: to=<bob@local\.test>, orig_to=<list@local\.test>, relay=local, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered to mailbox\)`,
		`local\[\d+\]: 4ABC: to=<list@local\.test>, relay=local, .*status=sent \(delivered to file: ` + regexp.QuoteMeta(dir) + `/file\.mbox\)`,
		`local\[\d+\]: 4ABC: to=<list@local\.test>, relay=local, .*status=sent \(delivered to command: cat > `,
		`local\[\d+\]: 4ABC: to=<far@remote\.test>, orig_to=<list@local\.test>, relay=local, .*status=sent \(forwarded as NEW1\)`,
	} {
		if !regexp.MustCompile(re).MatchString(f.log.String()) {
			t.Errorf("log lacks %s:\n%s", re, f.log.String())
		}
	}
}

func TestOwnerAliasChangesSender(t *testing.T) {
	f := newFixture(t, "list: bob, carol\nowner-list: bob\n")
	res := deliver(t, f, msg, "list@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "forwarded as NEW1" {
		t.Fatalf("got %+v", r)
	}
	if len(f.submitted) != 1 || f.submitted[0].Sender != "owner-list@local.test" || len(f.submitted[0].Recipients) != 2 {
		t.Fatalf("resubmitted %+v", f.submitted)
	}
}

func TestAliasLoopsAndSelfReference(t *testing.T) {
	f := newFixture(t, "a: b\nb: a\nbob: bob, carol\n")
	res := deliver(t, f, msg, "a@local.test")
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.4.6" || !strings.HasPrefix(r.Text, "alias database loop for ") {
		t.Fatalf("got %+v", r)
	}
	// bob in his own alias means his mailbox.
	res = deliver(t, f, msg, "bob@local.test")
	if r := res[0]; r.Status != transport.Sent {
		t.Fatalf("got %+v", r)
	}
	for _, u := range []string{"bob", "carol"} {
		if _, err := os.Stat(filepath.Join(f.dir, "spool", u)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// A message that already went through this mailbox: a loop.
	res = deliver(t, f, "Delivered-To: carol@local.test\r\n"+msg, "carol@local.test")
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.4.6" || r.Text != "mail forwarding loop for carol@local.test" {
		t.Fatalf("got %+v", r)
	}
}

func TestDotForward(t *testing.T) {
	f := newFixture(t, "")
	home := filepath.Join(f.dir, "home", "bob")
	write(t, filepath.Join(home, ".forward"), "bob@elsewhere.test, \\bob\n")
	res := deliver(t, f, msg, "bob@local.test")
	if r := res[0]; r.Status != transport.Sent {
		t.Fatalf("got %+v", r)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "spool", "bob")); err != nil {
		t.Errorf("\\bob not delivered to the mailbox: %v", err)
	}
	if len(f.submitted) != 1 || f.submitted[0].Recipients[0].Address != "bob@elsewhere.test" {
		t.Errorf("forwarded %+v", f.submitted)
	}
	// An empty .forward: mailbox.
	write(t, filepath.Join(filepath.Join(f.dir, "home", "carol"), ".forward"), "# nothing\n")
	res = deliver(t, f, msg, "carol@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivered to mailbox" {
		t.Fatalf("got %+v", r)
	}
	// Commands are refused from include files by default.
	inc := filepath.Join(f.dir, "inc")
	write(t, inc, "|/bin/true\n")
	write(t, filepath.Join(home, ".forward"), ":include:"+inc+"\n")
	res = deliver(t, f, msg, "bob@local.test")
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.7.1" || r.Text != "mail to command is restricted" {
		t.Fatalf("got %+v", r)
	}
}

func TestMailboxCommandStatus(t *testing.T) {
	f := newFixture(t, "")
	out := filepath.Join(f.dir, "out")
	f.cfg.MailboxCommand = "cat > " + out + "; echo \"$USER $RECIPIENT $EXTENSION\" >> " + out
	res := deliver(t, f, msg, "bob+ext@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivered to command: "+f.cfg.MailboxCommand {
		t.Fatalf("got %+v", r)
	}
	if got := read(t, out); !strings.HasSuffix(got, "\nbob bob+ext@local.test ext\n") {
		t.Errorf("environment: %q", got)
	}
	for _, c := range []struct {
		cmd    string
		status transport.Status
		dsn    string
		text   string
	}{
		{"cat >/dev/null; exit 75", transport.Deferred, "4.3.0", "temporary failure"},
		{"cat >/dev/null; exit 67", transport.Bounced, "5.1.1", "user unknown"},
		{"sleep 600 & wait", transport.Bounced, "5.3.0", `Command time limit exceeded: "sleep 600 & wait"`},
	} {
		f.cfg.MailboxCommand = c.cmd
		f.cfg.CommandTimeLimit = time.Second
		if r := deliver(t, f, msg, "bob@local.test")[0]; r.Status != c.status || r.DSN != c.dsn || r.Text != c.text {
			t.Errorf("%s: got %+v", c.cmd, r)
		}
	}
}

// TestVerifyProbe: an address verification probe expands aliases and looks
// users up as mail would, and makes no delivery: no mailbox, file or
// command output, nothing resubmitted; an unknown user bounces.
func TestVerifyProbe(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	f := newFixture(t, fmt.Sprintf("list: bob, %s/file.mbox, \"|cat > %s/cmd.out\", far@remote.test\n", dir, dir))
	probe := func(rcpts ...string) []transport.Result {
		d := &transport.Delivery{QueueID: "4PRB", Sender: "double-bounce@local.test", Arrival: time.Now(), VerifyOnly: true,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }}
		for i, r := range rcpts {
			d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: r})
		}
		return New(f.cfg).Deliver(context.Background(), d)
	}
	res := probe("bob@local.test", "nosuch@local.test", "list@local.test")
	if r := res[0]; r.Status != transport.Sent || r.Text != "delivers to mailbox" {
		t.Errorf("bob: %+v", r)
	}
	if r := res[1]; r.Status != transport.Bounced || r.Text != `unknown user: "nosuch"` {
		t.Errorf("nosuch: %+v", r)
	}
	if r := res[2]; r.Status != transport.Sent {
		t.Errorf("list: %+v", r)
	}
	for _, p := range []string{filepath.Join(f.dir, "spool", "bob"), filepath.Join(dir, "file.mbox"), filepath.Join(dir, "cmd.out")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the probe was delivered to %s", p)
		}
	}
	if len(f.submitted) != 0 {
		t.Errorf("the probe was forwarded: %d messages", len(f.submitted))
	}
	for _, re := range []string{
		`4PRB: to=<list@local\.test>, relay=local, .*status=deliverable \(delivers to command: cat > `,
		`4PRB: to=<far@remote\.test>, orig_to=<list@local\.test>, relay=local, .*status=deliverable \(forwards to far@remote\.test\)`,
	} {
		if !regexp.MustCompile(re).MatchString(f.log.String()) {
			t.Errorf("log lacks %s:\n%s", re, f.log.String())
		}
	}
}
