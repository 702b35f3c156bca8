// Package errtransport holds the delivery agents that deliver nothing:
// Postfix's error(8) (bounce every recipient), its retry variant (defer every
// recipient) and discard(8) (report every recipient sent). The next hop is
// the reason: transport_maps entries such as "error:5.1.1 no such user" or
// "discard:silenced" put it there, and an optional RFC 3463 code at its
// start sets the status (dsn_split in Postfix).
package errtransport

import (
	"context"
	"strings"

	"sqlmta/mtad/transport"
)

// Transport answers every recipient the same way. It is safe for
// concurrent use.
type Transport struct {
	status     transport.Status
	defaultDSN string
}

var _ transport.Transport = (*Transport)(nil)

// Error returns the error transport: every recipient bounces with the next
// hop's text (5.0.0 unless the text starts with a code).
func Error() *Transport { return &Transport{status: transport.Bounced, defaultDSN: "5.0.0"} }

// Retry returns the retry transport: every recipient is deferred with the
// next hop's text (4.0.0 unless the text starts with a code).
func Retry() *Transport { return &Transport{status: transport.Deferred, defaultDSN: "4.0.0"} }

// Discard returns the discard transport: every recipient is reported sent
// with the next hop's text (2.0.0 unless the text starts with a code).
func Discard() *Transport { return &Transport{status: transport.Sent, defaultDSN: "2.0.0"} }

// Verifies (transport.Verifier): these agents deliver nothing anyway, so a
// probe gets the answer mail would.
func (t *Transport) Verifies() {}

// Deliver implements transport.Transport. As in Postfix, these agents make
// no connection: the log shows relay=none.
func (t *Transport) Deliver(_ context.Context, d *transport.Delivery) []transport.Result {
	dsn, text := SplitDSN(t.defaultDSN, d.Nexthop)
	return transport.FailAll(d, t.status, dsn, text, "none", 0)
}

// SplitDSN is Postfix's dsn_split: "4.7.1 text" gives "4.7.1" and "text";
// text without a valid leading code gives def and the whole (trimmed) text.
func SplitDSN(def, text string) (dsn, rest string) {
	text = strings.TrimSpace(text)
	code, after, _ := strings.Cut(text, " ")
	if validDSN(code) {
		return code, strings.TrimSpace(after)
	}
	return def, text
}

// validDSN checks RFC 3463's form: class 2, 4 or 5, then a subject of one to
// three digits and a detail of one to three digits.
func validDSN(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
