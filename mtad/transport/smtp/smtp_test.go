package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"sqlmta/mtad/transport"
)

func TestParseNexthop(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		noMX bool
		bad  bool
	}{
		{"[127.0.0.1]:2525", "127.0.0.1", 2525, true, false},
		{"[mail.example.com]", "mail.example.com", 25, true, false},
		{"[ipv6:::1]:26", "::1", 26, true, false},
		{"example.com", "example.com", 25, false, false},
		{"example.com:587", "example.com", 587, false, false},
		{"example.com:submission", "example.com", 587, false, false},
		{"[unterminated", "", 0, false, true},
		{"host:99999", "", 0, false, true},
		{"", "", 0, false, true},
	} {
		d, err := parseNexthop(tc.in, 25)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil || d.host != tc.host || d.port != tc.port || d.noMX != tc.noMX {
			t.Errorf("%q: got %+v, %v; want %s %d %v", tc.in, d, err, tc.host, tc.port, tc.noMX)
		}
	}
}

func TestFormatReply(t *testing.T) {
	got := formatReply(550, gosmtp.EnhancedCode{5, 1, 1}, "first\nsecond")
	if want := "550-5.1.1 first 550 5.1.1 second"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := formatReply(451, gosmtp.EnhancedCodeNotSet, "try later"); got != "451 try later" {
		t.Errorf("got %q", got)
	}
	if got := replyDSN(450, gosmtp.EnhancedCode{5, 7, 1}); got != "4.7.1" {
		t.Errorf("class not forced: %q", got)
	}
}

// TestSinkReuse delivers several messages to Postfix's smtp-sink over one
// cached connection and checks the sink got every one of them.
func TestSinkReuse(t *testing.T) {
	sink, err := exec.LookPath("smtp-sink")
	if err != nil {
		sink = "/usr/sbin/smtp-sink"
		if _, err := os.Stat(sink); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("smtp-sink not installed (apt-get install postfix)")
			}
			t.Skip("smtp-sink not installed")
		}
	}
	// smtp-sink writes as nobody: its directory must be reachable by
	// nobody, which t.TempDir (under a 0700 parent) is not.
	dir, err := os.MkdirTemp("", "sqlmta-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(dir, "dump")
	dumped := func() []byte {
		var all []byte
		files, _ := filepath.Glob(dump + "*")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			all = append(all, b...)
		}
		return all
	}
	port := freePort(t)
	args := []string{"-D", dump, fmt.Sprintf("127.0.0.1:%d", port), "10"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(sink, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", port)
	// Wait for the sink to listen: the first delivery defers until it does.
	waitFor(t, "smtp-sink to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	const n = 4
	for i := 1; i <= n; i++ {
		res := tr.Deliver(context.Background(), message(nexthop, fmt.Sprintf("rcpt%d@dest.test", i), "other@dest.test"))
		if len(res) != 2 {
			t.Fatalf("got %d results", len(res))
		}
		for _, r := range res {
			if r.Status != transport.Sent || !strings.HasPrefix(r.Text, "250 ") || r.DSN[0] != '2' {
				t.Fatalf("message %d: %+v", i, r)
			}
			if want := fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", port); r.Relay != want {
				t.Errorf("relay %q, want %q", r.Relay, want)
			}
			if r.ConnUse != i {
				t.Errorf("message %d: conn_use=%d, want %d", i, r.ConnUse, i)
			}
		}
	}
	tr.Close()
	waitFor(t, "the sink to dump every message", func() bool {
		return countLines(dumped(), "Message-Id:") >= n
	})
	b := dumped()
	if got := countLines(b, "Message-Id:"); got != n {
		t.Errorf("sink has %d messages, want %d", got, n)
	}
}

func TestPerRecipientRefusals(t *testing.T) {
	ts := startServer(t, false, nil)
	ts.rcptErr["bad@dest.test"] = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "<bad@dest.test>: Recipient address rejected: User unknown"}
	ts.rcptErr["full@dest.test"] = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "<full@dest.test>: Mailbox full"}
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()

	d := message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "good@dest.test", "bad@dest.test", "full@dest.test", "good2@dest.test")
	d.Recipients[0].Notify = "SUCCESS,FAILURE"
	d.Recipients[0].ORCPT = "rfc822;Good+2BX@dest.test"
	d.EnvID = "env-1"
	d.Ret = "HDRS"
	res := tr.Deliver(context.Background(), d)

	relay := fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", ts.port)
	want := []struct {
		st   transport.Status
		dsn  string
		text string
	}{
		{transport.Sent, "2.0.0", "250 2.0.0 OK: queued"},
		{transport.Bounced, "5.1.1", "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@dest.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)"},
		{transport.Deferred, "4.2.2", "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full@dest.test>: Mailbox full (in reply to RCPT TO command)"},
		{transport.Sent, "2.0.0", "250 2.0.0 OK: queued"},
	}
	for i, w := range want {
		r := res[i]
		if r.RecipientID != int64(i+1) || r.Status != w.st || r.DSN != w.dsn || r.Text != w.text || r.Relay != relay {
			t.Errorf("recipient %d: got %+v\nwant %v %s %q relay %s", i, r, w.st, w.dsn, w.text, relay)
		}
	}
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.from != "alice@sender.test" || strings.Join(m.rcpts, ",") != "good@dest.test,good2@dest.test" {
		t.Errorf("envelope %q %v", m.from, m.rcpts)
	}
	if !strings.Contains(m.data, "\r\n.leading dot\r\n") || !strings.HasPrefix(m.data, "From: alice@sender.test\r\n") {
		t.Errorf("content not transparent: %q", m.data)
	}
	if m.mail.EnvelopeID != "env-1" || m.mail.Return != gosmtp.DSNReturnHeaders || m.mail.Size != d.Size {
		t.Errorf("MAIL options %+v", m.mail)
	}
	if o := m.ropts[0]; len(o.Notify) != 2 || o.OriginalRecipient != "Good+X@dest.test" {
		t.Errorf("RCPT options %+v", o)
	}
}

func TestEndOfDataRefusal(t *testing.T) {
	for _, tc := range []struct {
		err *gosmtp.SMTPError
		st  transport.Status
		dsn string
	}{
		{&gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Spam rejected"}, transport.Bounced, "5.7.1"},
		{&gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}, transport.Deferred, "4.3.0"},
	} {
		ts := startServer(t, false, nil)
		ts.dataErr = tc.err
		tr := New(Config{HeloName: "client.test"})
		res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "a@dest.test", "b@dest.test"))
		tr.Close()
		wantText := fmt.Sprintf("host 127.0.0.1[127.0.0.1] said: %d %s %s (in reply to end of DATA command)", tc.err.Code, tc.dsn, tc.err.Message)
		for _, r := range res {
			if r.Status != tc.st || r.DSN != tc.dsn || r.Text != wantText {
				t.Errorf("got %+v, want %v %s %q", r, tc.st, tc.dsn, wantText)
			}
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	port := freePort(t)
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", port), "a@dest.test"))
	want := fmt.Sprintf("connect to 127.0.0.1[127.0.0.1]:%d: Connection refused", port)
	if r := res[0]; r.Status != transport.Deferred || r.DSN != "4.4.1" || r.Text != want || r.Relay != "none" || r.ConnUse != 0 {
		t.Errorf("got %+v, want text %q", r, want)
	}
}

func TestGreetingRefused(t *testing.T) {
	l := listenRaw(t, "554 5.7.1 go away\r\n")
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", l), "a@dest.test"))
	// smtp_skip_5xx_greeting: a 5xx banner defers.
	want := "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away"
	if r := res[0]; r.Status != transport.Deferred || r.DSN != "4.7.1" || r.Text != want || r.Relay != fmt.Sprintf("127.0.0.1[127.0.0.1]:%d", l) {
		t.Errorf("got %+v, want %q", r, want)
	}
}

func TestMXLookup(t *testing.T) {
	ts := startServer(t, false, nil)
	dnsAddr := dnsServer(t, `
dest.test.     MX 10 mx1.dest.test.
dest.test.     MX 20 mx2.dest.test.
mx1.dest.test. A 127.0.0.2
mx2.dest.test. A 127.0.0.1
noMX.test.     A 127.0.0.1
nodata.test.   TXT "x"
nullmx.test.   MX 0 .
`, "broken.test")
	tr := New(Config{HeloName: "client.test", Port: ts.port, DNSServer: dnsAddr})
	defer tr.Close()

	// mx1 (127.0.0.2) refuses connections; the transport goes on to mx2.
	res := tr.Deliver(context.Background(), message("dest.test", "a@dest.test"))
	if r := res[0]; r.Status != transport.Sent || r.Relay != fmt.Sprintf("mx2.dest.test[127.0.0.1]:%d", ts.port) {
		t.Errorf("MX delivery: %+v", r)
	}
	// No MX: the domain's A record.
	res = tr.Deliver(context.Background(), message("nomx.test", "a@nomx.test"))
	if r := res[0]; r.Status != transport.Sent || r.Relay != fmt.Sprintf("nomx.test[127.0.0.1]:%d", ts.port) {
		t.Errorf("A fallback: %+v", r)
	}
	if n := len(ts.messages()); n != 2 {
		t.Errorf("server got %d messages", n)
	}

	for _, tc := range []struct {
		nexthop string
		st      transport.Status
		dsn     string
		text    string
	}{
		{"nx.test", transport.Bounced, "5.4.4", "Host or domain name not found. Name service error for name=nx.test type=A: Host not found"},
		{"nodata.test", transport.Bounced, "5.4.4", "Host or domain name not found. Name service error for name=nodata.test type=A: Host found but no data record of requested type"},
		{"broken.test", transport.Deferred, "4.4.3", "Host or domain name not found. Name service error for name=broken.test type=MX: Host not found, try again"},
		{"nullmx.test", transport.Bounced, "5.1.0", "Domain nullmx.test does not accept mail (nullMX)"},
		{"[nx.test]", transport.Bounced, "5.4.4", "Host or domain name not found. Name service error for name=nx.test type=A: Host not found"},
	} {
		res := tr.Deliver(context.Background(), message(tc.nexthop, "a@"+tc.nexthop))
		if r := res[0]; r.Status != tc.st || r.DSN != tc.dsn || r.Text != tc.text || r.Relay != "none" {
			t.Errorf("%s: got %+v\nwant %v %s %q", tc.nexthop, r, tc.st, tc.dsn, tc.text)
		}
	}
}

// TestSoftRcptNextMX: a recipient refused with 4xx by the first MX host is
// tried again at the next one; a 5xx is final at once.
func TestSoftRcptNextMX(t *testing.T) {
	a := startServer(t, false, nil)
	b := startServer(t, false, nil)
	a.rcptErr["soft@dest.test"] = &gosmtp.SMTPError{Code: 450, EnhancedCode: gosmtp.EnhancedCode{4, 2, 0}, Message: "later"}
	a.rcptErr["hard@dest.test"] = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no"}
	// The two servers listen on different ephemeral ports, which one MX
	// list cannot express, so the two sessions are driven directly.
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	dl := &delivery{d: message("x", "ok@dest.test", "soft@dest.test", "hard@dest.test"), start: time.Now()}
	dl.res = make([]transport.Result, 3)
	dl.pending = []int{0, 1, 2}
	s, o, _ := tr.connect(context.Background(), target{name: "a.test", ip: []byte{127, 0, 0, 1}, port: a.port}, "k", nil)
	if s == nil {
		t.Fatalf("connect: %+v", o)
	}
	s.uses = 1
	tr.transact(context.Background(), s, dl, false, time.Now())
	tr.release(s, true)
	if len(dl.pending) != 1 || dl.pending[0] != 1 {
		t.Fatalf("pending %v, want [1]", dl.pending)
	}
	if dl.res[0].Status != transport.Sent || dl.res[2].Status != transport.Bounced {
		t.Errorf("results %+v", dl.res)
	}
	s, o, _ = tr.connect(context.Background(), target{name: "b.test", ip: []byte{127, 0, 0, 1}, port: b.port}, "k2", nil)
	if s == nil {
		t.Fatalf("connect: %+v", o)
	}
	s.uses = 1
	tr.transact(context.Background(), s, dl, true, time.Now())
	tr.release(s, true)
	if len(dl.pending) != 0 || dl.res[1].Status != transport.Sent || !strings.HasPrefix(dl.res[1].Relay, "b.test[") {
		t.Errorf("second host: pending %v, %+v", dl.pending, dl.res[1])
	}
	if m := b.messages(); len(m) != 1 || m[0].rcpts[0] != "soft@dest.test" {
		t.Errorf("second host got %+v", m)
	}
}

func TestSTARTTLS(t *testing.T) {
	ts := startServer(t, true, nil)
	tr := New(Config{HeloName: "client.test", TLSLevel: TLSMay})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ts.port)
	for i := 1; i <= 2; i++ {
		res := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))
		if r := res[0]; r.Status != transport.Sent || r.ConnUse != i {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	msgs := ts.messages()
	if len(msgs) != 2 || !msgs[0].tls || !msgs[1].tls {
		t.Errorf("messages not over TLS: %+v", msgs)
	}
	// A server without STARTTLS still gets the mail, in plaintext.
	plain := startServer(t, false, nil)
	res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", plain.port), "a@dest.test"))
	if r := res[0]; r.Status != transport.Sent {
		t.Fatalf("plaintext fallback: %+v", r)
	}
	if m := plain.messages(); len(m) != 1 || m[0].tls {
		t.Errorf("plaintext server got %+v", m)
	}
}

// TestTLSLevels: "none" never starts TLS; "encrypt" delivers over TLS and
// defers, with Postfix's reasons, when the server does not offer STARTTLS
// or refuses it.
func TestTLSLevels(t *testing.T) {
	withTLS := startServer(t, true, nil)
	plain := startServer(t, false, nil)
	to := func(port int) string { return fmt.Sprintf("[127.0.0.1]:%d", port) }

	none := New(Config{HeloName: "client.test", TLSLevel: TLSNone})
	defer none.Close()
	if r := none.Deliver(context.Background(), message(to(withTLS.port), "a@dest.test"))[0]; r.Status != transport.Sent {
		t.Fatalf("none: %+v", r)
	}
	if m := withTLS.messages(); len(m) != 1 || m[0].tls {
		t.Errorf("level none: server got %+v", m)
	}

	enc := New(Config{HeloName: "client.test", TLSLevel: TLSEncrypt})
	defer enc.Close()
	if r := enc.Deliver(context.Background(), message(to(withTLS.port), "b@dest.test"))[0]; r.Status != transport.Sent {
		t.Fatalf("encrypt: %+v", r)
	}
	if m := withTLS.messages(); len(m) != 2 || !m[1].tls {
		t.Errorf("level encrypt: server got %+v", m)
	}
	r := enc.Deliver(context.Background(), message(to(plain.port), "c@dest.test"))[0]
	want := "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
	if r.Status != transport.Deferred || r.DSN != "4.7.4" || r.Text != want {
		t.Errorf("encrypt, not offered: %+v; want 4.7.4 %q", r, want)
	}
	if m := plain.messages(); len(m) != 0 {
		t.Errorf("encrypt sent in plaintext: %+v", m)
	}

	// A server that offers STARTTLS and then refuses it.
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
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				io.WriteString(c, "220 refuser.test ESMTP\r\n")
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch strings.ToUpper(strings.Fields(l + " x")[0]) {
					case "EHLO":
						io.WriteString(c, "250-refuser.test\r\n250 STARTTLS\r\n")
					case "STARTTLS":
						io.WriteString(c, "454 4.7.0 TLS not available due to local problem\r\n")
					case "QUIT":
						io.WriteString(c, "221 2.0.0 Bye\r\n")
						return
					default:
						io.WriteString(c, "502 5.5.2 Error\r\n")
					}
				}
			}()
		}
	}()
	r = enc.Deliver(context.Background(), message(to(ln.Addr().(*net.TCPAddr).Port), "d@dest.test"))[0]
	want = "TLS is required, but host 127.0.0.1[127.0.0.1] refused to start TLS: 454 4.7.0 TLS not available due to local problem"
	if r.Status != transport.Deferred || r.DSN != "4.7.0" || r.Text != want {
		t.Errorf("encrypt, refused: %+v; want 4.7.0 %q", r, want)
	}
}

// TestReuseDeadConnection: a cached session the server has dropped is
// replaced by a fresh connection, and the mail goes out once.
func TestReuseDeadConnection(t *testing.T) {
	ts := startServer(t, false, func(s *gosmtp.Server) { s.ReadTimeout = 300 * time.Millisecond })
	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ts.port)
	res := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))
	if res[0].Status != transport.Sent || res[0].ConnUse != 1 {
		t.Fatalf("first: %+v", res[0])
	}
	waitFor(t, "the server to drop the idle session", func() bool { _, out := ts.counts(); return out >= 1 })
	res = tr.Deliver(context.Background(), message(nexthop, "b@dest.test"))
	if res[0].Status != transport.Sent || res[0].ConnUse != 1 {
		t.Fatalf("second: %+v", res[0])
	}
	if n := len(ts.messages()); n != 2 {
		t.Errorf("server got %d messages, want 2", n)
	}
}

func TestIdleTimeoutClosesSession(t *testing.T) {
	ts := startServer(t, false, nil)
	tr := New(Config{HeloName: "client.test", IdleTimeout: 50 * time.Millisecond})
	defer tr.Close()
	res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "a@dest.test"))
	if res[0].Status != transport.Sent {
		t.Fatalf("%+v", res[0])
	}
	waitFor(t, "the idle session to be closed", func() bool { _, out := ts.counts(); return out == 1 })
}

func TestSizeLimit(t *testing.T) {
	ts := startServer(t, false, func(s *gosmtp.Server) { s.MaxMessageBytes = 10 })
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	d := message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "a@dest.test")
	res := tr.Deliver(context.Background(), d)
	want := fmt.Sprintf("message size %d exceeds size limit 10 of server 127.0.0.1[127.0.0.1]", d.Size)
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.3.4" || r.Text != want {
		t.Errorf("got %+v", r)
	}
}

func TestLocalDataError(t *testing.T) {
	ts := startServer(t, false, nil)
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	d := message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "a@dest.test")
	d.Open = func(context.Context) (io.ReadCloser, error) { return nil, errors.New("store gone") }
	res := tr.Deliver(context.Background(), d)
	if r := res[0]; r.Status != transport.Deferred || r.DSN != "4.3.0" || !strings.HasPrefix(r.Text, "local data error while talking to 127.0.0.1[127.0.0.1]") {
		t.Errorf("got %+v", r)
	}
}

// TestConcurrentDeliveries shares the cache between goroutines: every mail
// arrives once and the cache never holds more than MaxIdlePerDest sessions.
func TestConcurrentDeliveries(t *testing.T) {
	ts := startServer(t, false, nil)
	tr := New(Config{HeloName: "client.test", MaxIdlePerDest: 2, IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ts.port)
	const n = 24
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := tr.Deliver(context.Background(), message(nexthop, fmt.Sprintf("r%d@dest.test", i)))
			if res[0].Status != transport.Sent {
				t.Errorf("%d: %+v", i, res[0])
			}
		}(i)
	}
	wg.Wait()
	if got := len(ts.messages()); got != n {
		t.Errorf("server got %d messages, want %d", got, n)
	}
	key := "127.0.0.1|" + fmt.Sprint(ts.port) + "|true"
	if idle := tr.pool.idleCount(key); idle < 1 || idle > 2 {
		t.Errorf("%d idle sessions, want 1..2", idle)
	}
}

// TestCanceledContext: a delivery cut short by shutdown is deferred, never
// reported sent.
func TestCanceledContext(t *testing.T) {
	ts := startServer(t, false, nil)
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	d := message(fmt.Sprintf("[127.0.0.1]:%d", ts.port), "a@dest.test")
	d.Open = func(context.Context) (io.ReadCloser, error) {
		cancel() // the shutdown arrives while the message is being sent
		return io.NopCloser(strings.NewReader("Subject: x\r\n\r\nbody\r\n")), nil
	}
	res := tr.Deliver(ctx, d)
	if r := res[0]; r.Status != transport.Deferred {
		t.Errorf("got %+v", r)
	}
}

// TestDisableDNSLookups: with disable_dns_lookups the client asks no DNS
// server (this one fails every query): the domain is the host, looked up
// in /etc/hosts. smtp_host_lookup=native does the same for the host
// addresses while MX records still come from DNS.
func TestDisableDNSLookups(t *testing.T) {
	ts := startServer(t, false, nil)
	broken := dnsServer(t, "", "localhost")
	nexthop := fmt.Sprintf("localhost:%d", ts.port)

	tr := New(Config{HeloName: "client.test", DNSServer: broken})
	r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]
	tr.Close()
	if r.Status != transport.Deferred || r.DSN != "4.4.3" {
		t.Errorf("with DNS: %+v, want the SERVFAIL deferral", r)
	}

	tr = New(Config{HeloName: "client.test", DNSServer: broken, NoDNS: true})
	r = tr.Deliver(context.Background(), message(nexthop, "b@dest.test"))[0]
	tr.Close()
	if r.Status != transport.Sent || !strings.HasPrefix(r.Relay, "localhost[127.0.0.1]:") {
		t.Errorf("without DNS: %+v, want sent to localhost[127.0.0.1]", r)
	}

	// Native host lookup: MX from DNS, the exchanger's address from /etc/hosts.
	zone := dnsServer(t, "mx.test. MX 10 localhost.\n")
	tr = New(Config{HeloName: "client.test", DNSServer: zone, HostLookup: []string{"native"}, Port: ts.port})
	r = tr.Deliver(context.Background(), message("mx.test", "c@mx.test"))[0]
	tr.Close()
	if r.Status != transport.Sent || !strings.HasPrefix(r.Relay, "localhost[127.0.0.1]:") {
		t.Errorf("native host lookup: %+v, want sent to localhost[127.0.0.1]", r)
	}
	if n := len(ts.messages()); n != 2 {
		t.Errorf("server got %d messages, want 2", n)
	}
}
