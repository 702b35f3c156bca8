package lmtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"sqlmta/mtad/transport/client"
	"sqlmta/mtad/transport/errtransport"
)

// session is one LMTP connection after a successful LHLO.
type session struct {
	key     string
	conn    *deadlineConn
	tr      *textproto.Reader
	bw      *bufio.Writer
	cfg     *Config
	namaddr string // "host[addr]" for "host … said:"
	relay   string // what the log's relay= shows
	ext     map[string]string
	uses    int
	dirty   bool // a transaction was started and not finished: RSET before reuse
}

// deadlineConn puts a deadline on every write, so that a server that stops
// reading fails the delivery after wtimeout instead of hanging it.
type deadlineConn struct {
	net.Conn
	wtimeout time.Duration
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.wtimeout))
	return c.Conn.Write(p)
}

// hello reads the greeting and sends LHLO. c is closed on failure.
func (t *Transport) hello(c net.Conn, key, namaddr, relay string) (*session, outcome, string) {
	dc := &deadlineConn{Conn: c, wtimeout: t.cfg.LHLOTimeout}
	s := &session{
		key: key, conn: dc, tr: textproto.NewReader(bufio.NewReader(dc)), bw: bufio.NewWriter(dc),
		cfg: &t.cfg, namaddr: namaddr, relay: relay,
	}
	code, msg, err := s.read(t.cfg.LHLOTimeout)
	if err != nil {
		c.Close()
		return nil, s.ioFail(err, "receiving the initial server greeting"), relay
	}
	if code/100 != 2 {
		c.Close()
		dsn := replyDSN(code, msg)
		if dsn[0] == '5' {
			// lmtp_skip_5xx_greeting=yes: a 5xx banner is not a verdict
			// on the mail, try later.
			dsn = "4" + dsn[1:]
		}
		return nil, outcome{dsn, fmt.Sprintf("host %s refused to talk to me: %s", namaddr, formatReply(code, msg))}, relay
	}
	code, msg, err = s.command(t.cfg.LHLOTimeout, "LHLO "+t.cfg.LHLOName)
	if err != nil {
		c.Close()
		return nil, s.ioFail(err, "performing the LHLO handshake"), relay
	}
	if code/100 != 2 {
		c.Close()
		return nil, s.said(code, msg, "LHLO"), relay
	}
	s.ext = map[string]string{}
	for _, l := range strings.Split(msg, "\n")[1:] {
		kw, param, _ := strings.Cut(strings.TrimSpace(l), " ")
		s.ext[strings.ToUpper(kw)] = param
	}
	return s, outcome{}, relay
}

// read reads one reply, waiting at most timeout.
func (s *session) read(timeout time.Duration) (int, string, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	code, msg, err := s.tr.ReadResponse(0)
	if err != nil && code == 0 {
		return 0, "", err
	}
	// A reply whose lines disagree is still a reply; keep its first code.
	return code, msg, nil
}

// send writes lines (without CRLF) in one flush, for pipelining.
func (s *session) send(timeout time.Duration, lines ...string) error {
	s.conn.wtimeout = timeout
	for _, l := range lines {
		s.bw.WriteString(l)
		s.bw.WriteString("\r\n")
	}
	return s.bw.Flush()
}

// command sends one command and reads its reply.
func (s *session) command(timeout time.Duration, line string) (int, string, error) {
	if err := s.send(timeout, line); err != nil {
		return 0, "", err
	}
	return s.read(timeout)
}

func (s *session) close() { s.conn.Close() }

// Quit says goodbye politely without waiting long for it (connpool.Conn).
func (s *session) Quit() {
	timeout := min(s.cfg.QuitTimeout, 2*time.Second)
	_, _, _ = s.command(timeout, "QUIT")
	s.conn.Close()
}

func (s *session) ioFail(err error, where string) outcome {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outcome{"4.4.2", fmt.Sprintf("conversation with %s timed out while %s", s.namaddr, where)}
	}
	return outcome{"4.4.2", fmt.Sprintf("lost connection with %s while %s", s.namaddr, where)}
}

// said words a refusal as Postfix logs it.
func (s *session) said(code int, msg, cmd string) outcome {
	text := fmt.Sprintf("host %s said: %s (in reply to %s command)", s.namaddr, formatReply(code, msg), cmd)
	if c := code / 100; c != 4 && c != 5 {
		return outcome{"5.5.0", "Protocol error: " + text}
	}
	return outcome{replyDSN(code, msg), text}
}

// formatReply renders a reply the way Postfix logs it: every line with its
// code, lines joined by a space.
func formatReply(code int, msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		lines[i] = strconv.Itoa(code) + sep + l
	}
	return strings.TrimRight(strings.Join(lines, " "), " ")
}

// replyDSN is the status of a reply: the enhanced code that starts its text
// with the class forced to the reply code's class (as Postfix does), or
// "X.0.0".
func replyDSN(code int, msg string) string {
	class := strconv.Itoa(code / 100)
	first, _, _ := strings.Cut(msg, "\n")
	dsn, _ := errtransport.SplitDSN(class+".0.0", first)
	return class + dsn[1:]
}

// transact runs one mail transaction for dl's pending recipients and
// records a result for each. early=true means a reused session was found
// dead before MAIL FROM was accepted: nothing was recorded and the caller
// should try another session. healthy says whether the session may be
// cached.
func (s *session) transact(ctx context.Context, b *client.Batch, setupDone time.Time) (early, healthy bool) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	d := b.D
	pending := b.Pending
	b.Pending = nil
	fail := func(idx []int, o outcome) { b.SetAll(idx, o.dsn, o.text, s.relay, s.uses, setupDone) }
	set := func(i int, o outcome) { b.Set(i, o.dsn, o.text, s.relay, s.uses, setupDone) }

	// Checks Postfix makes before MAIL FROM, from the LHLO reply.
	if limit, err := strconv.ParseInt(s.ext["SIZE"], 10, 64); err == nil && limit > 0 && d.Size > limit {
		fail(pending, outcome{"5.3.4", fmt.Sprintf("message size %d exceeds size limit %d of server %s", d.Size, limit, s.namaddr)})
		return false, true
	}
	_, utf8 := s.ext["SMTPUTF8"]
	if d.SMTPUTF8 && !utf8 && client.NeedsUTF8(d) {
		fail(pending, outcome{"5.6.7", fmt.Sprintf("SMTPUTF8 is required, but was not offered by host %s", s.namaddr)})
		return false, true
	}
	// Open the content before MAIL, so that a local read error does not
	// leave the session in the middle of DATA.
	body, err := d.Open(ctx)
	if err != nil {
		fail(pending, outcome{"4.3.0", fmt.Sprintf("local data error while talking to %s", s.namaddr)})
		return false, true
	}
	defer body.Close()

	_, pipelining := s.ext["PIPELINING"]
	mail := client.MailCommand(s.has, d, d.SMTPUTF8 && utf8)
	if pipelining {
		// RFC 2920: MAIL, every RCPT and DATA in one go; DATA ends the group.
		lines := []string{mail}
		for _, i := range pending {
			lines = append(lines, client.RcptCommand(s.has, d.Recipients[i]))
		}
		// A probe's group ends with RSET: a group must end with a
		// command that waits for its replies.
		end := "DATA"
		if d.VerifyOnly {
			end = "RSET"
		}
		err = s.send(s.cfg.MailTimeout, append(lines, end)...)
	} else {
		err = s.send(s.cfg.MailTimeout, mail)
	}
	code := 0
	var msg string
	if err == nil {
		code, msg, err = s.read(s.cfg.MailTimeout)
	}
	if err != nil || code == 421 {
		if s.uses > 1 {
			// The cached session went stale (servers say 421 before they
			// drop an idle client): nothing was accepted, reconnect.
			b.Pending = pending
			return true, false
		}
		if err != nil {
			fail(pending, s.ioFail(err, "sending MAIL FROM"))
			return false, false
		}
	}
	if code/100 != 2 {
		fail(pending, s.said(code, msg, "MAIL FROM"))
		// Pipelined RCPT and DATA replies are still on their way: rather
		// than read them, start afresh next time.
		return false, !pipelining && code != 421
	}
	s.dirty = true

	var accepted []int
	for n, i := range pending {
		if !pipelining {
			err = s.send(s.cfg.RcptTimeout, client.RcptCommand(s.has, d.Recipients[i]))
		}
		if err == nil {
			code, msg, err = s.read(s.cfg.RcptTimeout)
		}
		if err != nil {
			o := s.ioFail(err, "sending RCPT TO")
			fail(accepted, o)
			fail(pending[n:], o)
			return false, false
		}
		if code/100 == 2 {
			accepted = append(accepted, i)
			if d.VerifyOnly {
				// A probe ends at RCPT TO (lmtp_address_verify_target).
				set(i, success(code, msg))
			}
			continue
		}
		set(i, s.said(code, msg, "RCPT TO"))
		if code == 421 {
			o := s.ioFail(io.EOF, "sending RCPT TO")
			fail(accepted, o)
			fail(pending[n+1:], o)
			return false, false
		}
	}
	if d.VerifyOnly {
		if pipelining {
			// The RSET that ended the group.
			code, _, err = s.read(s.cfg.RsetTimeout)
			if err != nil || code/100 != 2 {
				return false, false
			}
			s.dirty = false
		}
		return false, true // without pipelining release sends RSET
	}
	if !pipelining {
		if len(accepted) == 0 {
			return false, true // release sends RSET
		}
		err = s.send(s.cfg.DataInitTimeout, "DATA")
	}
	if err == nil {
		code, msg, err = s.read(s.cfg.DataInitTimeout)
	}
	if err != nil {
		fail(accepted, s.ioFail(err, "sending DATA command"))
		return false, false
	}
	if len(accepted) == 0 {
		// The pipelined DATA was refused for want of recipients, as it
		// should be; a server that said 354 anyway waits for a body.
		return false, code != 354 && code != 421
	}
	if code != 354 {
		fail(accepted, s.said(code, msg, "DATA"))
		return false, code != 421
	}

	s.conn.wtimeout = s.cfg.DataXferTimeout
	dw := textproto.NewWriter(s.bw).DotWriter()
	src := &client.Source{R: body}
	if _, err := io.Copy(dw, src); err != nil {
		if src.Err != nil {
			// Our own content failed: the transaction cannot be finished
			// cleanly, so the connection goes too.
			fail(accepted, outcome{"4.3.0", fmt.Sprintf("local data error while talking to %s", s.namaddr)})
		} else {
			fail(accepted, s.ioFail(err, "sending message body"))
		}
		return false, false
	}
	if ctx.Err() != nil {
		// Shutting down: withhold the final dot so that nothing is
		// delivered that we would report as deferred.
		fail(accepted, s.ioFail(ctx.Err(), "sending message body"))
		return false, false
	}
	if err := dw.Close(); err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		fail(accepted, s.ioFail(err, "sending message body"))
		return false, false
	}

	// One reply per accepted recipient, in RCPT order (RFC 2033 §4.2),
	// all within lmtp_data_done_timeout.
	_ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.DataDoneTimeout))
	for n, i := range accepted {
		code, msg, err := s.tr.ReadResponse(0)
		if err != nil && code == 0 {
			fail(accepted[n:], s.ioFail(err, "sending end of data -- message may be sent more than once"))
			return false, false
		}
		if code/100 == 2 {
			set(i, success(code, msg))
			continue
		}
		set(i, s.said(code, msg, "end of DATA"))
	}
	s.dirty = false
	return false, true
}

// success is the log text of a 2xx reply: "250 2.0.0 <ann@example.org> … Saved".
func success(code int, msg string) outcome {
	return outcome{replyDSN(code, msg), fmt.Sprintf("%d %s", code, strings.ReplaceAll(msg, "\n", " "))}
}

// has reports whether LHLO offered keyword kw.
func (s *session) has(kw string) bool { _, ok := s.ext[kw]; return ok }
