// Package client holds what the network delivery agents (smtp, lmtp) share
// around their protocol: the per-recipient bookkeeping of one delivery
// request with its delays, the envelope checks made before connecting, and
// Postfix's wording of connect and content errors.
package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"sqlmta/mtad/transport"
)

// Batch is the state of one Deliver call: a Result per recipient, and the
// recipients still without one.
type Batch struct {
	D       *transport.Delivery
	Start   time.Time
	Res     []transport.Result
	Pending []int // indexes into D.Recipients without a result yet
}

// NewBatch starts the bookkeeping for d. A recipient whose address cannot
// be sent in a command (CR, LF or angle brackets) gets its bounce at once;
// the others are pending.
func NewBatch(d *transport.Delivery) *Batch {
	b := &Batch{D: d, Start: time.Now(), Res: make([]transport.Result, len(d.Recipients))}
	for i, r := range d.Recipients {
		if strings.ContainsAny(r.Address, "\r\n<>") {
			b.Set(i, "5.1.3", fmt.Sprintf("bad address syntax: %q", r.Address), "none", 0, time.Time{})
			continue
		}
		b.Pending = append(b.Pending, i)
	}
	return b
}

// Set records recipient i's outcome. setupDone splits the time since Start
// into delays "c" (connection set-up) and "d" (transmission); zero means
// no session was set up, so all of it is set-up.
func (b *Batch) Set(i int, dsn, text, relay string, uses int, setupDone time.Time) {
	now := time.Now()
	setup, xmit := now.Sub(b.Start), time.Duration(0)
	if !setupDone.IsZero() {
		setup, xmit = setupDone.Sub(b.Start), now.Sub(setupDone)
	}
	b.Res[i] = transport.Result{
		RecipientID: b.D.Recipients[i].ID, Status: transport.StatusForDSN(dsn), DSN: dsn, Text: text,
		Relay: relay, ConnUse: uses, ConnSetup: setup, Transmit: xmit,
	}
}

// SetAll records the same outcome for each index in idx.
func (b *Batch) SetAll(idx []int, dsn, text, relay string, uses int, setupDone time.Time) {
	for _, i := range idx {
		b.Set(i, dsn, text, relay, uses, setupDone)
	}
}

// DialErrText words a dial error like Postfix's "%m": the C library's
// strerror text, capitalised ("Connection refused", "No such file or
// directory", "Connection timed out").
func DialErrText(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "Connection timed out"
	}
	s := err.Error()
	// *net.OpError wrapping *os.SyscallError prints "dial tcp …: connect: connection refused".
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if s == "" {
		return "Connection failed"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Source wraps the message content and remembers a read error, so that a
// failed copy to the server can be blamed on the right side ("local data
// error" rather than "lost connection").
type Source struct {
	R   io.Reader
	Err error
}

func (s *Source) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF {
		s.Err = err
	}
	return n, err
}

// PrintableASCII reports whether s holds only printable ASCII without
// spaces, as xtext values and ESMTP parameters must.
func PrintableASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 33 || r > 126 }) < 0
}

// NeedsUTF8 reports whether the envelope itself cannot go without SMTPUTF8.
// (Postfix also looks at the headers; the envelope is what we know here.)
func NeedsUTF8(d *transport.Delivery) bool {
	ascii := func(s string) bool { return strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) < 0 }
	all := ascii(d.Sender)
	for _, r := range d.Recipients {
		all = all && ascii(r.Address)
	}
	return !all
}

// MailCommand is MAIL FROM with the parameters the server offers (has
// reports an EHLO or LHLO keyword). BODY follows the declared body type;
// mail whose type is unknown is declared 8BITMIME, which is harmless for
// 7-bit content and right for 8-bit.
func MailCommand(has func(string) bool, d *transport.Delivery, smtputf8 bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MAIL FROM:<%s>", d.Sender)
	if has("SIZE") && d.Size > 0 {
		fmt.Fprintf(&b, " SIZE=%d", d.Size)
	}
	if has("8BITMIME") {
		if strings.EqualFold(d.BodyType, "7BIT") {
			b.WriteString(" BODY=7BIT")
		} else {
			b.WriteString(" BODY=8BITMIME")
		}
	}
	if smtputf8 {
		b.WriteString(" SMTPUTF8")
	}
	if has("DSN") {
		if ret := strings.ToUpper(d.Ret); ret == "FULL" || ret == "HDRS" {
			b.WriteString(" RET=" + ret)
		}
		if d.EnvID != "" && PrintableASCII(d.EnvID) {
			b.WriteString(" ENVID=" + XText(d.EnvID))
		}
	}
	return b.String()
}

// RcptCommand is RCPT TO with NOTIFY and ORCPT when the server offers DSN.
// Values that are not well-formed are left out rather than failing the
// recipient.
func RcptCommand(has func(string) bool, r transport.Recipient) string {
	line := "RCPT TO:<" + r.Address + ">"
	if !has("DSN") {
		return line
	}
	if n := strings.ToUpper(strings.ReplaceAll(r.Notify, " ", "")); n != "" && validNotify(n) {
		line += " NOTIFY=" + n
	}
	// ORCPT is stored as the client gave it: "rfc822;" and xtext.
	if typ, _, ok := strings.Cut(r.ORCPT, ";"); ok && typ != "" && PrintableASCII(r.ORCPT) {
		line += " ORCPT=" + r.ORCPT
	}
	return line
}

func validNotify(n string) bool {
	words := strings.Split(n, ",")
	for _, w := range words {
		switch w {
		case "NEVER":
			if len(words) > 1 {
				return false
			}
		case "SUCCESS", "FAILURE", "DELAY":
		default:
			return false
		}
	}
	return true
}

// XText encodes s for ENVID (RFC 3461 §4).
func XText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
