package lmtp

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/transport"
)

const testMessage = "From: sender@example.net\r\nTo: ann@example.org\r\nSubject: lmtp test\r\nMessage-ID: <%s@example.net>\r\n\r\nHello over LMTP.\r\n.leading dot\r\n"

// request builds a request for one message to addrs.
func request(nexthop, id string, addrs ...string) *transport.Delivery {
	body := fmt.Sprintf(testMessage, id)
	d := &transport.Delivery{
		QueueID: id, Sender: "sender@example.net", Nexthop: nexthop, Size: int64(len(body)),
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}
	for i, a := range addrs {
		d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: a})
	}
	return d
}

func newTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "mx.test"
	}
	tr := New(cfg)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestDovecotPerRecipientReplies delivers one message to a mailbox, an
// unknown user and a user over quota: Dovecot refuses the unknown one at
// RCPT (bounced, with its own 550 text) and the full one after the dot
// (452: deferred), and saves the message for the first.
func TestDovecotPerRecipientReplies(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@example.org"}, FullUsers: []string{"full@example.org"}})
	tr := newTransport(t, Config{})
	d := request("inet:"+dc.Addr(), "Q1", "ann@example.org", "nobody@example.org", "full@example.org")
	rs := tr.Deliver(context.Background(), d)

	relay := fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", dc.Port())
	if rs[0].Status != transport.Sent || rs[0].DSN != "2.0.0" || rs[0].Relay != relay || rs[0].ConnUse != 1 ||
		!strings.HasPrefix(rs[0].Text, "250 2.0.0 <ann@example.org> ") || !strings.HasSuffix(rs[0].Text, " Saved") {
		t.Errorf("ann: %+v", rs[0])
	}
	wantUnknown := "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@example.org> User doesn't exist: nobody@example.org (in reply to RCPT TO command)"
	if rs[1].Status != transport.Bounced || rs[1].DSN != "5.1.1" || rs[1].Text != wantUnknown || rs[1].Relay != relay {
		t.Errorf("nobody: %+v\nwant text %q", rs[1], wantUnknown)
	}
	wantFull := "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full@example.org> Quota exceeded (mailbox for user is full) (in reply to end of DATA command)"
	if rs[2].Status != transport.Deferred || rs[2].DSN != "4.2.2" || rs[2].Text != wantFull {
		t.Errorf("full: %+v\nwant text %q", rs[2], wantFull)
	}
	for i, r := range rs {
		if r.RecipientID != d.Recipients[i].ID {
			t.Errorf("result %d is for recipient %d", i, r.RecipientID)
		}
	}
	msgs := dc.Messages("ann@example.org")
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Message-ID: <Q1@example.net>") || !strings.Contains(msgs[0], "\n.leading dot") {
		t.Fatalf("ann's mailbox: %q", msgs)
	}
	if got := dc.Messages("full@example.org"); len(got) != 0 {
		t.Errorf("full's mailbox has %d messages", len(got))
	}
}

// TestDovecotUnixSocketReuse delivers twice over the UNIX socket: the log
// names the socket as Postfix does, and the second delivery reuses the
// cached session.
func TestDovecotUnixSocketReuse(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@example.org", "bob@example.org"}})
	tr := newTransport(t, Config{IdleTimeout: time.Minute})
	nexthop := "unix:" + dc.Socket()
	relay := "mx.test[" + dc.Socket() + "]"
	for n, id := range []string{"U1", "U2"} {
		rs := tr.Deliver(context.Background(), request(nexthop, id, "ann@example.org", "bob@example.org"))
		for _, r := range rs {
			if r.Status != transport.Sent || r.Relay != relay || r.ConnUse != n+1 {
				t.Errorf("delivery %s: %+v, want sent via %s with conn_use %d", id, r, relay, n+1)
			}
		}
		if got := tr.Idle(nexthop); got != 1 {
			t.Errorf("after delivery %s: %d idle sessions, want 1", id, got)
		}
	}
	for _, u := range []string{"ann@example.org", "bob@example.org"} {
		if got := len(dc.Messages(u)); got != 2 {
			t.Errorf("%s has %d messages, want 2", u, got)
		}
	}
	if got := strings.Count(dc.Log(), "Connect from local"); got != 1 {
		t.Errorf("Dovecot saw %d connections, want 1 (reused)", got)
	}
}

// TestDovecotStaleCachedSession: a cached session that the server closed
// meanwhile is noticed before anything was accepted, and the delivery goes
// through a new connection.
func TestDovecotStaleCachedSession(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@example.org"}})
	tr := newTransport(t, Config{IdleTimeout: time.Minute})
	nexthop := "inet:" + dc.Addr()
	if rs := tr.Deliver(context.Background(), request(nexthop, "S1", "ann@example.org")); rs[0].Status != transport.Sent {
		t.Fatalf("first delivery: %+v", rs[0])
	}
	s, ok := tr.pool.Get(tr.mustKey(t, nexthop))
	if !ok {
		t.Fatal("no cached session")
	}
	s.conn.Conn.Close() // as if the server had dropped the idle client
	tr.pool.Put(s.key, s)
	rs := tr.Deliver(context.Background(), request(nexthop, "S2", "ann@example.org"))
	if rs[0].Status != transport.Sent || rs[0].ConnUse != 1 {
		t.Errorf("after a stale session: %+v, want sent on a fresh connection", rs[0])
	}
	if got := len(dc.Messages("ann@example.org")); got != 2 {
		t.Errorf("ann has %d messages, want 2", got)
	}
}

func (t *Transport) mustKey(tb testing.TB, nexthop string) string {
	d, err := parseNexthop(nexthop, &t.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return d.key()
}

func TestConnectFailures(t *testing.T) {
	tr := newTransport(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	missing := filepath.Join(t.TempDir(), "no-such-socket")
	for _, c := range []struct{ nexthop, dsn, text string }{
		{fmt.Sprintf("inet:127.0.0.1:%d", port), "4.4.1", fmt.Sprintf("connect to 127.0.0.1[127.0.0.1]:%d: Connection refused", port)},
		{"unix:" + missing, "4.4.1", "connect to " + missing + ": No such file or directory"},
		{"inet:[127.0.0.1", "4.3.5", `bad LMTP destination "inet:[127.0.0.1": missing ']'`},
	} {
		rs := tr.Deliver(context.Background(), request(c.nexthop, "C1", "ann@example.org", "bob@example.org"))
		for _, r := range rs {
			if r.Status != transport.Deferred || r.DSN != c.dsn || r.Text != c.text || r.Relay != "none" {
				t.Errorf("%s: %+v\nwant deferred %s %q relay=none", c.nexthop, r, c.dsn, c.text)
			}
		}
	}
}

// TestGreetingTimeout: a server that accepts and never speaks fails the
// delivery after lmtp_lhlo_timeout, worded as Postfix does.
func TestGreetingTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	tr := newTransport(t, Config{LHLOTimeout: 200 * time.Millisecond})
	rs := tr.Deliver(context.Background(), request("inet:"+ln.Addr().String(), "T1", "ann@example.org"))
	want := "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"
	if rs[0].Status != transport.Deferred || rs[0].DSN != "4.4.2" || rs[0].Text != want {
		t.Errorf("%+v\nwant deferred 4.4.2 %q", rs[0], want)
	}
}

func TestParseNexthop(t *testing.T) {
	cfg := &Config{}
	cfg.setDefaults()
	for _, c := range []struct{ in, key string }{
		{"unix:/run/dovecot/lmtp", "unix:/run/dovecot/lmtp"},
		{"unix:private/dovecot-lmtp", "unix:/var/spool/postfix/private/dovecot-lmtp"},
		{"inet:127.0.0.1:2424", "inet:127.0.0.1:2424"},
		{"inet:[::1]:2424", "inet:::1:2424"},
		{"[ipv6:::1]", "inet:::1:24"},
		{"Mail.Example:smtp", "inet:mail.example:25"},
		{"mail.example", "inet:mail.example:24"},
	} {
		d, err := parseNexthop(c.in, cfg)
		if err != nil || d.key() != c.key {
			t.Errorf("parseNexthop(%q) = %q, %v; want %q", c.in, d.key(), err, c.key)
		}
	}
	for _, bad := range []string{"unix:", "inet:", "[host", "host:0", "host:nosuchservice"} {
		if _, err := parseNexthop(bad, cfg); err == nil {
			t.Errorf("parseNexthop(%q): no error", bad)
		}
	}
}

// TestDovecotVerifyProbe: an address verification probe ends at RCPT TO:
// Dovecot's answers decide, nothing is saved, and the session stays in
// step for the next delivery.
func TestDovecotVerifyProbe(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@example.org"}})
	tr := newTransport(t, Config{})
	d := request("inet:"+dc.Addr(), "P1", "ann@example.org", "nobody@example.org")
	d.VerifyOnly = true
	rs := tr.Deliver(context.Background(), d)
	if rs[0].Status != transport.Sent || !strings.HasPrefix(rs[0].Text, "250 2.1.5 ") {
		t.Errorf("ann: %+v", rs[0])
	}
	if rs[1].Status != transport.Bounced || rs[1].DSN != "5.1.1" || !strings.HasSuffix(rs[1].Text, "(in reply to RCPT TO command)") {
		t.Errorf("nobody: %+v", rs[1])
	}
	if got := dc.Messages("ann@example.org"); len(got) != 0 {
		t.Errorf("the probe was saved: %q", got)
	}
	rs = tr.Deliver(context.Background(), request("inet:"+dc.Addr(), "Q2", "ann@example.org"))
	if rs[0].Status != transport.Sent || rs[0].ConnUse != 2 {
		t.Errorf("mail after the probe: %+v", rs[0])
	}
	if got := dc.Messages("ann@example.org"); len(got) != 1 {
		t.Errorf("%d messages after the probe and one mail, want 1", len(got))
	}
}
