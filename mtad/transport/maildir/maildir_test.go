package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sqlmta/mtad/transport"
)

const content = "From: alice@sender.test\r\nSubject: hi\r\n\r\nline one\r\nbare\rCR\r\n"

func delivery(rcpts ...string) *transport.Delivery {
	d := &transport.Delivery{QueueID: "4ABC", Sender: "alice@sender.test", Arrival: time.Now(), Size: int64(len(content))}
	for i, r := range rcpts {
		d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: r})
	}
	d.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}
	return d
}

func newFiles(t *testing.T, maildir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(maildir, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestVirtualDelivery(t *testing.T) {
	base := t.TempDir()
	tr := New(Config{Mailbox: VirtualMailbox(base), Relay: "virtual", Hostname: "mx:1/a"})
	d := delivery("Bob@Example.test", "../evil@example.test", ".hidden@example.test")
	d.Recipients[0].Orig = "bobby@alias.test"
	res := tr.Deliver(context.Background(), d)

	if r := res[0]; r.Status != transport.Sent || r.DSN != "2.0.0" || r.Text != "delivered to maildir" || r.Relay != "virtual" || r.RecipientID != 1 {
		t.Fatalf("got %+v", r)
	}
	for _, r := range res[1:] {
		if r.Status != transport.Bounced || r.DSN != "5.1.1" {
			t.Errorf("bad localpart accepted: %+v", r)
		}
	}
	md := filepath.Join(base, "bob", "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		fi, err := os.Stat(filepath.Join(md, sub))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", sub, fi, err)
		}
	}
	files := newFiles(t, md)
	if len(files) != 1 {
		t.Fatalf("new/ has %v", files)
	}
	if !strings.HasSuffix(files[0], `.mx\0721\057a`) {
		t.Errorf("host part not escaped: %s", files[0])
	}
	got, _ := os.ReadFile(files[0])
	want := "Return-Path: <alice@sender.test>\nX-Original-To: bobby@alias.test\nDelivered-To: bob@example.test\n" +
		"From: alice@sender.test\nSubject: hi\n\nline one\nbare\rCR\n"
	if string(got) != want {
		t.Errorf("file content\n%q\nwant\n%q", got, want)
	}
	if tmp, _ := os.ReadDir(filepath.Join(md, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
	if _, err := os.Stat(filepath.Join(base, "..", "evil")); err == nil {
		t.Error("escaped base")
	}
}

func TestConcurrentDeliveriesDistinctFiles(t *testing.T) {
	base := t.TempDir()
	tr := New(Config{Mailbox: VirtualMailbox(base)})
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.Deliver(context.Background(), delivery("carol@example.test"))
			if res[0].Status != transport.Sent {
				t.Errorf("%+v", res[0])
			}
		}()
	}
	wg.Wait()
	if files := newFiles(t, filepath.Join(base, "carol", "Maildir")); len(files) != n {
		t.Errorf("%d files in new/, want %d", len(files), n)
	}
}

func TestWriteFailureDefers(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a file where a
		// directory must be instead.
		base := t.TempDir()
		if err := os.WriteFile(filepath.Join(base, "dave"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		res := New(Config{Mailbox: VirtualMailbox(base)}).Deliver(context.Background(), delivery("dave@example.test"))
		if r := res[0]; r.Status != transport.Deferred || r.DSN != "4.2.0" || !strings.HasPrefix(r.Text, "maildir delivery failed: ") {
			t.Errorf("got %+v", r)
		}
		return
	}
	base := t.TempDir()
	if err := os.Chmod(base, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(base, 0o700)
	res := New(Config{Mailbox: VirtualMailbox(base)}).Deliver(context.Background(), delivery("dave@example.test"))
	want := fmt.Sprintf("maildir delivery failed: create %s: Permission denied", filepath.Join(base, "dave"))
	if r := res[0]; r.Status != transport.Deferred || r.DSN != "4.2.0" || r.Text != want {
		t.Errorf("got %+v, want %q", r, want)
	}
}

func TestContentReadErrorDefers(t *testing.T) {
	base := t.TempDir()
	d := delivery("erin@example.test")
	d.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("partial"), errReader{})), nil
	}
	res := New(Config{Mailbox: VirtualMailbox(base)}).Deliver(context.Background(), d)
	if r := res[0]; r.Status != transport.Deferred || !strings.Contains(r.Text, "read message content") {
		t.Errorf("got %+v", r)
	}
	md := filepath.Join(base, "erin", "Maildir")
	if files := newFiles(t, md); len(files) != 0 {
		t.Errorf("partial message delivered: %v", files)
	}
	if tmp, _ := os.ReadDir(filepath.Join(md, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not cleaned: %v", tmp)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("store went away") }

func TestLocalMailboxUnknownUserAndMbox(t *testing.T) {
	res := New(Config{Mailbox: LocalMailbox("Maildir/"), Relay: "local"}).
		Deliver(context.Background(), delivery("no-such-user-sqlmta@localhost"))
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.1.1" || r.Text != `unknown user: "no-such-user-sqlmta"` || r.Relay != "local" {
		t.Errorf("got %+v", r)
	}
	res = New(Config{Mailbox: LocalMailbox("Mailbox"), Relay: "local"}).
		Deliver(context.Background(), delivery("root@localhost"))
	if r := res[0]; r.Status != transport.Deferred || !strings.Contains(r.Text, "mbox delivery not supported yet") {
		t.Errorf("got %+v", r)
	}
}

// TestLocalMailboxRealUser creates a throwaway account (root only) and checks
// the Maildir lands in its home, owned by it.
func TestLocalMailboxRealUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Log("CI but not root: cannot create a user")
		}
		t.Skip("needs root to create a user")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Fatal("useradd missing")
	}
	name := fmt.Sprintf("sqlmt%d", os.Getpid()%100000)
	home := filepath.Join(t.TempDir(), name)
	// The home's parent must be reachable only for root here, which is who
	// writes; ownership is what we check.
	if out, err := exec.Command("useradd", "-m", "-d", home, "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", "-r", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)

	res := New(Config{Mailbox: LocalMailbox("Maildir/"), Relay: "local"}).
		Deliver(context.Background(), delivery(strings.ToUpper(name)+"@localhost"))
	if r := res[0]; r.Status != transport.Sent || r.Relay != "local" {
		t.Fatalf("got %+v", r)
	}
	md := filepath.Join(home, "Maildir")
	files := newFiles(t, md)
	if len(files) != 1 {
		t.Fatalf("new/ has %v", files)
	}
	for _, p := range []string{md, filepath.Join(md, "new"), files[0]} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s owned by %d, want %d", p, st.Uid, uid)
		}
	}
}
