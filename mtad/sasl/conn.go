package sasl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sqlmta/mtad/transport/client"
)

// Protocol version 1.0, as Postfix sends it: only the major version must
// match, and nothing in the 1.x minors concerns a client that only
// authenticates.
const (
	majorVersion = 1
	minorVersion = 0
)

// maxLine is the longest line, newline included, that Dovecot's auth server
// takes from a client (AUTH_CLIENT_MAX_LINE_LENGTH); it drops a connection
// that sends more.
const maxLine = 16384

// maxReply bounds a line from the server, so that a broken one cannot make
// the reader buffer without end. Dovecot's replies are short; an OK carries
// the user and a few extra fields.
const maxReply = 64 << 10

// reply is an OK, CONT or FAIL line for one request.
type reply struct {
	cmd  string
	args []string // the fields after the id
}

// conn is one connection to the auth server, shared by the conversations
// of a Client; a reader goroutine hands each reply to its request by id.
type conn struct {
	nc      net.Conn
	r       *bufio.Reader
	timeout time.Duration
	mechs   []Mechanism

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	pending map[uint32]chan reply
	err     error  // why the connection ended, once done is closed
	warning string // what Postfix would log about it, if anything
	done    chan struct{}

	lastRead atomic.Int64 // UnixNano of the last line from the server
}

// dial connects and does the handshake, as xsasl_dovecot_server_connect.
func (c *Client) dial(ctx context.Context) (*conn, *Failure) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, &Failure{Temporary: true, Err: err,
			Warning: fmt.Sprintf("SASL: Connect to Dovecot auth socket '%s' failed: %s", c.path, client.DialErrText(err))}
	}
	cc := &conn{nc: nc, r: bufio.NewReader(nc), timeout: c.timeout, pending: map[uint32]chan reply{}, done: make(chan struct{})}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if warning, err := cc.handshake(c.pid); err != nil {
		nc.Close()
		if warning == "" {
			warning = fmt.Sprintf("SASL: no handshake from Dovecot auth socket '%s': %v", c.path, err)
		}
		return nil, &Failure{Temporary: true, Warning: warning, Err: err}
	}
	_ = nc.SetDeadline(time.Time{})
	go cc.read()
	return cc, nil
}

// handshake sends VERSION and CPID and reads the server's lines up to DONE.
// A failure comes with Postfix's warning text when it has one.
func (cc *conn) handshake(pid int) (warning string, err error) {
	if _, err := fmt.Fprintf(cc.nc, "VERSION\t%d\t%d\nCPID\t%d\n", majorVersion, minorVersion, pid); err != nil {
		return "SASL: Couldn't send handshake: " + client.DialErrText(err), err
	}
	haveMech := false
	for {
		line, err := readLine(cc.r)
		if err != nil {
			return "", err
		}
		cmd, rest, _ := strings.Cut(line, "\t")
		switch cmd {
		case "VERSION":
			major, minor, _ := strings.Cut(rest, "\t")
			maj, err1 := strconv.ParseUint(major, 10, 32)
			_, err2 := strconv.ParseUint(strings.SplitN(minor, "\t", 2)[0], 10, 32)
			if err1 != nil || err2 != nil {
				return "SASL: Protocol version error", errors.New("bad VERSION line")
			}
			if maj != majorVersion {
				return fmt.Sprintf("SASL: Protocol version mismatch (%d vs. %d)", maj, majorVersion), errors.New("unsupported major version")
			}
		case "MECH":
			if rest == "" {
				continue
			}
			haveMech = true
			f := strings.Split(rest, "\t")
			m := Mechanism{Name: f[0], Flags: f[1:]}
			if !m.Has("private") {
				cc.mechs = append(cc.mechs, m)
			}
		case "SPID":
			// auth-master and auth-userdb sockets send VERSION and SPID
			// but no MECH: a MECH before SPID tells auth-client apart.
			if !haveMech {
				return "SASL: Connected to wrong auth socket (auth-master instead of auth-client)", errors.New("no MECH before SPID")
			}
		case "DONE":
			return "", nil
		}
		// Anything else (CUID, COOKIE, …) is of no use to a client that
		// only authenticates, and unknown lines are ignored as Postfix does.
	}
}

// readLine returns a line without its "\n" (and a "\r" before it).
func readLine(r *bufio.Reader) (string, error) {
	var long []byte
	for {
		b, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, b...)
			if len(long) > maxReply {
				return "", fmt.Errorf("server line longer than %d bytes", maxReply)
			}
			continue
		}
		if err != nil {
			return "", err
		}
		if long != nil {
			b = append(long, b...)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// read hands replies to their requests until the connection ends.
func (cc *conn) read() {
	for {
		line, err := readLine(cc.r)
		if err != nil {
			cc.fail(err)
			return
		}
		cc.lastRead.Store(time.Now().UnixNano())
		f := strings.Split(line, "\t")
		switch f[0] {
		case "OK", "CONT", "FAIL":
		default:
			continue // e.g. a newer server's CANCELLED; Postfix ignores them too
		}
		id, err := strconv.ParseUint(get(f, 1), 10, 32)
		if err != nil {
			// A reply that names no request: nothing on this connection
			// can be trusted any more.
			cc.failWarn("SASL: Protocol error", fmt.Errorf("reply without a request id: %q", line))
			return
		}
		cc.mu.Lock()
		ch, ok := cc.pending[uint32(id)]
		if ok && f[0] != "CONT" {
			delete(cc.pending, uint32(id))
		}
		cc.mu.Unlock()
		if !ok {
			continue // for a request given up (timed out or cancelled)
		}
		select {
		case ch <- reply{cmd: f[0], args: f[2:]}:
		default:
			// A second reply before the request answered the first.
			cc.failWarn("SASL: Protocol error", fmt.Errorf("unexpected reply: %q", line))
			return
		}
	}
}

func get(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// mechanism returns the server's spelling of name: Postfix compares
// mechanisms without regard to case, and sending the server's own name
// keeps a server that does not from dropping the connection.
func (cc *conn) mechanism(name string) (string, bool) {
	for _, m := range cc.mechs {
		if strings.EqualFold(m.Name, name) {
			return m.Name, true
		}
	}
	return "", false
}

func (cc *conn) register(id uint32) chan reply {
	ch := make(chan reply, 1)
	cc.mu.Lock()
	cc.pending[id] = ch
	cc.mu.Unlock()
	return ch
}

func (cc *conn) unregister(id uint32) {
	cc.mu.Lock()
	delete(cc.pending, id)
	cc.mu.Unlock()
}

// send writes one line; a failed write ends the connection.
func (cc *conn) send(line string) error {
	if cc.dead() {
		return errors.New("sasl: connection to the server is closed")
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	_ = cc.nc.SetWriteDeadline(time.Now().Add(cc.timeout))
	if _, err := cc.nc.Write([]byte(line)); err != nil {
		cc.fail(err)
		return err
	}
	return nil
}

func (cc *conn) fail(err error) { cc.failWarn("", err) }

// failWarn ends the connection; the first reason given is kept.
func (cc *conn) failWarn(warning string, err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err, cc.warning = err, warning
		close(cc.done)
	}
	cc.mu.Unlock()
	cc.nc.Close()
}

func (cc *conn) dead() bool {
	select {
	case <-cc.done:
		return true
	default:
		return false
	}
}

func (cc *conn) alive() bool { return !cc.dead() }

// lost is the Failure of a request whose connection ended.
func (cc *conn) lost() *Failure {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return &Failure{Temporary: true, Reason: ReasonConnectionLost, Warning: cc.warning, Err: cc.err}
}
