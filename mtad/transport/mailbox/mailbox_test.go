package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixedNow = time.Date(2024, 3, 5, 10, 21, 4, 0, time.UTC)

func TestCopyMboxFraming(t *testing.T) {
	src := "Subject: x\r\n\r\nFrom the start\r\n>From quoted\r\n.dot\r\nbare\rCR\r\nno newline"
	var b bytes.Buffer
	env := Envelope{Sender: "", OrigRcpt: "Orig@x", Delivered: "Bob@X", Now: fixedNow}
	if err := Copy(context.Background(), &b, MboxFlags|ReturnPath|OrigRcpt|Delivered, env, strings.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	want := "From MAILER-DAEMON  Tue Mar  5 10:21:04 2024\nReturn-Path: <>\nX-Original-To: Orig@x\nDelivered-To: bob@x\n" +
		"Subject: x\n\n>From the start\n>From quoted\n.dot\nbare\rCR\nno newline\n\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := Copy(context.Background(), &b, Dot|CRLF, env, strings.NewReader(".a\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "..a\r\nb\r\n" {
		t.Errorf("dot/CRLF: %q", got)
	}
}

// TestCopyLongLines crosses the reader's buffer inside a line and between
// a CR and its LF.
func TestCopyLongLines(t *testing.T) {
	long := strings.Repeat("x", 64<<10-1) // CR lands at the buffer's end
	src := long + "\r\nFrom y\r\n" + strings.Repeat("z", 200<<10) + "\r\n"
	var b bytes.Buffer
	if err := Copy(context.Background(), &b, Quote, Envelope{}, strings.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	want := long + "\n>From y\n" + strings.Repeat("z", 200<<10) + "\n"
	if b.String() != want {
		t.Errorf("long lines mangled (len %d, want %d)", b.Len(), len(want))
	}
}

func writeMsg(body string) func(io.Writer) error {
	return func(w io.Writer) error {
		return Copy(context.Background(), w, MboxFlags, Envelope{Sender: "s@x", Now: fixedNow}, strings.NewReader(body))
	}
}

// TestMboxConcurrentAppends runs many deliveries into one mbox at once, with
// each lock method alone, and checks that no two messages interleave.
func TestMboxConcurrentAppends(t *testing.T) {
	for _, locks := range []string{"fcntl", "dotlock", "flock", "fcntl, dotlock"} {
		t.Run(locks, func(t *testing.T) {
			l, err := ParseLocks(locks)
			if err != nil {
				t.Fatal(err)
			}
			l.Delay = 10 * time.Millisecond
			l.Attempts = 3000
			path := filepath.Join(t.TempDir(), "mbox")
			const n = 16
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Big bodies written in many chunks give the writers
					// room to interleave if the lock failed.
					line := fmt.Sprintf("message %02d %s\r\n", i, strings.Repeat("y", 60))
					m := &Mbox{Path: path, Locks: l}
					if err := m.Append(context.Background(), writeMsg("Subject: "+fmt.Sprint(i)+"\r\n\r\n"+strings.Repeat(line, 3000))); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			msgs := strings.Split(string(data), "From s@x  ")
			if len(msgs) != n+1 || msgs[0] != "" {
				t.Fatalf("%d From lines, want %d", len(msgs)-1, n)
			}
			for _, m := range msgs[1:] {
				lines := strings.Split(strings.TrimRight(m, "\n"), "\n")
				sub := strings.TrimPrefix(lines[1], "Subject: ")
				num, _ := strconv.Atoi(sub)
				want := fmt.Sprintf("message %02d ", num)
				for _, ln := range lines[3:] {
					if !strings.HasPrefix(ln, want) {
						t.Fatalf("message %s holds a foreign line %q", sub, ln[:min(len(ln), 20)])
					}
				}
				if len(lines) != 3+3000 {
					t.Fatalf("message %s has %d lines", sub, len(lines))
				}
			}
			if _, err := os.Stat(path + ".lock"); err == nil {
				t.Error("dot-lock left behind")
			}
		})
	}
}

func TestMboxFailedWriteTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	m := &Mbox{Path: path, Locks: Locks{Fcntl: true}}
	if err := m.Append(context.Background(), writeMsg("Subject: one\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// The content source fails halfway: deferred, file as before.
	err := m.Append(context.Background(), func(w io.Writer) error {
		return Copy(context.Background(), w, MboxFlags, Envelope{}, io.MultiReader(strings.NewReader(strings.Repeat("half\r\n", 30000)), failing{}))
	})
	var me *Error
	if !errors.As(err, &me) || me.DSN != "4.3.0" || !strings.Contains(me.Text, "read message content") {
		t.Fatalf("got %v", err)
	}
	// Over mailbox_size_limit: 5.2.2, file as before.
	m.Limit = int64(len(before)) + 100
	err = m.Append(context.Background(), writeMsg("Subject: big\r\n\r\n"+strings.Repeat("z", 1000)+"\r\n"))
	if !errors.As(err, &me) || me.DSN != "5.2.2" || me.Text != "error writing message: File too large" {
		t.Fatalf("got %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("mbox changed by failed deliveries: %d → %d bytes", len(before), len(after))
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("store went away") }

func TestMboxStaleDotlockRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path+".lock", old, old)
	m := &Mbox{Path: path, Locks: Locks{Dotlock: true, Stale: time.Minute, Attempts: 2, Delay: time.Millisecond}}
	if err := m.Append(context.Background(), writeMsg("a\r\n")); err != nil {
		t.Fatal(err)
	}
	// A fresh lock held by someone else: deferred after the attempts.
	os.WriteFile(path+".lock", nil, 0o600)
	err := m.Append(context.Background(), writeMsg("b\r\n"))
	var me *Error
	if !errors.As(err, &me) || me.DSN != "4.2.0" || !strings.HasPrefix(me.Text, "unable to lock for exclusive access") {
		t.Fatalf("got %v", err)
	}
}

func TestMboxRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "target"), nil, 0o600)
	os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "mbox"))
	err := (&Mbox{Path: filepath.Join(dir, "mbox")}).Append(context.Background(), writeMsg("a\r\n"))
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("got %v", err)
	}
}

func TestCommandStatuses(t *testing.T) {
	ctx := context.Background()
	run := func(line string, limit time.Duration) error {
		c := &Command{Line: line, TimeLimit: limit, Env: []string{"PATH=/usr/bin:/bin"}}
		return c.Run(ctx, writeMsg("Subject: s\r\n\r\nbody\r\n"))
	}
	check := func(err error, dsn, text string) {
		t.Helper()
		var me *Error
		if !errors.As(err, &me) || me.DSN != dsn || me.Text != text {
			t.Errorf("got %#v, want %s %q", err, dsn, text)
		}
	}
	if err := run("cat >/dev/null", 0); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	check(run("(exit 75)", 0), "4.3.0", "temporary failure")
	check(run("echo no such user; exit 67", 0), "5.1.1", "user unknown. Command output: no such user ")
	check(run("echo 4.2.2 mailbox full; exit 1", 0), "4.2.2", "mailbox full")
	check(run("(exit 3)", 0), "5.3.0", `Command died with status 3: "(exit 3)"`)
	check(run("kill -9 $$", 0), "4.3.0", `Command died with signal 9: "kill -9 $$"`)
	// The time limit kills the command and what it started.
	check(run("sleep 300 & wait", time.Second), "5.3.0", `Command time limit exceeded: "sleep 300 & wait"`)
	// Without shell metacharacters the command runs directly.
	check((&Command{Argv: []string{"/nonexistent/cmd"}}).Run(ctx, writeMsg("x\r\n")), "4.3.0",
		`cannot execute command "/nonexistent/cmd": No such file or directory`)
}

// TestMaildirRetakenDelivery: a delivery taken over after a crash finds the
// file the dead node wrote, in new/ or (moved by a reader) in cur/, and
// writes no second copy; without that file it delivers.
func TestMaildirRetakenDelivery(t *testing.T) {
	dir := t.TempDir() + "/Maildir/"
	md := NewMaildir("node-a")
	write := func(w io.Writer) error { _, err := io.WriteString(w, "Subject: x\n\nbody\n"); return err }
	files := func() []string {
		var out []string
		for _, sub := range []string{"new", "cur", "tmp"} {
			ents, _ := os.ReadDir(filepath.Join(dir, sub))
			for _, e := range ents {
				out = append(out, sub+"/"+e.Name())
			}
		}
		return out
	}
	key := DeliveryKey("4ZxK2q1Rb7z3v", 12)
	if err := md.Deliver(context.Background(), Target{Dir: dir, Key: key}, write); err != nil {
		t.Fatal(err)
	}
	got := files()
	if len(got) != 1 || !strings.HasPrefix(got[0], "new/") || !strings.Contains(got[0], "_4ZxK2q1Rb7z3v_12.node-a") {
		t.Fatalf("files %v, want one in new/ named with the key", got)
	}
	// Another node takes the delivery over.
	other := NewMaildir("node-b")
	if err := other.Deliver(context.Background(), Target{Dir: dir, Key: key, Retaken: true}, write); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 1 {
		t.Errorf("%d files after the retaken delivery, want still 1", n)
	}
	// A reader moved it to cur/ with flags: still found.
	cur := filepath.Join(dir, "cur", filepath.Base(got[0])+":2,S")
	if err := os.Rename(filepath.Join(dir, got[0]), cur); err != nil {
		t.Fatal(err)
	}
	if err := other.Deliver(context.Background(), Target{Dir: dir, Key: key, Retaken: true}, write); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 1 {
		t.Errorf("%d files after the retaken delivery (moved to cur/), want still 1", n)
	}
	// A key that is a suffix of another's is no match; nor is a retaken
	// delivery whose copy never got written.
	if err := other.Deliver(context.Background(), Target{Dir: dir, Key: DeliveryKey("ZxK2q1Rb7z3v", 12), Retaken: true}, write); err != nil {
		t.Fatal(err)
	}
	if err := other.Deliver(context.Background(), Target{Dir: dir, Key: DeliveryKey("4ZxK2q1Rb7z3v", 2), Retaken: true}, write); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 3 {
		t.Errorf("%d files, want 3: %v", n, files())
	}
}
