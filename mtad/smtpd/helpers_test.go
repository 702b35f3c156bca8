package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/matchlist"
)

// recorder is a Submitter that keeps what it was given (fine here: the real
// store is tested in its own package).
type recorder struct {
	mu   sync.Mutex
	envs []*envelope.Envelope
	msgs []string
	err  error
}

func (r *recorder) Submit(ctx context.Context, env *envelope.Envelope, content io.Reader) error {
	b, err := io.ReadAll(content)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.envs = append(r.envs, env)
	r.msgs = append(r.msgs, string(b))
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs)
}

// logBuf collects mail log lines from concurrent sessions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or a generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits until the mail log contains substr.
func (l *logBuf) wait(t *testing.T, substr string) {
	t.Helper()
	waitFor(t, "log line "+substr, func() bool { return strings.Contains(l.String(), substr) })
}

type testServer struct {
	srv  *Server
	addr string
	rec  *recorder
	log  *logBuf
}

func baseConfig(rec *recorder, log *logBuf) Config {
	local, _ := matchlist.ParseDomains([]string{"local.test", "mx.test"}, false)
	nets, _ := matchlist.ParseNetworks([]string{"127.0.0.0/8", "[::1]/128"})
	return Config{
		Hostname:         "mx.test",
		Banner:           "mx.test ESMTP Postfix",
		MessageSizeLimit: 10240000,
		RecipientLimit:   1000,
		SoftErrorLimit:   10,
		HardErrorLimit:   20,
		MyNetworks:       nets,
		AuthDestination:  local.Match,
		Log:              maillog.New(log, "mx.test", "postfix"),
		Submitter:        rec,
	}
}

// start runs a server on 127.0.0.1:0 with cfg adjusted by mod; it is shut
// down when the test ends.
func start(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	ts := &testServer{rec: &recorder{}, log: &logBuf{}}
	cfg := baseConfig(ts.rec, ts.log)
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, ts.addr = srv, ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if t.Failed() {
			t.Logf("mail log:\n%s", ts.log.String())
		}
	})
	return ts
}

// rawClient speaks SMTP by hand so tests can check exact reply lines.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func (ts *testServer) dial(t *testing.T) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
}

func (c *rawClient) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *rawClient) expect(want string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := c.tp.ReadLine()
	if err != nil {
		c.t.Fatalf("want %q, read error %v", want, err)
	}
	if got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// cmd sends one command and checks the one-line reply.
func (c *rawClient) cmd(line, want string) {
	c.t.Helper()
	c.send(line)
	c.expect(want)
}

func (c *rawClient) expectEOF() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.tp.ReadLine(); err == nil {
		c.t.Fatalf("want EOF, got %q", l)
	}
}

// ehlo sends EHLO and checks the whole multi-line reply.
func (c *rawClient) ehlo(name string, size string) {
	c.t.Helper()
	c.send("EHLO " + name)
	c.ehloReply(size)
}

// ehloReply checks the EHLO reply lines.
func (c *rawClient) ehloReply(size string) {
	c.t.Helper()
	for _, l := range []string{"250-mx.test", "250-PIPELINING", "250-" + size, "250-VRFY", "250-ETRN",
		"250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"} {
		c.expect(l)
	}
}
