package smtp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// trackConn counts the bytes each way (to tell "greeting" from "EHLO" when a
// session dies early) and puts a deadline on every write, since go-smtp sets
// none while the message body streams (smtp_data_xfer_timeout).
type trackConn struct {
	net.Conn
	xfer     time.Duration
	nread    atomic.Int64
	nwritten atomic.Int64
}

func (c *trackConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.nread.Add(int64(n))
	return n, err
}

func (c *trackConn) Write(p []byte) (int, error) {
	if c.xfer > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.xfer))
	}
	n, err := c.Conn.Write(p)
	c.nwritten.Add(int64(n))
	return n, err
}

// replayConn feeds go-smtp a greeting we already read ourselves (for
// STARTTLS, which go-smtp v0.25.1 only offers as "must succeed"), then the
// rest of the stream.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// hasEnhanced reports whether go-smtp parsed an RFC 2034 code from a reply.
func hasEnhanced(e gosmtp.EnhancedCode) bool {
	return e != gosmtp.EnhancedCodeNotSet && e != gosmtp.NoEnhancedCode
}

// formatReply renders a reply the way Postfix logs it: every line with its
// code (and enhanced code), lines joined by a space.
func formatReply(code int, enh gosmtp.EnhancedCode, msg string) string {
	lines := strings.Split(msg, "\n")
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(' ')
		}
		sep := '-'
		if i == len(lines)-1 {
			sep = ' '
		}
		fmt.Fprintf(&b, "%03d%c", code, sep)
		if hasEnhanced(enh) {
			fmt.Fprintf(&b, "%d.%d.%d ", enh[0], enh[1], enh[2])
		}
		b.WriteString(l)
	}
	return strings.TrimRight(b.String(), " ")
}

// replyDSN is the status of a reply: its enhanced code with the class forced
// to the reply code's class (as Postfix does), or "X.0.0".
func replyDSN(code int, enh gosmtp.EnhancedCode) string {
	class := code / 100
	if hasEnhanced(enh) {
		return fmt.Sprintf("%d.%d.%d", class, enh[1], enh[2])
	}
	return fmt.Sprintf("%d.0.0", class)
}

// toSMTPError parses "X.Y.Z text" the way go-smtp's client does, for
// replies we read ourselves.
func toSMTPError(code int, msg string) *gosmtp.SMTPError {
	e := &gosmtp.SMTPError{Code: code, Message: msg}
	first, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return e
	}
	enh, ok := parseEnhanced(first)
	if !ok {
		return e
	}
	e.EnhancedCode = enh
	e.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return e
}

func parseEnhanced(s string) (gosmtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return gosmtp.EnhancedCode{}, false
	}
	var e gosmtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return gosmtp.EnhancedCode{}, false
		}
		e[i] = n
	}
	return e, true
}

// successText renders a 2xx reply's text as go-smtp hands it back ("2.0.0 Ok:
// queued as X", lines joined by "\n").
func successText(code int, msg string) (text, dsn string) {
	text = fmt.Sprintf("%03d %s", code, strings.ReplaceAll(msg, "\n", " "))
	dsn = "2.0.0"
	if first, _, ok := strings.Cut(msg, " "); ok {
		if e, ok := parseEnhanced(first); ok && e[0] == 2 {
			dsn = first
		}
	}
	return text, dsn
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
