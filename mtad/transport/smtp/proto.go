package smtp

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// proto is our side of a session after EHLO. go-smtp's client sends one
// command and waits for its reply, so it cannot pipeline (RFC 2920) as
// Postfix's smtp(8) does: it sends MAIL, every RCPT and DATA in one write
// and then reads the replies. go-smtp keeps the greeting, EHLO (with its HELO
// fallback) and the parsed extensions; from then on every byte on the
// connection goes through proto, so that one reader sees all replies.
type proto struct {
	conn net.Conn // what go-smtp was given: plain or TLS
	r    *textproto.Reader
	w    *bufio.Writer
	last string // the text of the last reply, as received
}

func newProto(conn net.Conn) *proto {
	return &proto{conn: conn, r: textproto.NewReader(bufio.NewReader(conn)), w: bufio.NewWriter(conn)}
}

// send writes the commands with one flush.
func (p *proto) send(cmds ...string) error {
	for _, c := range cmds {
		p.w.WriteString(c)
		p.w.WriteString("\r\n")
	}
	return p.w.Flush()
}

// sendAsync writes the commands from another goroutine, so that a server
// that answers while we still write (a long recipient list) cannot
// deadlock us; the channel gives the write error.
func (p *proto) sendAsync(cmds ...string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- p.send(cmds...) }()
	return done
}

// reply reads one reply within timeout. A reply with a code comes back as
// *gosmtp.SMTPError whatever its class (callers look at the code); anything
// else is an I/O or protocol failure.
func (p *proto) reply(timeout time.Duration) (*gosmtp.SMTPError, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	code, msg, err := p.r.ReadResponse(0)
	if err != nil {
		// With expectCode 0 a *textproto.Error cannot come back; any
		// error is a broken line or connection.
		return nil, err
	}
	p.last = msg
	return toSMTPError(code, msg), nil
}

// dataWriter returns a writer that dot-stuffs the body and ends it with
// "." on Close.
func (p *proto) dataWriter() io.WriteCloser {
	return textproto.NewWriter(p.w).DotWriter()
}

// cmd sends one command and reads its reply (RSET, QUIT).
func (p *proto) cmd(timeout time.Duration, c string) (*gosmtp.SMTPError, error) {
	_ = p.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := p.send(c); err != nil {
		return nil, err
	}
	return p.reply(timeout)
}
