// Package mailbox writes delivered mail to disk the way Postfix's delivery
// agents do: the envelope lines Postfix prepends (mail_copy.c: "From " line,
// Return-Path:, X-Original-To:, Delivered-To:), mbox files appended under
// fcntl/flock and dot-file locks and truncated back on failure, and Maildirs
// written tmp/ → new/. local, virtual and pipe share it.
package mailbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// Flags choose what Copy prepends and how it transforms the content, as
// Postfix's MAIL_COPY_* flags do.
type Flags int

const (
	From       Flags = 1 << iota // "From sender  asctime" line
	ReturnPath                   // Return-Path: <sender>
	OrigRcpt                     // X-Original-To: orig
	Delivered                    // Delivered-To: rcpt (lowercased)
	Quote                        // ">From " quoting of body lines
	Blank                        // a blank line after the message
	Dot                          // SMTP dot stuffing (pipe's "." flag)
	CRLF                         // CRLF line ends (pipe's "C"-less default is LF)

	// MboxFlags is what an mbox file gets (MAIL_COPY_MBOX).
	MboxFlags = From | Quote | Blank
)

// Envelope is what the prepended lines say.
type Envelope struct {
	Sender    string    // "" is the null sender
	OrigRcpt  string    // X-Original-To
	Delivered string    // Delivered-To
	Now       time.Time // the "From " line's date; zero: time.Now()
}

// Headers returns the lines that flags ask for, in mail_copy()'s order.
func Headers(flags Flags, env Envelope) string {
	var b strings.Builder
	nl := "\n"
	if flags&CRLF != 0 {
		nl = "\r\n"
	}
	if flags&From != 0 {
		now := env.Now
		if now.IsZero() {
			now = time.Now()
		}
		sender := env.Sender
		if sender == "" {
			sender = "MAILER-DAEMON"
		}
		// asctime(3) layout, as Postfix writes it with "%.24s".
		fmt.Fprintf(&b, "From %s  %s%s", sender, now.Format("Mon Jan _2 15:04:05 2006"), nl)
	}
	if flags&ReturnPath != 0 {
		fmt.Fprintf(&b, "Return-Path: <%s>%s", env.Sender, nl)
	}
	if flags&OrigRcpt != 0 {
		fmt.Fprintf(&b, "X-Original-To: %s%s", env.OrigRcpt, nl)
	}
	if flags&Delivered != 0 {
		// Lowercased so that loop detection compares reliably.
		fmt.Fprintf(&b, "Delivered-To: %s%s", strings.ToLower(env.Delivered), nl)
	}
	return b.String()
}

// ReadError marks a failure to read the message content (the queue), as
// opposed to a failure to write the destination.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read message content: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Copy writes the prepended lines and then content (CRLF line ends, as
// stored) to dst with local line ends, quoting and the trailing blank line
// as flags say. Errors from content come back as *ReadError.
func Copy(ctx context.Context, dst io.Writer, flags Flags, env Envelope, content io.Reader) error {
	w := bufio.NewWriterSize(dst, 64<<10)
	if _, err := w.WriteString(Headers(flags, env)); err != nil {
		return err
	}
	nl := "\n"
	if flags&CRLF != 0 {
		nl = "\r\n"
	}
	br := bufio.NewReaderSize(content, 64<<10)
	atStart := true    // the next byte begins a line
	pendingCR := false // a CR ended the previous chunk of a long line
	for {
		if err := ctx.Err(); err != nil {
			return &ReadError{err}
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if pendingCR && chunk[0] != '\n' {
				w.WriteByte('\r')
			}
			pendingCR = false
			full := chunk[len(chunk)-1] == '\n'
			body := chunk
			if full {
				body = body[:len(body)-1]
				body = trimCR(body)
			} else if body[len(body)-1] == '\r' {
				body, pendingCR = body[:len(body)-1], true
			}
			if atStart {
				if flags&Quote != 0 && hasPrefix(body, "From ") {
					w.WriteByte('>')
				}
				if flags&Dot != 0 && len(body) > 0 && body[0] == '.' {
					w.WriteByte('.')
				}
			}
			w.Write(body)
			if full {
				w.WriteString(nl)
			}
			atStart = full
		}
		if err == io.EOF {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return &ReadError{err}
		}
	}
	if pendingCR {
		w.WriteByte('\r')
	}
	if flags&Blank != 0 {
		if !atStart {
			w.WriteString(nl)
		}
		w.WriteString(nl)
	}
	return w.Flush()
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// limitWriter fails with EFBIG once more than n bytes were written, as a
// write past RLIMIT_FSIZE does for Postfix (mailbox_size_limit).
type limitWriter struct {
	w io.Writer
	n int64 // bytes still allowed; <0: unlimited
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n >= 0 {
		if int64(len(p)) > l.n {
			return 0, syscall.EFBIG
		}
		l.n -= int64(len(p))
	}
	return l.w.Write(p)
}

// Error is a delivery failure with the DSN that Postfix gives it.
type Error struct {
	DSN  string // "4.2.0", "5.2.2", …
	Text string
}

func (e *Error) Error() string { return e.Text }

// DSNFor classifies a file system error like Postfix's mbox_dsn(): a full
// mailbox or file bounces, a full disk or a lock conflict is retried, and
// anything else gets def.
func DSNFor(err error, def string) string {
	switch {
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ESTALE):
		return "4.2.0"
	case errors.Is(err, syscall.ENOSPC):
		return "4.3.0"
	case errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return "5.2.2"
	}
	return def
}

// ErrnoText is the C library's wording of an errno ("Permission denied"),
// which is what Postfix's %m prints.
func ErrnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		s := en.Error()
		if s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}
