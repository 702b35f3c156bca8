// Package reply carries SMTP replies through the stages: an error that reaches
// a peer has its reply code, enhanced status code and text, and says whether
// it is temporary, so every stage can answer the way Postfix does.
package reply

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an SMTP reply that ends a command or a delivery attempt.
type Error struct {
	Code     int    // 3-digit SMTP reply code, e.g. 451
	Enhanced string // RFC 3463 code, e.g. "4.3.0"; may be empty
	Text     string // text safe to show a peer
	Err      error  // the cause, for the log only
}

// New returns an Error with the given code, enhanced code and text.
func New(code int, enhanced, text string) *Error {
	return &Error{Code: code, Enhanced: enhanced, Text: text}
}

// Errorf is New with a formatted text.
func Errorf(code int, enhanced, format string, args ...any) *Error {
	return &Error{Code: code, Enhanced: enhanced, Text: fmt.Sprintf(format, args...)}
}

// Wrap returns a copy of e that records cause.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	return &c
}

// Temporary reports whether the reply is a 4xx one.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// String is the reply line as sent to a peer (without CRLF): "451 4.3.0 text".
func (e *Error) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Code)
	if e.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(e.Enhanced)
	}
	if e.Text != "" {
		b.WriteByte(' ')
		b.WriteString(e.Text)
	}
	return b.String()
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.String() + ": " + e.Err.Error()
	}
	return e.String()
}

func (e *Error) Unwrap() error { return e.Err }

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
