package virtual

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	mapopen "sqlmta/mapdrivers/open"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/mailbox"
)

const content = "From: a@remote.test\r\nSubject: v\r\n\r\nFrom me\r\n"

func delivery(rcpts ...string) *transport.Delivery {
	d := &transport.Delivery{QueueID: "4V", Sender: "a@remote.test", Arrival: time.Now()}
	for i, r := range rcpts {
		d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: r})
	}
	d.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }
	return d
}

// TestSQLMaps reads path, uid and gid from the operator's own SQLite
// tables through sqlite: .cf files, as a hosting provider's set-up does.
func TestSQLMaps(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "hosting.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE mailbox (email TEXT PRIMARY KEY, maildir TEXT, uid INTEGER, gid INTEGER)`,
		`INSERT INTO mailbox VALUES ('ann@hosted.test', 'hosted.test/ann/', 5001, 5002)`,
		`INSERT INTO mailbox VALUES ('ben@hosted.test', 'hosted.test/ben.mbox', 5003, 5004)`,
		`INSERT INTO mailbox VALUES ('low@hosted.test', 'hosted.test/low/', 10, 10)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	cf := func(name, field string) string {
		p := filepath.Join(dir, name+".cf")
		s := "dbpath = " + dbPath + "\nquery = SELECT " + field + " FROM mailbox WHERE email = '%s'\n"
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return "sqlite:" + p
	}
	maps := &mapopen.Opener{}
	defer maps.Close()
	base := filepath.Join(dir, "vmail")
	tr := New(Config{
		OpenMap: maps.Open, MailboxBase: base, MinimumUID: 100, RecipientDelimiter: "+",
		MailboxMaps: []string{cf("mailboxes", "maildir")},
		UIDMaps:     []string{cf("uids", "uid")},
		GIDMaps:     []string{cf("gids", "gid")},
		Locks:       mailbox.Locks{Fcntl: true, Dotlock: true},
	})
	res := tr.Deliver(context.Background(), delivery("Ann+tag@hosted.test", "ben@hosted.test", "nobody@hosted.test", "low@hosted.test"))
	want := []struct {
		status transport.Status
		dsn    string
		text   string
	}{
		{transport.Sent, "2.0.0", "delivered to maildir"},
		{transport.Sent, "2.0.0", "delivered to mailbox"},
		{transport.Bounced, "5.1.1", `unknown user: "nobody@hosted.test"`},
		{transport.Deferred, "4.3.0", "recipient low@hosted.test: bad uid 10 in virtual_uid_maps"},
	}
	for i, w := range want {
		if r := res[i]; r.Status != w.status || r.DSN != w.dsn || r.Text != w.text || r.Relay != "virtual" {
			t.Errorf("recipient %d: got %+v", i, r)
		}
	}
	files, _ := filepath.Glob(filepath.Join(base, "hosted.test", "ann", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("ann's Maildir: %v", files)
	}
	got, _ := os.ReadFile(files[0])
	if !strings.HasPrefix(string(got), "Return-Path: <a@remote.test>\nX-Original-To: Ann+tag@hosted.test\nDelivered-To: ann+tag@hosted.test\n") {
		t.Errorf("maildir file %q", got)
	}
	mbox, _ := os.ReadFile(filepath.Join(base, "hosted.test", "ben.mbox"))
	if !strings.HasPrefix(string(mbox), "From a@remote.test  ") || !strings.HasSuffix(string(mbox), "\n>From me\n\n") {
		t.Errorf("mbox %q", mbox)
	}
	if os.Geteuid() == 0 {
		for path, uid := range map[string]int{files[0]: 5001, filepath.Join(base, "hosted.test", "ben.mbox"): 5003} {
			fi, _ := os.Stat(path)
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
				t.Errorf("%s owned by %d, want %d", path, st.Uid, uid)
			}
		}
	}
}

func TestStaticIDsAndLimit(t *testing.T) {
	dir := t.TempDir()
	maps := &mapopen.Opener{}
	defer maps.Close()
	tr := New(Config{
		OpenMap: maps.Open, MailboxBase: dir,
		MailboxMaps:  []string{"inline:{ @big.test=big.test/all }"},
		UIDMaps:      []string{"static:" + strconv.Itoa(os.Getuid())},
		GIDMaps:      []string{"static:" + strconv.Itoa(os.Getgid())},
		MailboxLimit: 40,
	})
	res := tr.Deliver(context.Background(), delivery("x@big.test"))
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.2.2" ||
		r.Text != "cannot update mailbox "+filepath.Join(dir, "big.test/all")+" for user x@big.test. error writing message: File too large" {
		t.Fatalf("got %+v", r)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big.test/all")); err != nil || fi.Size() != 0 {
		t.Errorf("mbox not truncated back: %v %v", fi, err)
	}
}
