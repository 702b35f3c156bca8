package sasl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

// A scripted auth server, for what a real Dovecot does not do: a wrong
// version, broken replies, a close or a silence at a chosen moment.

const hello = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nMECH\tX-OWN\tprivate\n" +
	"SPID\t4242\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"

type fakeConn struct {
	n int // connections before this one
	c net.Conn
	r interface{ ReadString(byte) (string, error) }
}

// line reads one line from the client, without "\n"; ok is false at EOF.
func (f *fakeConn) line() (string, bool) {
	l, err := f.r.ReadString('\n')
	return strings.TrimSuffix(l, "\n"), err == nil
}

// request reads the client's next line and returns its fields.
func (f *fakeConn) request() ([]string, bool) {
	l, ok := f.line()
	return strings.Split(l, "\t"), ok
}

func (f *fakeConn) send(format string, args ...any) { fmt.Fprintf(f.c, format+"\n", args...) }

type fake struct {
	path  string
	conns atomic.Int32

	mu   sync.Mutex
	seen []string // the client's handshake lines and requests, in order
}

func (fk *fake) record(l string) {
	fk.mu.Lock()
	fk.seen = append(fk.seen, l)
	fk.mu.Unlock()
}

func (fk *fake) lines() []string {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	return append([]string(nil), fk.seen...)
}

// serveFake sends greeting on each connection, reads the client's VERSION
// and CPID, and hands the connection to script (nil: wait for the client
// to close).
func serveFake(t *testing.T, greeting string, script func(f *fakeConn)) *fake {
	fk := &fake{}
	port := peers.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		f := &fakeConn{n: int(fk.conns.Add(1)) - 1, c: c, r: br}
		io.WriteString(c, greeting)
		for i := 0; i < 2; i++ {
			l, ok := f.line()
			if !ok {
				return
			}
			fk.record(l)
		}
		if script == nil {
			io.Copy(io.Discard, c)
			return
		}
		f.r = &recordingReader{br, fk}
		script(f)
	})
	fk.path = fmt.Sprintf("inet:127.0.0.1:%d", port)
	return fk
}

// recordingReader notes each line the script reads.
type recordingReader struct {
	*bufio.Reader
	fk *fake
}

func (r *recordingReader) ReadString(delim byte) (string, error) {
	l, err := r.Reader.ReadString(delim)
	if err == nil {
		r.fk.record(strings.TrimSuffix(l, "\n"))
	}
	return l, err
}

func TestFakeHandshake(t *testing.T) {
	fk := serveFake(t, hello, nil)
	c := newClient(t, fk.path, 0)
	mechs, err := c.Mechanisms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Mechanism{{Name: "PLAIN", Flags: []string{"plaintext"}}, {Name: "LOGIN", Flags: []string{"plaintext"}}}
	if !reflect.DeepEqual(mechs, want) {
		t.Errorf("mechanisms %+v, want %+v (no private one)", mechs, want)
	}
	peers.WaitFor(t, 5*time.Second, func() bool { return len(fk.lines()) == 2 }, "the client's handshake")
	if got := fk.lines(); got[0] != "VERSION\t1\t0" || !strings.HasPrefix(got[1], "CPID\t") || got[1] == "CPID\t0" {
		t.Errorf("client handshake %q", got)
	}
}

func TestFakeHandshakeErrors(t *testing.T) {
	for _, tc := range []struct{ greeting, warning string }{
		{"VERSION\t2\t0\nMECH\tPLAIN\tplaintext\nSPID\t1\nDONE\n", "SASL: Protocol version mismatch (2 vs. 1)"},
		{"VERSION\tone\ttwo\nMECH\tPLAIN\tplaintext\nSPID\t1\nDONE\n", "SASL: Protocol version error"},
		{"VERSION\t1\t2\nSPID\t1\n", "SASL: Connected to wrong auth socket (auth-master instead of auth-client)"},
		{"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n", "SASL: no handshake from Dovecot auth socket '%s': EOF"},
	} {
		fk := serveFake(t, tc.greeting, func(f *fakeConn) {})
		c := newClient(t, fk.path, 0)
		_, _, err := c.Start(context.Background(), "PLAIN", ptr(plain("bob", "pw")), local)
		want := strings.ReplaceAll(tc.warning, "%s", fk.path)
		if f := failure(t, err); !f.Temporary || f.Reason != "" || f.Warning != want {
			t.Errorf("greeting %q: %+v, want warning %q", tc.greeting, f, want)
		}
	}
}

// TestFakeSilentHandshake: a server that accepts but never greets is given
// up after the timeout.
func TestFakeSilentHandshake(t *testing.T) {
	fk := serveFake(t, "", nil)
	const timeout = 300 * time.Millisecond
	c := newClient(t, fk.path, timeout)
	start := time.Now()
	_, _, err := c.Start(context.Background(), "PLAIN", ptr(plain("bob", "pw")), local)
	if f := failure(t, err); !f.Temporary || f.Reason != "" {
		t.Errorf("%+v", f)
	}
	if el := time.Since(start); el < timeout || el > timeout+time.Second {
		t.Errorf("gave up after %v, want %v", el, timeout)
	}
}

// TestFakeReplies covers the replies Dovecot should not send but Postfix
// handles, and lines to be ignored.
func TestFakeReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replies []string // ID stands for the request's id
		step    Step
		fail    *Failure
	}{
		{"OK without user", []string{"OK\tID"}, Step{},
			&Failure{Reason: ReasonBackendError, Warning: "missing Dovecot server OK username field"}},
		{"CONT without data", []string{"CONT\tID"}, Step{},
			&Failure{Reason: ReasonBackendError, Warning: "missing Dovecot server CONT reply field"}},
		{"last user wins, made printable", []string{"OK\tID\tuser=ann\tuser=b\x01b\xffé"}, Step{Done: true, User: "b?b?é"}, nil},
		{"FAIL with temp", []string{"FAIL\tID\tuser=bob\ttemp\treason=Try\x7flater"}, Step{},
			&Failure{Reason: "Try?later", User: "bob", TempFlag: true}},
		{"FAIL with nothing", []string{"FAIL\tID"}, Step{}, &Failure{}},
		{"other lines are ignored", []string{"NOTICE\tsomething", "OK\t9999\tuser=other", "OK\tID\tuser=bob"},
			Step{Done: true, User: "bob"}, nil},
		{"a reply without id", []string{"OK\txID\tuser=bob"}, Step{},
			&Failure{Temporary: true, Reason: ReasonConnectionLost, Warning: "SASL: Protocol error"}},
	} {
		fk := serveFake(t, hello, func(f *fakeConn) {
			for {
				req, ok := f.request()
				if !ok {
					return
				}
				if req[0] != "AUTH" || f.n > 0 {
					continue
				}
				for _, r := range tc.replies {
					f.send("%s", strings.ReplaceAll(r, "ID", req[1]))
				}
			}
		})
		c := newClient(t, fk.path, 0)
		_, step, err := c.Start(context.Background(), "PLAIN", ptr(plain("bob", "pw")), local)
		if tc.fail == nil {
			if err != nil || step != tc.step {
				t.Errorf("%s: %+v, %v; want %+v", tc.name, step, err, tc.step)
			}
			continue
		}
		f := failure(t, err)
		f.Err = nil
		if !reflect.DeepEqual(f, tc.fail) {
			t.Errorf("%s: %+v, want %+v", tc.name, f, tc.fail)
		}
	}
}

// TestFakeGarbledReplyReconnects: after a reply that names no request the
// connection is dropped, and the next request gets a new one.
func TestFakeGarbledReplyReconnects(t *testing.T) {
	fk := serveFake(t, hello, func(f *fakeConn) {
		for {
			req, ok := f.request()
			if !ok {
				return
			}
			if f.n == 0 {
				f.send("FAIL\t\treason=garbled")
			} else {
				f.send("OK\t%s\tuser=bob", req[1])
			}
		}
	})
	c := newClient(t, fk.path, 0)
	ctx := context.Background()
	if _, err := authPlain(ctx, c, "bob", "pw"); failure(t, err).Warning != "SASL: Protocol error" {
		t.Fatalf("garbled: %v", err)
	}
	if user, err := authPlain(ctx, c, "bob", "pw"); err != nil || user != "bob" || fk.conns.Load() != 2 {
		t.Fatalf("next: %q, %v after %d connections", user, err, fk.conns.Load())
	}
}

// TestFakeServerClosesMidConversation: a lost connection ends the exchange
// on it (temporarily); the next one connects again.
func TestFakeServerClosesMidConversation(t *testing.T) {
	fk := serveFake(t, hello, func(f *fakeConn) {
		for {
			req, ok := f.request()
			if !ok {
				return
			}
			switch {
			case f.n == 0 && req[0] == "AUTH":
				f.send("CONT\t%s\tVXNlcm5hbWU6", req[1])
			case f.n == 0:
				return // closes
			default:
				f.send("OK\t%s\tuser=bob", req[1])
			}
		}
	})
	c := newClient(t, fk.path, 0)
	ctx := context.Background()
	cv, _, err := c.Start(ctx, "LOGIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cv.Next(ctx, b64("bob"))
	if f := failure(t, err); !f.Temporary || f.Reason != ReasonConnectionLost {
		t.Errorf("next: %+v", f)
	}
	if user, err := authPlain(ctx, c, "bob", "pw"); err != nil || user != "bob" || fk.conns.Load() != 2 {
		t.Fatalf("after: %q, %v after %d connections", user, err, fk.conns.Load())
	}
}

// TestFakeRetryOnStaleConnection: a connection that dies under a request
// without answering, having served earlier ones, is replaced and the
// request sent again, where Postfix would answer 454.
func TestFakeRetryOnStaleConnection(t *testing.T) {
	fk := serveFake(t, hello, func(f *fakeConn) {
		for i := 0; ; i++ {
			req, ok := f.request()
			if !ok || f.n == 0 && i == 1 {
				return
			}
			f.send("OK\t%s\tuser=bob", req[1])
		}
	})
	c := newClient(t, fk.path, 0)
	for i := 0; i < 2; i++ {
		if user, err := authPlain(context.Background(), c, "bob", "pw"); err != nil || user != "bob" {
			t.Fatalf("request %d: %q, %v", i, user, err)
		}
	}
	if n := fk.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestFakeTimeout: no answer within the timeout is a temporary failure. A
// server that answers nothing at all is given up and connected to again;
// one that answers other requests meanwhile is kept.
func TestFakeTimeout(t *testing.T) {
	got := make(chan string, 10)
	fk := serveFake(t, hello, func(f *fakeConn) {
		for {
			req, ok := f.request()
			if !ok {
				return
			}
			if req[0] != "AUTH" {
				continue
			}
			got <- req[6]
			if req[6] != "rip=silent" {
				f.send("OK\t%s\tuser=bob", req[1])
			}
		}
	})
	const timeout = 300 * time.Millisecond
	c := newClient(t, fk.path, timeout)
	ctx := context.Background()
	silent := Info{Service: "smtp", RemoteIP: "silent"}
	start := time.Now()
	_, _, err := c.Start(ctx, "PLAIN", ptr(plain("bob", "pw")), silent)
	if f := failure(t, err); !f.Temporary || f.Reason != ReasonConnectionLost || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent: %+v", f)
	}
	if el := time.Since(start); el < timeout || el > timeout+time.Second {
		t.Errorf("silent: gave up after %v, want %v", el, timeout)
	}
	<-got
	if _, err := authPlain(ctx, c, "bob", "pw"); err != nil || fk.conns.Load() != 2 {
		t.Fatalf("after silence: %v after %d connections", err, fk.conns.Load())
	}
	<-got

	// Now one request is not answered while another is.
	done := make(chan error)
	go func() {
		_, _, err := c.Start(ctx, "PLAIN", ptr(plain("bob", "pw")), silent)
		done <- err
	}()
	<-got
	if _, err := authPlain(ctx, c, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	<-got
	if f := failure(t, <-done); f.Reason != ReasonConnectionLost {
		t.Errorf("slow: %+v", f)
	}
	if _, err := authPlain(ctx, c, "bob", "pw"); err != nil || fk.conns.Load() != 2 {
		t.Fatalf("after a slow request: %v after %d connections", err, fk.conns.Load())
	}
	// The slow request was cancelled; the silent one went with its
	// connection.
	if n := strings.Count(strings.Join(fk.lines(), "\n"), "CANCEL\t"); n != 1 {
		t.Errorf("%d CANCEL lines, want 1: %q", n, fk.lines())
	}
}

// TestFakeLongResponse: a line longer than Dovecot takes is not sent (it
// would drop the connection, every session's conversation with it).
func TestFakeLongResponse(t *testing.T) {
	fk := serveFake(t, hello, func(f *fakeConn) {
		for {
			req, ok := f.request()
			if !ok {
				return
			}
			if req[0] == "AUTH" {
				f.send("CONT\t%s\t", req[1])
			} else if req[0] == "CONT" {
				f.send("OK\t%s\tuser=bob", req[1])
			}
		}
	})
	c := newClient(t, fk.path, 0)
	ctx := context.Background()
	cv, _, err := c.Start(ctx, "PLAIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := c.Start(ctx, "PLAIN", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cv.Next(ctx, strings.Repeat("A", maxLine))
	if f := failure(t, err); !f.Temporary || f.Reason != ReasonConnectionLost {
		t.Errorf("long: %+v", f)
	}
	if step, err := other.Next(ctx, plain("bob", "pw")); err != nil || !step.Done {
		t.Errorf("other: %+v, %v", step, err)
	}
	for _, l := range fk.lines() {
		if len(l) >= maxLine {
			t.Errorf("the server got a line of %d bytes", len(l))
		}
	}
}

func TestClosedClient(t *testing.T) {
	fk := serveFake(t, hello, nil)
	c := newClient(t, fk.path, 0)
	if _, err := c.Mechanisms(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, _, err := c.Start(context.Background(), "PLAIN", nil, local)
	if !errors.Is(err, ErrClosed) || !failure(t, err).Temporary {
		t.Errorf("after Close: %v", err)
	}
}
