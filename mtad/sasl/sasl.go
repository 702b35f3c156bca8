// Package sasl is the client side of Dovecot's authentication protocol
// (auth-client protocol 1.x): what smtpd's AUTH command asks when
// smtpd_sasl_type = dovecot, as Postfix's xsasl_dovecot_server.c does.
//
// One Client serves every SMTP session of the process. Its conversations
// share one connection to the auth server and find their replies by request
// id; a lost connection is replaced by the next request. Every outcome that
// is not a success or a challenge is a *Failure carrying the reply text
// Postfix 3.7 would give, so that smtpd can answer exactly as Postfix does:
// "454 4.7.0 Temporary authentication failure: <Reason>" when Temporary,
// else "535 5.7.8 Error: authentication failed: <Reason>", with
// "(reason unavailable)" for an empty Reason.
package sasl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultTimeout bounds each call when New is given none: Postfix's
// AUTH_TIMEOUT, 10s for the connect and for each read and write.
const DefaultTimeout = 10 * time.Second

// Reply texts of Postfix 3.7's Dovecot client (xsasl_dovecot_server.c),
// which smtpd puts after "535 5.7.8 Error: authentication failed: " or
// "454 4.7.0 Temporary authentication failure: ".
const (
	ReasonInvalidMechanism    = "Invalid authentication mechanism"
	ReasonInvalidInitial      = "Invalid base64 data in initial response"
	ReasonInvalidContinuation = "Invalid base64 data in continued response"
	ReasonConnectionLost      = "Connection lost to authentication server"
	ReasonCannotConnect       = "Can't connect to authentication server"
	ReasonBackendError        = "Authentication backend error"
)

// Mechanism is one MECH line of the server's handshake.
type Mechanism struct {
	Name string
	// Flags are the security properties as the server sent them:
	// anonymous, plaintext, dictionary, active, forward-secrecy,
	// mutual-auth. Private mechanisms are not listed at all: Dovecot keeps
	// them for its own processes, and Postfix never offers them.
	Flags []string
}

// Has reports whether m has the flag, compared without regard to case as
// Postfix does.
func (m Mechanism) Has(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// Info describes the SMTP session to the auth server. Postfix 3.7 sends
// service=, nologin, lip=, rip= and, with TLS, secured; no ports and no
// valid-client-cert, so neither does this package.
type Info struct {
	Service  string // smtpd_sasl_service, "smtp" by default
	LocalIP  string // lip=: the server address the client connected to, "" when unknown
	RemoteIP string // rip=: the client's address (without "IPv6:"), "" when unknown
	Secured  bool   // the session runs over TLS
	// Mechanisms are the names this client may use: Filter's result for
	// the session's security options. Postfix checks AUTH against this list
	// before asking the server ("Invalid authentication mechanism"); nil
	// allows every mechanism the server offers. The server's own list is
	// checked in any case, because Dovecot drops the whole connection, and
	// with it every other session's conversation, on an unknown mechanism.
	Mechanisms []string
}

// Step is the server's answer to one client message.
type Step struct {
	// Done reports success; User is then the authenticated name, the
	// user= field of the server's OK, with unprintable characters made '?'
	// as Postfix does.
	Done bool
	User string
	// Challenge is the server's next challenge when not Done, in base64
	// as the server sent it (smtpd sends it as "334 <Challenge>"); it may be
	// empty.
	Challenge string
}

// Failure is every unsuccessful end of a conversation.
type Failure struct {
	// Reason is the text for the SMTP reply: the server's reason= field
	// (made printable), one of the Reason* constants, or "" when Postfix
	// has none (smtpd then says "(reason unavailable)").
	Reason string
	// Temporary means the server could not be asked: unreachable, lost
	// or silent. Postfix answers 454 then, and 535 otherwise.
	Temporary bool
	// User is the user= field of a FAIL reply, if any: Postfix logs it as
	// sasl_username=.
	User string
	// TempFlag reports Dovecot's "temp" flag on a FAIL (an internal error
	// on its side). Postfix 3.7 ignores it and answers 535, so it does not
	// make the Failure Temporary.
	TempFlag bool
	// Warning is what Postfix logs as "warning: <Warning>" before its
	// "SASL … authentication failed" line, or "".
	Warning string
	// Err is the underlying cause (an I/O error, a timeout), for debugging.
	Err error
}

func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("SASL authentication failed")
	if f.Temporary {
		b.WriteString(" temporarily")
	}
	for _, s := range []string{f.Reason, f.Warning} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	if f.Err != nil {
		b.WriteString(": ")
		b.WriteString(f.Err.Error())
	}
	return b.String()
}

func (f *Failure) Unwrap() error { return f.Err }

// ErrClosed is the Err of every Failure after Client.Close.
var ErrClosed = errors.New("sasl: client closed")

// Client talks to one Dovecot auth server for any number of concurrent
// SMTP sessions.
type Client struct {
	path          string // as configured, for warnings
	network, addr string
	timeout       time.Duration
	pid           int
	ids           atomic.Uint32

	mu      sync.Mutex
	cur     *conn
	dialing *dialCall
	closed  bool
}

// dialCall is a connection attempt that concurrent requests wait for.
type dialCall struct {
	done chan struct{}
	cc   *conn
	err  *Failure
}

// New returns a Client for smtpd_sasl_path: "inet:host:port", "unix:/path"
// or a bare UNIX socket path (Postfix resolves a relative one in its queue
// directory; pass it resolved). It connects on first use. timeout bounds
// every call (connect, handshake and reply); 0 means DefaultTimeout.
func New(path string, timeout time.Duration) (*Client, error) {
	c := &Client{path: path, timeout: timeout, pid: os.Getpid()}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case strings.HasPrefix(path, "inet:"):
		c.network, c.addr = "tcp", strings.TrimPrefix(path, "inet:")
		if _, _, err := net.SplitHostPort(c.addr); err != nil {
			return nil, fmt.Errorf("sasl: bad path %q: %v", path, err)
		}
	case strings.HasPrefix(path, "unix:"):
		c.network, c.addr = "unix", strings.TrimPrefix(path, "unix:")
	default:
		c.network, c.addr = "unix", path
	}
	if c.addr == "" {
		return nil, fmt.Errorf("sasl: empty path %q", path)
	}
	return c, nil
}

// Close drops the connection; conversations in progress fail, and so does
// every later call.
func (c *Client) Close() error {
	c.mu.Lock()
	cc := c.cur
	c.cur, c.closed = nil, true
	c.mu.Unlock()
	if cc != nil {
		cc.fail(ErrClosed)
	}
	return nil
}

// Mechanisms returns the mechanisms the server offers, in its order,
// connecting if need be. The error is a *Failure whose Warning is what
// Postfix logs; Postfix's smtpd then exits with "fatal: no SASL
// authentication mechanisms" (the client sees the connection close).
func (c *Client) Mechanisms(ctx context.Context) ([]Mechanism, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cc, _, f := c.get(ctx)
	if f != nil {
		return nil, f
	}
	return append([]Mechanism(nil), cc.mechs...), nil
}

// get returns the live connection, or dials one; fresh reports that it was
// dialled for this call. Concurrent callers share one dial, which goes on
// when a caller gives up: others may be waiting for it.
func (c *Client) get(ctx context.Context) (cc *conn, fresh bool, f *Failure) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, &Failure{Temporary: true, Err: ErrClosed}
	}
	if c.cur != nil && c.cur.alive() {
		cc := c.cur
		c.mu.Unlock()
		return cc, false, nil
	}
	d := c.dialing
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		c.dialing = d
		go c.dialFor(context.WithoutCancel(ctx), d)
	}
	c.mu.Unlock()
	select {
	case <-d.done:
		return d.cc, true, d.err
	case <-ctx.Done():
		return nil, false, &Failure{Temporary: true, Err: ctx.Err()}
	}
}

// dialFor makes the connection that d's callers wait for.
func (c *Client) dialFor(ctx context.Context, d *dialCall) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cc, f := c.dial(ctx)
	c.mu.Lock()
	c.dialing = nil
	switch {
	case f != nil:
	case c.closed:
		cc.fail(ErrClosed)
		cc, f = nil, &Failure{Temporary: true, Err: ErrClosed}
	default:
		c.cur = cc
	}
	c.mu.Unlock()
	d.cc, d.err = cc, f
	close(d.done)
}

// Start begins an exchange for mechanism mech with the client's initial
// response (base64 as the client sent it; nil for none). On success the
// Step is a challenge or Done; the Conversation carries on after a
// challenge and must be closed if abandoned. Every error is a *Failure.
func (c *Client) Start(ctx context.Context, mech string, initial *string, info Info) (*Conversation, Step, error) {
	if info.Mechanisms != nil && !containsFold(info.Mechanisms, mech) {
		return nil, Step{}, &Failure{Reason: ReasonInvalidMechanism}
	}
	if initial != nil && !validBase64(*initial) {
		return nil, Step{}, &Failure{Reason: ReasonInvalidInitial}
	}
	for _, v := range []string{info.Service, info.LocalIP, info.RemoteIP, mech} {
		if strings.ContainsAny(v, "\t\r\n") {
			return nil, Step{}, &Failure{Err: fmt.Errorf("sasl: request field %q has a TAB or line break", v)}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for try := 0; ; try++ {
		cc, fresh, f := c.get(ctx)
		if f != nil {
			return nil, Step{}, f
		}
		name, ok := cc.mechanism(mech)
		if !ok {
			return nil, Step{}, &Failure{Reason: ReasonInvalidMechanism}
		}
		id := c.nextID()
		var b strings.Builder
		fmt.Fprintf(&b, "AUTH\t%d\t%s\tservice=%s\tnologin\tlip=%s\trip=%s", id, name, info.Service, info.LocalIP, info.RemoteIP)
		if info.Secured {
			b.WriteString("\tsecured")
		}
		if initial != nil {
			b.WriteString("\tresp=")
			b.WriteString(*initial)
		}
		b.WriteByte('\n')
		cv := &Conversation{c: c, cc: cc, id: id, ch: cc.register(id)}
		r, f, how := cv.exchange(ctx, b.String())
		if f == nil {
			step, f := cv.handle(r)
			if f != nil {
				return nil, Step{}, f
			}
			return cv, step, nil
		}
		// Postfix connects again and tries once more when the request cannot
		// be written. A connection that existed before this request may also
		// have died unseen (a write to a restarted server over TCP succeeds),
		// so the loss of such a one before any reply is retried too.
		if try == 0 && (how == unsent || how == lost && !fresh) {
			continue
		}
		if how == unsent {
			f.Reason = ReasonCannotConnect
		}
		return nil, Step{}, f
	}
}

func (c *Client) nextID() uint32 {
	for {
		if id := c.ids.Add(1); id != 0 {
			return id
		}
	}
}

// Conversation is one authentication exchange in progress, used by one
// goroutine (its SMTP session).
type Conversation struct {
	c        *Client
	cc       *conn
	id       uint32
	ch       chan reply
	finished bool
}

// Next sends the client's response (the base64 line it sent after a 334
// challenge) and returns the server's answer. Every error is a *Failure;
// the conversation is over after an error or a Done step.
func (cv *Conversation) Next(ctx context.Context, response string) (Step, error) {
	if cv == nil || cv.finished {
		return Step{}, &Failure{Err: errors.New("sasl: conversation is over")}
	}
	if !validBase64(response) {
		cv.Close()
		return Step{}, &Failure{Reason: ReasonInvalidContinuation}
	}
	ctx, cancel := context.WithTimeout(ctx, cv.c.timeout)
	defer cancel()
	// Postfix does not reconnect in mid-exchange: the request lived on
	// the connection, so a failed write is a lost connection here.
	r, f, _ := cv.exchange(ctx, "CONT\t"+strconv.FormatUint(uint64(cv.id), 10)+"\t"+response+"\n")
	if f != nil {
		return Step{}, f
	}
	step, f := cv.handle(r)
	if f != nil {
		return Step{}, f
	}
	return step, nil
}

// Close abandons the exchange (the client answered "*", or the session
// ended): the server is told to forget the request. Closing a finished or
// nil Conversation does nothing.
func (cv *Conversation) Close() {
	if cv == nil || cv.finished {
		return
	}
	cv.finished = true
	cv.cc.unregister(cv.id)
	// Dovecot 2.3 answers nothing; a later one's "CANCELLED" finds no
	// request and is dropped.
	_ = cv.cc.send("CANCEL\t" + strconv.FormatUint(uint64(cv.id), 10) + "\n")
}

// How an exchange failed, for Start's retry.
const (
	unsent = 1 + iota // the line could not be written
	lost              // the connection ended before the reply
)

// exchange writes line and waits for the reply to the conversation.
func (cv *Conversation) exchange(ctx context.Context, line string) (r reply, f *Failure, how int) {
	if len(line) > maxLine {
		// Dovecot would drop the connection, and every other session's
		// conversation on it; Postfix's session would see it lost.
		cv.Close()
		return reply{}, &Failure{Temporary: true, Reason: ReasonConnectionLost,
			Err: fmt.Errorf("sasl: a line of %d bytes is longer than the server takes", len(line))}, 0
	}
	sent := time.Now()
	if err := cv.cc.send(line); err != nil {
		cv.finished = true
		cv.cc.unregister(cv.id)
		return reply{}, &Failure{Temporary: true, Reason: ReasonConnectionLost, Err: err}, unsent
	}
	select {
	case r := <-cv.ch:
		return r, nil, 0
	case <-cv.cc.done:
		select {
		case r := <-cv.ch: // the reply came just before the end
			return r, nil, 0
		default:
		}
		cv.finished = true
		return reply{}, cv.cc.lost(), lost
	case <-ctx.Done():
		// A server that has sent nothing at all since the request went out
		// is taken for dead, so that the next request connects again; one
		// that answers others is only slow with this one.
		if cv.cc.lastRead.Load() < sent.UnixNano() {
			cv.cc.fail(fmt.Errorf("sasl: no reply from the server within %v", cv.c.timeout))
		}
		cv.Close()
		return reply{}, &Failure{Temporary: true, Reason: ReasonConnectionLost, Err: ctx.Err()}, 0
	}
}

// handle turns a reply into a Step or a Failure as Postfix's
// xsasl_dovecot_handle_reply does.
func (cv *Conversation) handle(r reply) (Step, *Failure) {
	if r.cmd == "CONT" {
		if len(r.args) == 0 {
			cv.Close()
			return Step{}, &Failure{Reason: ReasonBackendError, Warning: "missing Dovecot server CONT reply field"}
		}
		return Step{Challenge: r.args[0]}, nil
	}
	cv.finished = true
	var user, reason string
	haveUser, tempFlag := false, false
	for _, a := range r.args {
		switch {
		case strings.HasPrefix(a, "user="):
			user, haveUser = printable(a[len("user="):]), true
		case strings.HasPrefix(a, "reason="):
			reason = printable(a[len("reason="):])
		case a == "temp":
			tempFlag = true
		}
	}
	if r.cmd == "OK" {
		if !haveUser {
			return Step{}, &Failure{Reason: ReasonBackendError, Warning: "missing Dovecot server OK username field"}
		}
		return Step{Done: true, User: user}, nil
	}
	return Step{}, &Failure{Reason: reason, User: user, TempFlag: tempFlag}
}

// validBase64 is Postfix's check before passing a client's data on: only
// the base64 alphabet and '=', anywhere, possibly nothing.
func validBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// printable replaces control characters and malformed UTF-8 with '?', as
// Postfix's printable() does with server-supplied names and reasons.
func printable(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1 {
			if b == nil {
				b = []byte(s)
			}
			for j := i; j < i+n; j++ {
				b[j] = '?'
			}
		}
		i += n
	}
	if b == nil {
		return s
	}
	return string(b)
}
