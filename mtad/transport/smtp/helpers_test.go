package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sqlmta/internal/testcert"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"sqlmta/mtad/transport"
)

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port nothing listens on (right now).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// message builds a Delivery whose content is a small CRLF message.
func message(nexthop string, rcpts ...string) *transport.Delivery {
	d := &transport.Delivery{
		QueueID: "4ABCDEF123",
		Sender:  "alice@sender.test",
		Nexthop: nexthop,
		Arrival: time.Now(),
	}
	for i, r := range rcpts {
		d.Recipients = append(d.Recipients, transport.Recipient{ID: int64(i + 1), Address: r})
	}
	msgID := fmt.Sprintf("<%d.%s@sender.test>", time.Now().UnixNano(), strings.Join(rcpts, "."))
	body := "From: alice@sender.test\r\nTo: " + strings.Join(rcpts, ", ") + "\r\nMessage-Id: " + msgID +
		"\r\nSubject: test\r\n\r\nHello.\r\n.leading dot\r\n"
	d.Size = int64(len(body))
	d.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(body)), nil
	}
	return d
}

// received is one message a test server accepted.
type received struct {
	from  string
	rcpts []string
	data  string
	tls   bool
	mail  *gosmtp.MailOptions
	ropts []*gosmtp.RcptOptions
}

// testServer is a go-smtp server whose answers a test scripts.
type testServer struct {
	srv  *gosmtp.Server
	port int

	mu       sync.Mutex
	rcptErr  map[string]*gosmtp.SMTPError // by recipient address
	dataErr  *gosmtp.SMTPError
	msgs     []received
	sessions int // connections opened
	logouts  int // connections closed
}

type testSession struct {
	ts  *testServer
	tls bool
	cur received
}

func (s *testSession) Reset()        { s.cur = received{} }
func (s *testSession) Logout() error { s.ts.mu.Lock(); s.ts.logouts++; s.ts.mu.Unlock(); return nil }
func (s *testSession) Mail(from string, opts *gosmtp.MailOptions) error {
	s.cur = received{from: from, tls: s.tls, mail: opts}
	return nil
}

func (s *testSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.ts.mu.Lock()
	e := s.ts.rcptErr[to]
	s.ts.mu.Unlock()
	if e != nil {
		return e
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	s.cur.ropts = append(s.cur.ropts, opts)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.dataErr != nil {
		return s.ts.dataErr
	}
	s.cur.data = string(b)
	s.ts.msgs = append(s.ts.msgs, s.cur)
	return nil
}

// startServer runs a go-smtp server on 127.0.0.1; withTLS offers STARTTLS.
func startServer(t *testing.T, withTLS bool, tweak func(*gosmtp.Server)) *testServer {
	t.Helper()
	ts := &testServer{rcptErr: map[string]*gosmtp.SMTPError{}}
	ts.srv = gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		ts.mu.Lock()
		ts.sessions++
		ts.mu.Unlock()
		return &testSession{ts: ts, tls: isTLS(c)}, nil
	}))
	ts.srv.Domain = "mx.test"
	ts.srv.AllowInsecureAuth = true
	ts.srv.EnableDSN = true
	ts.srv.EnableSMTPUTF8 = true
	ts.srv.MaxMessageBytes = 1 << 20
	if withTLS {
		ts.srv.TLSConfig = selfSigned(t)
	}
	if tweak != nil {
		tweak(ts.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.port = l.Addr().(*net.TCPAddr).Port
	go ts.srv.Serve(l)
	t.Cleanup(func() { ts.srv.Close() })
	return ts
}

// isTLS is evaluated when the session starts; after STARTTLS go-smtp opens
// a new session, so the flag is right for the mail that follows.
func isTLS(c *gosmtp.Conn) bool {
	_, ok := c.TLSConnectionState()
	return ok
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

func (ts *testServer) counts() (sessions, logouts int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.sessions, ts.logouts
}

func selfSigned(t *testing.T) *tls.Config { return testcert.Server(t, "mx.test") }

// dnsServer is a real DNS server on 127.0.0.1 answering from a zone the test
// gives in master-file syntax. Names listed in servfail answer SERVFAIL.
func dnsServer(t *testing.T, zone string, servfail ...string) string {
	t.Helper()
	records := map[string][]dns.RR{} // key: lower(name)+"/"+type
	names := map[string]bool{}
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	zp.SetDefaultTTL(60)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		n := strings.ToLower(h.Name)
		records[n+"/"+dns.TypeToString[h.Rrtype]] = append(records[n+"/"+dns.TypeToString[h.Rrtype]], rr)
		names[n] = true
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	fail := map[string]bool{}
	for _, n := range servfail {
		fail[dns.Fqdn(strings.ToLower(n))] = true
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		switch {
		case fail[name]:
			m.Rcode = dns.RcodeServerFailure
		case !names[name]:
			m.Rcode = dns.RcodeNameError
		default:
			m.Answer = records[name+"/"+dns.TypeToString[q.Question[0].Qtype]]
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func countLines(b []byte, prefix string) int {
	n := 0
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(bytes.ToLower(l), []byte(strings.ToLower(prefix))) {
			n++
		}
	}
	return n
}

// listenRaw accepts connections on 127.0.0.1, writes banner and waits for
// the client to go away; it returns the port.
func listenRaw(t *testing.T, banner string) int {
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
				_, _ = io.WriteString(c, banner)
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
