// Package maillog writes the one-line-per-event mail log in Postfix's maillog
// format ("Mmm dd hh:mm:ss host postfix/smtpd[pid]: text"), so pflogsumm and
// the admin's own scripts keep working. It is separate from debug output.
package maillog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Logger writes mail log lines. It is safe for concurrent use.
type Logger struct {
	mu   *sync.Mutex // shared with the Loggers WithName makes: one writer
	w    io.Writer
	host string // short host name, as syslog writes it
	name string // syslog_name, "postfix" by default
	pid  int
	now  func() time.Time
}

// New returns a Logger writing to w. host is myhostname (its first label is
// used, as syslog does); name is syslog_name.
func New(w io.Writer, host, name string) *Logger {
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			host = host[:i]
			break
		}
	}
	if name == "" {
		name = "postfix"
	}
	return &Logger{mu: new(sync.Mutex), w: w, host: host, name: name, pid: os.Getpid(), now: time.Now}
}

// WithName returns a Logger for the same log under another syslog_name, as
// a master.cf service's "-o syslog_name=postfix/submission" gives its smtpd.
func (l *Logger) WithName(name string) *Logger {
	if l == nil || name == "" || name == l.name {
		return l
	}
	c := *l
	c.name = name
	return &c
}

// Discard returns a Logger that writes nothing (for unit tests of one stage).
func Discard() *Logger { return New(io.Discard, "localhost", "postfix") }

// Printf logs one event for service (smtpd, cleanup, qmgr, smtp, virtual, …).
func (l *Logger) Printf(service, format string, args ...any) {
	if l == nil {
		return
	}
	msg := printable(fmt.Sprintf(format, args...))
	ts := l.now().Format(time.Stamp)
	l.mu.Lock()
	fmt.Fprintf(l.w, "%s %s %s/%s[%d]: %s\n", ts, l.host, l.name, service, l.pid, msg)
	l.mu.Unlock()
}

// Delays formats Postfix's delay=T and delays=a/b/c/d values: at most two
// significant digits, values under 10ms printed as 0.
func Delays(total time.Duration, parts ...time.Duration) (string, string) {
	s := FormatDelay(total)
	d := ""
	for i, p := range parts {
		if i > 0 {
			d += "/"
		}
		d += FormatDelay(p)
	}
	return s, d
}

// FormatDelay prints a duration in seconds the way Postfix's delay fields do.
func FormatDelay(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 0.01:
		return "0"
	case s < 0.1:
		return fmt.Sprintf("%.2g", s)
	case s < 10:
		return fmt.Sprintf("%.2g", s)
	default:
		return fmt.Sprintf("%.0f", s)
	}
}

// printable replaces control characters with '?', as Postfix's logging
// does, so that text from clients cannot forge or break log lines.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < 0x20 || b[j] == 0x7f {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}
