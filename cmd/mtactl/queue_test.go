package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
	"sqlmta/internal/teststore"
	"sqlmta/store"
)

// queueDB is one database the queue commands are tested on.
type queueDB struct {
	name string
	url  func(t testing.TB) string
}

var queueDBs = []queueDB{
	{"sqlite", testdb.SQLiteURL},
	{"postgres", testdb.PostgresURL},
	{"mysql", testdb.MySQLURL},
}

// queueSetup writes a main.cf for url (with a maillog file) and opens the store, migrated.
func queueSetup(t testing.TB, url string) (dir, maillog string, st store.Store) {
	t.Helper()
	dir = t.TempDir()
	maillog = filepath.Join(dir, "maillog")
	cf := fmt.Sprintf("database_url = %s\nmaillog_file = %s\nmyhostname = mx.example.com\n", url, maillog)
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, maillog, teststore.Open(t, url)
}

var qseq int

// put enqueues a message from sender to rcpts with content; when reasons are given, the recipients are
// claimed and deferred with them (due in an hour), as a failed delivery leaves them.
func put(t testing.TB, st store.Store, id, sender string, arrival time.Time, content string, rcpts []string, reasons ...string) {
	t.Helper()
	ctx := context.Background()
	m := &store.NewMessage{QueueID: id, Sender: sender, Arrival: arrival, Content: strings.NewReader(content)}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Address: r})
	}
	if err := st.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	if len(reasons) == 0 {
		return
	}
	qseq++
	owner := fmt.Sprintf("test-%d", qseq)
	// Claim from a clock far ahead, so the claim takes this message's rows before others' (they are the
	// newest due rows; earlier messages are deferred into the future already).
	got, err := st.RecipientsClaim(ctx, store.ClaimParams{Owner: owner, Limit: 1000, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var ds []store.Deferral
	for _, c := range got {
		if c.QueueID != id {
			t.Fatalf("claim for %s took %s's recipient: the fixture expects the rest of the queue not due", id, c.QueueID)
		}
		ds = append(ds, store.Deferral{ID: c.ID, Reason: reasons[len(ds)%len(reasons)], NextAttempt: time.Now().Add(time.Hour)})
	}
	if err := st.RecipientsDefer(ctx, owner, ds); err != nil {
		t.Fatal(err)
	}
}

func adminOf(t testing.TB, st store.Store) store.Admin {
	return st.(store.AdminStore).Admin()
}

func TestMailqLayout(t *testing.T) {
	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	out, _, code := mtactl(t, "-c", dir, "queue", "list")
	if code != 0 || out != "Mail queue is empty\n" {
		t.Fatalf("empty queue: %d %q", code, out)
	}
	dir, _, st = queueSetup(t, testdb.SQLiteURL(t))
	at := time.Date(2024, 3, 5, 10, 21, 14, 0, time.Local)
	long := strings.Repeat("very long reason text ", 5) + "end"
	put(t, st, "4F2E61C0A1", "", at, strings.Repeat("x", 2711), []string{"carol@example.com"}, "connect to mx.example.com[192.0.2.25]:25: Connection refused")
	put(t, st, "5A0000000B", "bob@example.org", at, strings.Repeat("y", 1000), []string{"d1@example.net", "d2@example.net"}, long)
	put(t, st, "8B7A21C0F3", "alice@example.org", at, strings.Repeat("z", 1503), []string{"bob@example.net"})
	if _, err := adminOf(t, st).MessagesHold(context.Background(), []string{"8B7A21C0F3"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := adminOf(t, st).MessagesExpire(context.Background(), []string{"5A0000000B"}, false); err != nil {
		t.Fatal(err)
	}
	out, errs, code := mtactl(t, "-c", dir, "queue", "list")
	want := `-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
4F2E61C0A1     2711 Tue Mar  5 10:21:14  MAILER-DAEMON
                (connect to mx.example.com[192.0.2.25]:25: Connection refused)
                                         carol@example.com

5A0000000B#    1000 Tue Mar  5 10:21:14  bob@example.org
(` + long + `)
                                         d1@example.net
                                         d2@example.net

8B7A21C0F3!    1503 Tue Mar  5 10:21:14  alice@example.org
                                         bob@example.net

-- 5 Kbytes in 3 Requests.
`
	if code != 0 || out != want {
		t.Errorf("mailq (%d, %s):\n%s\nwant:\n%s", code, errs, out, want)
	}
	out, _, _ = mtactl(t, "-c", dir, "queue", "list", "-j")
	if !strings.HasPrefix(out, `{"queue_name": "deferred", "queue_id": "4F2E61C0A1", "arrival_time": `+fmt.Sprint(at.Unix())+`, "message_size": 2711, "forced_expire": false, "sender": "MAILER-DAEMON", "recipients": [{"address": "carol@example.com", "delay_reason": "connect to mx.example.com[192.0.2.25]:25: Connection refused"}]}`+"\n") ||
		!strings.Contains(out, `{"queue_name": "hold", "queue_id": "8B7A21C0F3", "arrival_time": `+fmt.Sprint(at.Unix())+`, "message_size": 1503, "forced_expire": false, "sender": "alice@example.org", "recipients": [{"address": "bob@example.net"}]}`+"\n") ||
		strings.Count(out, "\n") != 3 {
		t.Errorf("postqueue -j:\n%s", out)
	}
}

// TestPostsuper runs each postsuper operation on each queue, with its stderr summary and mail log lines,
// on every database.
func TestPostsuper(t *testing.T) {
	for _, db := range queueDBs {
		t.Run(db.name, func(t *testing.T) {
			dir, maillog, st := queueSetup(t, db.url(t))
			now := time.Now()
			a := adminOf(t, st)
			ctx := context.Background()
			// Deferred D1, D2; held H1; incoming I1 (put last: it stays due).
			put(t, st, "D1", "s@example.org", now, "a\r\n", []string{"r@example.com"}, "refused")
			put(t, st, "D2", "s@example.org", now, "b\r\n", []string{"r@example.com"}, "refused")
			put(t, st, "H1", "s@example.org", now, "c\r\n", []string{"r@example.com"})
			if _, err := a.MessagesHold(ctx, []string{"H1"}); err != nil {
				t.Fatal(err)
			}
			put(t, st, "I1", "s@example.org", now, "d\r\n", []string{"r@example.com"})
			queueOf := func(id string) string {
				m, err := st.MessageGet(ctx, id)
				if err != nil {
					return "gone"
				}
				return store.QueueOf(m.Recipients, time.Now())
			}
			logged := func() string { b, _ := os.ReadFile(maillog); return string(b) }
			steps := []struct {
				args      []string
				stdin     string
				stderr    string
				logLines  []string
				wantQueue map[string]string
			}{
				{[]string{"-h", "D1", "-h", "H1", "-h", "NOPE"}, "", "postsuper: D1: placed on hold\npostsuper: Placed on hold: 1 message\n",
					[]string{"D1: placed on hold", "Placed on hold: 1 message"}, map[string]string{"D1": "hold", "H1": "hold"}},
				{[]string{"-H", "ALL"}, "", "postsuper: Released from hold: 2 messages\n",
					[]string{"Released from hold: 2 messages"}, map[string]string{"D1": "deferred", "H1": "incoming"}},
				{[]string{"-h", "ALL", "deferred"}, "", "postsuper: Placed on hold: 2 messages\n",
					nil, map[string]string{"D1": "hold", "D2": "hold", "H1": "incoming", "I1": "incoming"}},
				{[]string{"-e", "I1"}, "", "postsuper: I1: expired\npostsuper: Force-expired: 1 message\n",
					[]string{"I1: expired"}, nil},
				{[]string{"-f", "D1"}, "", "postsuper: D1: released from hold\npostsuper: D1: expired\npostsuper: Force-expired: 1 message\npostsuper: Released from hold: 1 message\n",
					[]string{"D1: released from hold", "D1: expired", "Released from hold: 1 message"}, map[string]string{"D1": "deferred", "D2": "hold"}},
				{[]string{"-r", "-"}, "D1\nD2\n", "postsuper: D1: requeued\npostsuper: D2: requeued\npostsuper: Requeued: 2 messages\n",
					[]string{"D1: requeued", "Requeued: 2 messages"}, map[string]string{"D1": "incoming", "D2": "incoming"}},
				{[]string{"-d", "D1", "hold"}, "", "postsuper: Deleted: 0 messages\n", nil, map[string]string{"D1": "incoming"}},
				{[]string{"-d", "D1", "-d", "ALL", "incoming"}, "", "postsuper: D1: removed\npostsuper: Deleted: 4 messages\n",
					[]string{"D1: removed", "Deleted: 4 messages"}, map[string]string{"D1": "gone", "D2": "gone", "H1": "gone", "I1": "gone"}},
			}
			for _, s := range steps {
				var errb bytes.Buffer
				code := postsuperMain("postsuper", dir, append([]string{"-c", dir}, s.args...), strings.NewReader(s.stdin), &errb)
				if code != 0 || errb.String() != s.stderr {
					t.Errorf("postsuper %v: exit %d, stderr:\n%s\nwant:\n%s", s.args, code, errb.String(), s.stderr)
				}
				log := logged()
				for _, l := range s.logLines {
					if !regexp.MustCompile(`(?m) mx postfix/postsuper\[\d+\]: ` + regexp.QuoteMeta(l) + `$`).MatchString(log) {
						t.Errorf("postsuper %v: mail log lacks %q:\n%s", s.args, l, log)
					}
				}
				for id, q := range s.wantQueue {
					if got := queueOf(id); got != q {
						t.Errorf("after postsuper %v: %s in %s, want %s", s.args, id, got, q)
					}
				}
			}
			if strings.Contains(logged(), "D2: placed on hold") {
				t.Errorf("postsuper ALL logged a message by ID:\n%s", logged())
			}
			var errb bytes.Buffer
			if code := postsuperMain("postsuper", dir, []string{"-c", dir, "-d", "ALL", "bogus"}, nil, &errb); code != 1 || errb.String() != "postsuper: fatal: invalid directory name: bogus\n" {
				t.Errorf("bad queue name: %d %q", code, errb.String())
			}
		})
	}
}

func TestPostqueueFlush(t *testing.T) {
	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	appendMainCf(t, dir, "relay_domains = two.example\n")
	put(t, st, "F1", "s@example.org", time.Now(), "x\r\n", []string{"a@one.example"}, "r")
	put(t, st, "F2", "s@example.org", time.Now(), "x\r\n", []string{"b@two.example"}, "r")
	due := func(id string) bool {
		m, _ := st.MessageGet(context.Background(), id)
		return !m.Recipients[0].NextAttempt.After(time.Now())
	}
	if _, errs, code := mtactl(t, "-c", dir, "queue", "flush", "-s", "two.example"); code != 0 || due("F1") || !due("F2") {
		t.Errorf("postqueue -s two.example: %d %s; due F1 %v F2 %v", code, errs, due("F1"), due("F2"))
	}
	if _, errs, code := mtactl(t, "-c", dir, "queue", "flush"); code != 0 || !due("F1") {
		t.Errorf("postqueue -f: %d %s; due F1 %v", code, errs, due("F1"))
	}
}

// appendMainCf adds lines to dir/main.cf.
func appendMainCf(t testing.TB, dir, lines string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "main.cf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		t.Fatal(err)
	}
}

// flushSiteCases are -s sites for the fast_flush_domains in flushSiteMainCf: eligible ones (also through
// a parent domain, a table and case), a negated one, others, and sites postqueue rejects as invalid.
const flushSiteMainCf = "relay_domains = two.example, inline:{table.example=x}\n" +
	"fast_flush_domains = !no.two.example, $relay_domains\n"

var flushSiteCases = []string{
	"two.example", "TWO.Example", "sub.two.example", "a_b.two.example", "table.example", "sub.table.example",
	"no.two.example", "other.example", "[127.0.0.1]", "[IPv6:::1]", "127.0.0.1",
	"bad..site", ".two.example", "two.example.", "-x.two.example", "[1.2.3]", "[::1]", "a@b.example",
	strings.Repeat("x", 120) + "!",
}

// TestPostqueueSite checks postqueue -s against fast_flush_domains: a site outside it is refused as
// Postfix's flush(8) refuses it, with nothing flushed.
func TestPostqueueSite(t *testing.T) {
	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	appendMainCf(t, dir, flushSiteMainCf)
	put(t, st, "S1", "s@example.org", time.Now(), "x\r\n", []string{"a@other.example"}, "r")
	put(t, st, "S2", "s@example.org", time.Now(), "x\r\n", []string{"b@sub.two.example"}, "r")
	due := func(id string) bool {
		m, _ := st.MessageGet(context.Background(), id)
		return !m.Recipients[0].NextAttempt.After(time.Now())
	}
	pq := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := postqueueMain("postqueue", dir, args, &out, &errb)
		return errb.String(), code
	}
	if errs, code := pq("-s", "other.example"); code != 69 || errs != "postqueue: fatal: Flush service is not configured for destination \"other.example\"\n" || due("S1") {
		t.Errorf("-s other.example: %d %q, S1 due %v", code, errs, due("S1"))
	}
	if errs, code := pq("-s", "bad..site"); code != 69 || errs != "postqueue: fatal: Cannot flush mail queue - invalid destination: \"bad..site\"\n" {
		t.Errorf("-s bad..site: %d %q", code, errs)
	}
	long := strings.Repeat("y", 150)
	if errs, _ := pq("-s", long+"!"); errs != "postqueue: fatal: Cannot flush mail queue - invalid destination: \""+long[:100]+"...\"\n" {
		t.Errorf("-s long: %q", errs)
	}
	if errs, code := pq("-s", "sub.two.example"); code != 0 || errs != "" || !due("S2") || due("S1") {
		t.Errorf("-s sub.two.example: %d %q, due S1 %v S2 %v", code, errs, due("S1"), due("S2"))
	}
	// A table that cannot be opened is flush(8)'s failure, not a refusal.
	appendMainCf(t, dir, "fast_flush_domains = pgsql:"+filepath.Join(dir, "missing.cf")+"\n")
	if errs, code := pq("-s", "two.example"); code != 69 || !strings.HasSuffix(errs, "postqueue: fatal: Cannot flush mail queue - mail system is down\n") || !strings.Contains(errs, "postqueue: warning: ") {
		t.Errorf("-s with a broken table: %d %q", code, errs)
	}
}

// TestPostqueueSiteDifferential runs postqueue -s for each of flushSiteCases against a Postfix with the
// same settings and against mtactl, and compares the messages and exit statuses.
func TestPostqueueSiteDifferential(t *testing.T) {
	postqueue := peers.Require(t, "postqueue")
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost:   fmt.Sprintf("[127.0.0.1]:%d", peers.FreePort(t)),
		ExtraMainCf: flushSiteMainCf,
	})
	etc := filepath.Join(pf.Dir(), "etc")
	dir, _, _ := queueSetup(t, testdb.SQLiteURL(t))
	appendMainCf(t, dir, flushSiteMainCf)
	for _, site := range flushSiteCases {
		var errb bytes.Buffer
		cmd := exec.Command(postqueue, "-c", etc, "-s", site)
		cmd.Stderr = &errb
		err := cmd.Run()
		wantCode := 0
		if ee, ok := err.(*exec.ExitError); ok {
			wantCode = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		code := postqueueMain("postqueue", dir, []string{"-s", site}, io.Discard, &got)
		if code != wantCode || got.String() != errb.String() {
			t.Errorf("-s %q: ours %d %q, Postfix %d %q", site, code, got.String(), wantCode, errb.String())
		}
	}
}

func TestPostcat(t *testing.T) {
	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	at := time.Date(2024, 3, 5, 10, 21, 14, 0, time.Local)
	m := &store.NewMessage{QueueID: "C1", Sender: "alice@example.org", Arrival: at, ClientName: "client.example",
		ClientAddr: "192.0.2.1", Helo: "client.example", Protocol: "ESMTP",
		Content:    strings.NewReader("Subject: hi\r\nFrom: alice@example.org\r\n\r\nbody line\r\n"),
		Recipients: []store.NewRecipient{{Address: "bob@example.net", Orig: "Bob@Example.NET", Notify: "FAILURE,DELAY", ORCPT: "rfc822;Bob@Example.NET"}}}
	if err := st.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	cur, _ := st.MessageGet(context.Background(), "C1")
	out, errs, code := mtactl(t, "-c", dir, "queue", "cat", "-q", "C1")
	want := `*** ENVELOPE RECORDS incoming/C1 ***
message_size:              51               0               1               0              51               0
message_arrival_time: Tue Mar  5 10:21:14 2024
create_time: ` + asctime(cur.CreatedAt) + `
named_attribute: log_ident=C1
sender: alice@example.org
named_attribute: log_client_name=client.example
named_attribute: log_client_address=192.0.2.1
named_attribute: log_helo_name=client.example
named_attribute: log_protocol_name=ESMTP
named_attribute: client_name=client.example
named_attribute: client_address=192.0.2.1
named_attribute: helo_name=client.example
named_attribute: protocol_name=ESMTP
named_attribute: dsn_orig_rcpt=rfc822;Bob@Example.NET
dsn_notify: 12
original_recipient: Bob@Example.NET
recipient: bob@example.net
*** MESSAGE CONTENTS incoming/C1 ***
Subject: hi
From: alice@example.org

body line
*** HEADER EXTRACTED incoming/C1 ***
*** MESSAGE FILE END incoming/C1 ***
`
	if code != 0 || out != want {
		t.Errorf("postcat (%d, %s):\n%s\nwant:\n%s", code, errs, out, want)
	}
	if out, _, _ := mtactl(t, "-c", dir, "queue", "cat", "-h", "-q", "C1"); out != "Subject: hi\nFrom: alice@example.org\n" {
		t.Errorf("postcat -h: %q", out)
	}
	if out, _, _ := mtactl(t, "-c", dir, "queue", "cat", "-b", "-q", "C1"); out != "\nbody line\n" {
		t.Errorf("postcat -b: %q", out)
	}
	if _, errs, code := mtactl(t, "-c", dir, "queue", "cat", "-q", "NOPE"); code != 1 || errs != "mtactl queue cat: fatal: open queue file NOPE: No such file or directory\n" {
		t.Errorf("postcat of a missing ID: %d %q", code, errs)
	}
}

func TestQshape(t *testing.T) {
	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	now := time.Now()
	put(t, st, "Q1", "s@example.org", now.Add(-7*time.Minute), "x\r\n", []string{"a@one.example", "b@one.example"}, "r")
	put(t, st, "Q2", "", now.Add(-time.Minute), "x\r\n", []string{"c@two.example"}, "r")
	out, errs, code := mtactl(t, "-c", dir, "queue", "shape", "deferred")
	want := `                                         T  5 10 20 40 80 160 320 640 1280 1280+
                                  TOTAL  3  1  2  0  0  0   0   0   0    0     0
                            one.example  2  0  2  0  0  0   0   0   0    0     0
                            two.example  1  1  0  0  0  0   0   0   0    0     0
`
	if code != 0 || out != want {
		t.Errorf("qshape (%d, %s):\n%s\nwant:\n%s", code, errs, out, want)
	}
	out, _, _ = mtactl(t, "-c", dir, "queue", "shape", "-s", "-b", "3", "deferred")
	want = `                                                                     T  5 10 10+
                                                              TOTAL  2  1  1   0
                                                        example.org  1  0  1   0
                                                      MAILER-DAEMON  1  1  0   0
`
	if out != want {
		t.Errorf("qshape -s -b 3:\n%s\nwant:\n%s", out, want)
	}
}

// TestMailqDifferential puts deferred mail (refused connections, a long reason from a retry: transport, a
// null sender, a held message) into a real Postfix 3.7, copies what its postqueue -j reports into sqlmta's
// queue through the store (same queue IDs, arrival times, sizes, recipients and reasons), and compares
// Postfix's postqueue -p and -j with ours. Postfix lists messages in queue-directory order, sqlmta in
// queue-ID order: messages are compared as a set, every byte of each.
func TestMailqDifferential(t *testing.T) {
	postqueue := peers.Require(t, "postqueue")
	postsuper := peers.Require(t, "postsuper")
	closed := peers.FreePort(t)
	// A server that answers MAIL with a long 451 gives a reason longer than the 76 columns mailq
	// right-aligns in.
	longText := "4.7.1 " + strings.Repeat("greylisted for a while, ", 4) + "please try again later"
	slow := slowServer(t, "451 "+longText)
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost:   fmt.Sprintf("[127.0.0.1]:%d", closed),
		ExtraMainCf: "transport_maps = inline:{ {slow.example = smtp:" + slow + "} }",
	})
	etc := filepath.Join(pf.Dir(), "etc")
	send := func(from string, to ...string) {
		t.Helper()
		c, err := smtp.Dial(pf.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail(from); err != nil {
			t.Fatal(err)
		}
		for _, r := range to {
			if err := c.Rcpt(r); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "Subject: differential\r\n\r\nbody\r\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
	}
	send("alice@example.org", "bob@example.net")
	send("", "carol@example.com")
	send("dave@example.org", "erin@slow.example")
	send("frank@example.org", "gina@example.net")
	pq := func(flag string) string {
		out, err := exec.Command(postqueue, "-c", etc, flag).Output()
		if err != nil {
			t.Fatalf("postqueue %s: %v", flag, err)
		}
		return string(out)
	}
	type jsonMsg struct {
		Queue      string `json:"queue_name"`
		ID         string `json:"queue_id"`
		Arrival    int64  `json:"arrival_time"`
		Size       int64  `json:"message_size"`
		Sender     string `json:"sender"`
		Recipients []struct {
			Address string `json:"address"`
			Reason  string `json:"delay_reason"`
		} `json:"recipients"`
	}
	var msgs []jsonMsg
	peers.WaitFor(t, 60*time.Second, func() bool {
		msgs = nil
		for _, line := range strings.Split(strings.TrimSpace(pq("-j")), "\n") {
			var m jsonMsg
			if json.Unmarshal([]byte(line), &m) != nil || m.Queue != "deferred" || m.Recipients[0].Reason == "" {
				return false
			}
			msgs = append(msgs, m)
		}
		return len(msgs) == 4
	}, "four deferred messages in Postfix's queue")
	var held string
	for _, m := range msgs {
		if m.Sender == "frank@example.org" {
			held = m.ID
		}
	}
	if out, err := exec.Command(postsuper, "-c", etc, "-h", held).CombinedOutput(); err != nil {
		t.Fatalf("postsuper -h: %v: %s", err, out)
	}
	wantP, wantJ := pq("-p"), pq("-j")

	dir, _, st := queueSetup(t, testdb.SQLiteURL(t))
	for _, m := range msgs {
		sender := m.Sender
		if sender == "MAILER-DAEMON" {
			sender = ""
		}
		var rcpts, reasons []string
		for _, r := range m.Recipients {
			rcpts = append(rcpts, r.Address)
			reasons = append(reasons, r.Reason)
		}
		put(t, st, m.ID, sender, time.Unix(m.Arrival, 0), strings.Repeat("x", int(m.Size)), rcpts, reasons...)
	}
	if _, err := adminOf(t, st).MessagesHold(context.Background(), []string{held}); err != nil {
		t.Fatal(err)
	}
	gotP, _, _ := mtactl(t, "-c", dir, "queue", "list")
	gotJ, _, _ := mtactl(t, "-c", dir, "queue", "list", "-j")
	if a, b := mailqBlocks(gotP), mailqBlocks(wantP); !slices.Equal(a, b) {
		t.Errorf("mailq differs from Postfix's.\nours:\n%s\nPostfix:\n%s", gotP, wantP)
	}
	if !strings.Contains(wantP, "\n(host 127.0.0.1[127.0.0.1] said: 451 "+longText) || !strings.Contains(wantP, "!") || !strings.Contains(wantP, "MAILER-DAEMON") {
		t.Errorf("Postfix's listing lacks the cases the test means to compare:\n%s", wantP)
	}
	sortLines := func(s string) []string { l := strings.Split(strings.TrimSpace(s), "\n"); slices.Sort(l); return l }
	if !slices.Equal(sortLines(gotJ), sortLines(wantJ)) {
		t.Errorf("postqueue -j differs from Postfix's.\nours:\n%s\nPostfix:\n%s", gotJ, wantJ)
	}
}

// mailqBlocks splits a mailq listing into its heading, its sorted message blocks and its footer.
func mailqBlocks(s string) []string {
	parts := strings.Split(s, "\n\n")
	if len(parts) < 2 {
		return parts
	}
	head, rest := strings.SplitN(parts[0], "\n", 2), parts[1:len(parts)-1]
	blocks := append([]string{head[1]}, rest...)
	slices.Sort(blocks)
	return append(append([]string{head[0]}, blocks...), parts[len(parts)-1])
}

// slowServer is an SMTP server on 127.0.0.1 that answers every MAIL FROM with reply; it returns its
// "[127.0.0.1]:port" and stops at cleanup.
func slowServer(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "220 slow.example ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "MAIL"):
						fmt.Fprintf(c, "%s\r\n", reply)
					case strings.HasPrefix(cmd, "QUIT"):
						fmt.Fprintf(c, "221 bye\r\n")
						return
					default:
						fmt.Fprintf(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	return "[127.0.0.1]:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
