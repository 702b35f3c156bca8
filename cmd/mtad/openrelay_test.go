package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// openRelayMainCf is the quick-start relay policy with the test client
// (127.0.0.1) outside mynetworks: only mail for mx.test.example and
// localhost (and this host's own address literals, which Postfix treats as
// local because they are in inet_interfaces) may be accepted.
var openRelayMainCf = []string{
	"mynetworks = 192.0.2.0/24",
	"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
	"mydestination = mx.test.example, localhost",
	"virtual_mailbox_domains =",
	// Local recipients are checked in the password file only: the alias
	// table would need newaliases (mtad) or /etc/aliases.db (Postfix).
	"alias_maps =",
}

// relayTrick is one RCPT TO address and the reply Postfix 3.7 gives it from
// a client outside mynetworks.
type relayTrick struct {
	name, rcpt, want string
}

// mtadGaps names known differences from Postfix, by address: mtad must
// still refuse such an address (5xx), but may do it with another reply.
var mtadGaps = map[string]string{}

// relayDenied is reject_unauth_destination's reply. Postfix echoes the
// address in its internal form: quotes removed and a source route dropped.
func relayDenied(rcpt string) string { return "554 5.7.1 <" + rcpt + ">: Relay access denied" }

// relayTricks lists every relay trick with Postfix's reply. Every one that
// names remote.example must be refused as relaying: trivial-rewrite strips
// the local domain and then finds user@remote.example in the local part
// (percent hack, bang path, quoted or bare "@"), which resolve flags as
// sender-specified routing; reject_unauth_destination refuses such
// addresses even when the visible domain is local.
var relayTricks = []relayTrick{
	{"plain", "user@remote.example", relayDenied("user@remote.example")},
	{"percent hack", "user%remote.example@mx.test.example", relayDenied("user%remote.example@mx.test.example")},
	{"bang path", "remote.example!user@mx.test.example", relayDenied("remote.example!user@mx.test.example")},
	{"source route", "@mx.test.example:user@remote.example", relayDenied("user@remote.example")},
	{"quoted local part", `"user@remote.example"@mx.test.example`, relayDenied("user@remote.example@mx.test.example")},
	{"double at", "user@remote.example@mx.test.example", relayDenied("user@remote.example@mx.test.example")},
	{"foreign address literal", "user@[192.0.2.99]", relayDenied("user@[192.0.2.99]")},
	{"upper case", "user@REMOTE.EXAMPLE", relayDenied("user@REMOTE.EXAMPLE")},
	{"trailing dot", "user@remote.example.", relayDenied("user@remote.example.")},
	{"local name as prefix", "user@mx.test.example.remote.example", relayDenied("user@mx.test.example.remote.example")},
	{"percent hack at own literal", "user%remote.example@[127.0.0.1]", relayDenied("user%remote.example@[127.0.0.1]")},
	// [127.0.0.1] is an address of this host, so it is a local
	// destination, not relaying: the recipient then fails the
	// local_recipient_maps check like user@mx.test.example would.
	{"own address literal", "user@[127.0.0.1]", "550 5.1.1 <user@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table"},
}

// checkTrick compares mtad's reply with want. For a known gap it asks only
// that mtad refuses, and fails once the gap is closed so the note goes too.
func checkTrick(t *testing.T, tr relayTrick, got, want string) {
	t.Helper()
	gap := mtadGaps[tr.rcpt]
	switch {
	case gap == "" && got != want:
		t.Errorf("RCPT TO:<%s>\n mtad    %q\n postfix %q", tr.rcpt, got, want)
	case gap != "" && got == want:
		t.Errorf("RCPT TO:<%s> now gets Postfix's reply; drop its mtadGaps entry", tr.rcpt)
	case gap != "" && !strings.HasPrefix(got, "5"):
		t.Errorf("RCPT TO:<%s>: mtad answers %q, want a 5xx refusal", tr.rcpt, got)
	case gap != "":
		// Passes (the refusal is asserted above); logged, not skipped, so
		// the run still counts it.
		t.Logf("known gap (mtad %q, postfix %q): %s", got, want, gap)
	}
}

// smtpConn is a raw SMTP client session that returns reply lines verbatim.
type smtpConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSMTP(t *testing.T, addr string) *smtpConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtpConn{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	if got := s.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting %q", got)
	}
	return s
}

// reply reads one reply and returns its last line without CRLF.
func (s *smtpConn) reply() string {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading reply: %v (got %q)", err, line)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}

// cmd sends one command line and returns the last line of the reply.
func (s *smtpConn) cmd(line string) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.c, "%s\r\n", line); err != nil {
		s.t.Fatal(err)
	}
	return s.reply()
}

// rcptReply opens a session, gives MAIL FROM and returns the reply to
// RCPT TO:<rcpt>. Each trick gets its own session so that the error count
// of earlier refusals cannot slow or end later ones.
func rcptReply(t *testing.T, addr, rcpt string) string {
	t.Helper()
	s := dialSMTP(t, addr)
	if got := s.cmd("EHLO client.example.org"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("EHLO: %q", got)
	}
	if got := s.cmd("MAIL FROM:<sender@example.org>"); got != "250 2.1.0 Ok" {
		t.Fatalf("MAIL FROM: %q", got)
	}
	got := s.cmd("RCPT TO:<" + rcpt + ">")
	s.cmd("QUIT")
	return got
}

// relayThenQueue sends the trick and a valid local recipient in one
// transaction and queues the message, so that a trick that got through
// would show up in the queue manager's nrcpt and delivery lines. It returns
// the trick's reply and the queue ID.
func relayThenQueue(t *testing.T, addr, rcpt string) (reply, id string) {
	t.Helper()
	s := dialSMTP(t, addr)
	if got := s.cmd("EHLO client.example.org"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("EHLO: %q", got)
	}
	if got := s.cmd("MAIL FROM:<sender@example.org>"); got != "250 2.1.0 Ok" {
		t.Fatalf("MAIL FROM: %q", got)
	}
	reply = s.cmd("RCPT TO:<" + rcpt + ">")
	// root is in the passwd table, so local_recipient_maps knows it.
	if got := s.cmd("RCPT TO:<root@mx.test.example>"); got != "250 2.1.5 Ok" {
		t.Fatalf("RCPT TO:<root@mx.test.example>: %q, want 250 2.1.5 Ok", got)
	}
	if got := s.cmd("DATA"); !strings.HasPrefix(got, "354 ") {
		t.Fatalf("DATA: %q", got)
	}
	got := s.cmd("Subject: relay test\r\n\r\n" + rcpt + "\r\n.")
	m := regexp.MustCompile(`^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("end of DATA: %q", got)
	}
	s.cmd("QUIT")
	return reply, m[1]
}

// TestOpenRelayRefused tries every known relay trick from outside
// mynetworks and expects each refused with Postfix's reply, the local
// recipient beside it accepted, and nothing for remote.example queued or
// delivered. The local copies for root go to a mailbox spool in a temporary
// directory, never the host's (today mtad defers them: it has no mbox
// delivery yet).
func TestOpenRelayRefused(t *testing.T) {
	d := startDaemon(t, testdb.SQLiteURL(t), append(openRelayMainCf, "mail_spool_directory = "+t.TempDir())...)
	var ids []string
	for _, tr := range relayTricks {
		t.Run(tr.name, func(t *testing.T) {
			reply, id := relayThenQueue(t, d.addr, tr.rcpt)
			ids = append(ids, id)
			checkTrick(t, tr, reply, tr.want)
		})
	}

	// Wait until the queue manager has handled every message, then check
	// that each had exactly the one local recipient.
	peers.WaitFor(t, 60*time.Second, func() bool {
		log := d.maillog()
		for _, id := range ids {
			if !regexp.MustCompile(id + `: to=<root@mx\.test\.example>, .*status=`).MatchString(log) {
				return false
			}
		}
		return true
	}, "a delivery attempt for every queued message")
	log := d.maillog()
	for _, id := range ids {
		if !regexp.MustCompile(id + `: from=<sender@example\.org>, size=\d+, nrcpt=1 \(queue active\)`).MatchString(log) {
			t.Errorf("%s: queued without exactly one recipient:\n%s", id, log)
		}
	}
	for _, re := range []string{
		`(?mi)^.*: [0-9A-F]+: to=<[^>]*remote\.example[^>]*>.*$`,
		`(?mi)^.*remote\.example.*status=.*$`,
		`(?mi)^.*orig_to=<[^>]*remote\.example[^>]*>.*$`,
		`(?mi)^.*\[127\.0\.0\.1\]>.*status=.*$`,
	} {
		if m := regexp.MustCompile(re).FindString(log); m != "" {
			t.Errorf("maillog shows a trick recipient queued or delivered: %s", m)
		}
	}
	want := regexp.MustCompile(`postfix/smtpd\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 <user%remote\.example@mx\.test\.example>: Relay access denied; from=<sender@example\.org> to=<user%remote\.example@mx\.test\.example> proto=ESMTP helo=<client\.example\.org>`)
	if !want.MatchString(log) {
		t.Errorf("maillog lacks the percent-hack reject line:\n%s", log)
	}
}

// TestOpenRelayMatchesPostfix sends the same tricks to a real Postfix with
// the same relay settings and expects mtad's replies to equal Postfix's, so
// the expectations in relayTricks stay honest.
func TestOpenRelayMatchesPostfix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix needs root")
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		// Nothing may be relayed; an unused port makes any leak a deferral, not a delivery.
		Relayhost:   fmt.Sprintf("[127.0.0.1]:%d", peers.FreePort(t)),
		ExtraMainCf: strings.Join(openRelayMainCf, "\n"),
	})
	d := startDaemon(t, testdb.SQLiteURL(t), openRelayMainCf...)
	for _, tr := range append(relayTricks, relayTrick{"local user", "root@mx.test.example", "250 2.1.5 Ok"}) {
		t.Run(tr.name, func(t *testing.T) {
			want := rcptReply(t, pf.Addr(), tr.rcpt)
			if want != tr.want {
				t.Errorf("Postfix answers RCPT TO:<%s> with %q; relayTricks expects %q", tr.rcpt, want, tr.want)
			}
			checkTrick(t, tr, rcptReply(t, d.addr, tr.rcpt), want)
		})
	}
}
