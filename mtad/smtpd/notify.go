package smtpd

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/reply"
)

// errClass is a set of Postfix's mail error classes (mail_error(3)), the
// names that notify_classes lists. smtpd notes the class of each error in
// a session; the postmaster gets a transcript when one is in
// notify_classes.
type errClass uint16

const (
	errBounce errClass = 1 << iota
	err2Bounce
	errDelay
	errPolicy
	errProtocol
	errResource
	errSoftware
	errData
)

var classNames = map[string]errClass{
	"bounce":   errBounce,
	"2bounce":  err2Bounce,
	"delay":    errDelay,
	"policy":   errPolicy,
	"protocol": errProtocol,
	"resource": errResource,
	"software": errSoftware,
	"data":     errData,
}

// parseNotifyClasses reads notify_classes; an unknown name is an error, as
// it is fatal to Postfix.
func parseNotifyClasses(list []string) (errClass, error) {
	var m errClass
	for _, item := range list {
		for _, name := range strings.FieldsFunc(item, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			c, ok := classNames[strings.ToLower(name)]
			if !ok {
				return 0, fmt.Errorf("smtpd: unknown notify_classes value \"%s\"", name)
			}
			m |= c
		}
	}
	return m, nil
}

// classOf is the class Postfix gives a restriction's or cleanup's reply:
// a table that cannot be read or a queue that cannot be written is a
// resource problem, a configuration error a software one, an unknown user
// or an oversized or looping message a bounce, and the rest policy.
func classOf(r *reply.Error) errClass {
	d := r.Enhanced
	if i := strings.IndexByte(d, '.'); i >= 0 {
		d = d[i:] // soft_bounce may have made 5.x.y into 4.x.y
	}
	switch {
	case d == ".3.0" || d == ".3.1":
		return errResource
	case d == ".3.5":
		return errSoftware
	case (d == ".1.1" || d == ".1.0") && strings.Contains(r.Text, "User unknown"),
		d == ".3.4" || d == ".4.0" || d == ".4.6":
		return errBounce
	}
	return errPolicy
}

// fail notes that the current command failed with an error of class c
// (0: an error of no class, such as "554 no valid recipients").
func (s *session) fail(c errClass) {
	s.errMask |= c
	s.classified = true
}

// chat records one line for the postmaster's transcript, as
// smtpd_chat_query and smtpd_chat_reply do. Postfix keeps no history
// when notify_classes is empty.
func (s *session) chat(prefix, line string) {
	if s.cfg.notifyMask == 0 {
		return
	}
	s.history = append(s.history, prefix+line)
}

// chatReset is Postfix's chat_reset: once the history holds more than
// threshold lines, the postmaster gets it if an error of a notify class
// happened, and a new one starts. HELO, EHLO, RSET and the end of a
// message pass smtpd_history_flush_threshold, which bounds the history;
// the end of the session passes 0.
func (s *session) chatReset(threshold int) {
	if len(s.history) <= threshold {
		return
	}
	if s.errMask&s.cfg.notifyMask != 0 {
		s.notify()
	}
	s.errMask = 0
	s.history = nil
}

// Transcript lines are wrapped as smtpd_chat_notify does: at 78 columns,
// continuation lines indented by 4, every line after one space so that
// text from the client never starts a line.
const (
	noticeWidth  = 78
	noticeIndent = 4
)

// notify mails the transcript to error_notice_recipient from the
// double-bounce address, so that a notice that cannot be delivered is
// dropped rather than bounced back and forth.
func (s *session) notify() {
	var b strings.Builder
	line := func(l string) {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	rcpt := s.cfg.ErrorNoticeRecipient
	line("From: MAILER-DAEMON (Mail Delivery System)")
	line("To: " + rcpt + " (Postmaster)")
	line("Subject: " + s.cfg.MailName + " SMTP server: errors from " + s.namaddr())
	line("")
	line("Transcript of session follows.")
	line("")
	for _, h := range s.history {
		lineWrap(printableUTF8(h), noticeWidth, noticeIndent, func(text string, indent int) {
			line(" " + strings.Repeat(" ", indent) + text)
		})
	}
	line("")
	if s.reason != "" {
		line("Session aborted, reason: " + s.reason)
	}
	line("")
	line("For other details, see the local mail logfile")
	env := &envelope.Envelope{
		Sender:     s.cfg.DoubleBounceSender + "@" + s.cfg.Hostname,
		Recipients: []envelope.Recipient{{Address: rcpt, Orig: rcpt}},
		Arrival:    time.Now(),
		Internal:   true, // like a bounce: no always_bcc
	}
	if err := s.cfg.Notify.Submit(s.srv.base, env, strings.NewReader(b.String())); err != nil {
		s.logf("warning: postmaster notify: %v", err)
	}
}

// printableUTF8 is Postfix's printable(s, '?') with UTF-8 enabled: control
// characters and malformed UTF-8 become '?'.
func printableUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// lineWrap is Postfix's line_wrap(3): break text at blanks so that lines
// fit width columns; the first line is not indented, the others by
// indent. A word longer than a line is not broken. Trailing blanks of each
// piece are dropped.
func lineWrap(text string, width, indent int, out func(text string, indent int)) {
	curIndent, curWidth := 0, width
	start := 0 // start of the current output line
	word := 0  // start of the current word
	for {
		sp := strings.IndexAny(text[word:], " \t")
		nextSpace := len(text)
		if sp >= 0 {
			nextSpace = word + sp
		}
		if word > start && nextSpace-start > curWidth {
			out(strings.TrimRight(text[start:word], " \t"), curIndent)
			for word < len(text) && (text[word] == ' ' || text[word] == '\t') {
				word++
			}
			if start == 0 {
				curIndent += indent
				curWidth -= indent
			}
			start = word
		}
		if sp < 0 {
			break
		}
		word = nextSpace + 1
	}
	out(strings.TrimRight(text[start:], " \t"), curIndent)
}
