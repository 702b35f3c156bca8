package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/maillog"
)

var pathSeeds = []string{
	"FROM:<a@b.example>", "FROM:<>", "from: <a@b.example> SIZE=100 BODY=8BITMIME",
	"FROM:<a@b.example> RET=HDRS ENVID=abc+2Bdef SMTPUTF8", "TO:<@relay.example:bob@site.example>",
	`TO:<"quoted local"@b.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+40b.example`,
	"TO:<bob@[192.0.2.1]>", "TO:<bob@[IPv6:2001:db8::1]>", "TO:bob@b.example", "TO:<unclosed",
	`TO:<a\>b@c>`, "TO:<a@b>junk", "FROM:", "TO:<a@b><c@d>", "TO:<a@b> NOTIFY=NEVER,SUCCESS",
	"TO:<\xff@b>", "TO:<a\x01@b>",
}

// FuzzParsePath runs a MAIL/RCPT argument through the parsers the session
// uses, checking that they do not panic and that what they accept is sane.
func FuzzParsePath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		for _, kw := range []string{"FROM:", "TO:"} {
			token, params, syntaxOK, tokOK := splitPath(args, kw)
			if !syntaxOK {
				continue
			}
			if !strings.Contains(args, token) {
				t.Errorf("splitPath(%q): token %q is not part of the input", args, token)
			}
			for _, p := range params {
				if p == "" || strings.ContainsAny(p, " \t") {
					t.Errorf("splitPath(%q): bad parameter %q", args, p)
				}
				key, val, _ := strings.Cut(p, "=")
				switch strings.ToUpper(key) {
				case "NOTIFY":
					if n, ok := parseNotify(val); ok && n != strings.ToUpper(n) {
						t.Errorf("parseNotify(%q) = %q", val, n)
					}
				case "ORCPT":
					if o, ok := parseORCPT(val); ok && !strings.Contains(o, ";") {
						t.Errorf("parseORCPT(%q) = %q", val, o)
					}
				case "ENVID":
					envelope.DecodeXtext(val)
				}
			}
			if !tokOK {
				continue
			}
			addr, ok := extractAddr(token, kw == "FROM:")
			if !ok {
				continue
			}
			// An accepted address has no NUL, CR, LF or tab (other control
			// characters pass, as in Postfix), and is non-empty where an
			// empty one is not allowed.
			if strings.ContainsAny(addr, "\x00\r\n\t") {
				t.Errorf("extractAddr(%q) = %q: NUL, CR, LF or tab", token, addr)
			}
			if addr == "" && kw == "TO:" {
				t.Errorf("extractAddr(%q) accepted an empty recipient", token)
			}
		}
	})
}

// FuzzXtext checks DecodeXtext, which ENVID and ORCPT go through.
func FuzzXtext(f *testing.F) {
	for _, s := range []string{"", "abc", "a+2Bb", "+3D", "+", "+2", "+zz", "a+2b", "\xff", "a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, ok := envelope.DecodeXtext(s)
		if ok && len(dec) > len(s) {
			t.Errorf("DecodeXtext(%q) = %q: longer than its input", s, dec)
		}
	})
}

// pipeListener hands net.Pipe connections to a real Server, so that fuzz
// sessions need no sockets (thousands of TCP connections a second would
// exhaust ephemeral ports).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

// clientStream is the server end of a pipe whose input is the fuzz input:
// reads come from it and then see EOF, as if the client had sent it all
// and shut down its sending side; replies go through the pipe to the
// client. It says its client is 127.0.0.1, so that the session applies
// mynetworks as for a local client (a pipe's own address, "pipe", would
// leave the client address unparsed).
type clientStream struct {
	net.Conn
	in io.Reader
}

func (c clientStream) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c clientStream) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSession feeds the input as a client's byte stream to a real server,
// then closes the client's side. The server must not panic, must answer
// with well-formed reply lines only, and must end the session.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO client.example\r\nMAIL FROM:<a@client.example> SIZE=10\r\nRCPT TO:<bob@local.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<bob@local.test> NOTIFY=FAILURE ORCPT=rfc822;bob+40local.test\r\nRSET\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> BODY=8BITMIME RET=FULL ENVID=x+2By SMTPUTF8\r\nRCPT TO:<c@elsewhere.example>\r\nDATA\r\n..dot\r\n.\r\n",
		"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@local.test>\nDATA\nbare LF\n.\n",
		"DATA\r\nRCPT TO:<a@b>\r\nMAIL FROM:<x\r\nNOOP\r\nVRFY bob\r\nHELP\r\nFOO\r\n\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<\r\nRCPT TO:<a@local.test> FOO=BAR\r\nQUIT\r\n",
		"Subject: not smtp\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@local.test>\r\nDATA\r\nunterminated",
		"EHLO " + strings.Repeat("x", 3000) + "\r\nQUIT\r\n",
		"EHLO x\r\nBDAT 10 LAST\r\n0123456789",
		"\x00\xff\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	rec := &recorder{}
	cfg := baseConfig(rec, &logBuf{})
	cfg.Log = maillog.Discard() // a long run would keep every log line
	srv, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			f.Errorf("Serve returned %v", err)
		}
	})

	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		defer client.Close()
		ln.conns <- clientStream{Conn: server, in: bytes.NewReader(in)}
		// The session ends on its own (QUIT, too many errors, or EOF after
		// the input) and closes the pipe; the deadline only turns a hung
		// session into a failure instead of a stuck fuzzer.
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(client)
		if err != nil {
			t.Fatalf("session did not end: %v; replies so far %q", err, got)
		}
		rec.mu.Lock()
		rec.envs, rec.msgs = nil, nil // only the last input's matter
		rec.mu.Unlock()
		checkReplies(t, in, got)
	})
}

// checkReplies checks that out is a sequence of well-formed SMTP reply
// lines: the 220 greeting first, each line "DDD " or "DDD-", CRLF-ended, a
// multi-line reply ending in a "DDD " line with the same code, and an
// answer to the first command line when the input held one.
func checkReplies(t *testing.T, in, out []byte) {
	t.Helper()
	if !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("replies do not end in CRLF: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
	if !strings.HasPrefix(lines[0], "220 ") {
		t.Fatalf("no greeting: %q", lines[0])
	}
	replies, cont := 0, ""
	for _, l := range lines {
		if !replyLine.MatchString(l) || strings.ContainsAny(l, "\r\n") {
			t.Fatalf("malformed reply line %q in %q", l, out)
		}
		if cont != "" && l[:3] != cont {
			t.Fatalf("multi-line reply changes code at %q in %q", l, out)
		}
		if l[3] == '-' {
			cont = l[:3]
		} else {
			cont = ""
			replies++
		}
	}
	if cont != "" {
		t.Fatalf("unfinished multi-line reply in %q", out)
	}
	if bytes.IndexByte(in, '\n') >= 0 && replies < 2 && !chunkPending(in) {
		t.Fatalf("input %q got no answer after the greeting: %q", in, out)
	}
}

// chunkPending reports whether the first command is a BDAT whose chunk the
// input does not hold: the server reads the chunk before it answers (as
// Postfix does), so an input that ends first gets no reply.
func chunkPending(in []byte) bool {
	line, rest, _ := bytes.Cut(in, []byte("\n"))
	// The server reads a command as a C string: a NUL ends it.
	line, _, _ = bytes.Cut(line, []byte{0})
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.EqualFold(f[0], "BDAT") {
		return false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	return err == nil && n > int64(len(rest))
}
