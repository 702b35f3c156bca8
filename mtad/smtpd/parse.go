package smtpd

import (
	"sqlmta/mtad/envelope"
	"strings"
	"unicode/utf8"
)

// splitPath splits the arguments of MAIL ("FROM:<a> PARAM…") or RCPT
// ("TO:<a> PARAM…"). syntaxOK is false when the keyword or the address is
// missing (Postfix: "501 5.5.4 Syntax: …"); tokOK is false when the address
// token itself is malformed, e.g. an unclosed '<' (Postfix: "Bad … address
// syntax").
func splitPath(args, keyword string) (token string, params []string, syntaxOK, tokOK bool) {
	args = strings.TrimLeft(args, " \t")
	if len(args) < len(keyword) || !strings.EqualFold(args[:len(keyword)], keyword) {
		return "", nil, false, false
	}
	rest := strings.TrimLeft(args[len(keyword):], " \t")
	if rest == "" {
		return "", nil, false, false
	}
	if rest[0] == '<' {
		end := closingBracket(rest)
		if end < 0 {
			return rest, nil, true, false
		}
		token, rest = rest[:end+1], rest[end+1:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return token, nil, true, false
		}
	} else {
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			i = len(rest)
		}
		token, rest = rest[:i], rest[i:]
	}
	return token, strings.Fields(rest), true, true
}

// closingBracket returns the index of the '>' that closes the '<' at s[0],
// skipping quoted strings and backslash escapes; -1 if there is none.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && !quoted:
			return i
		}
	}
	return -1
}

// extractAddr turns an address token ("<user@example.com>", "user@example.com",
// "<@relay:user@example.com>") into the internal form: brackets removed, a
// source route dropped (RFC 5321 §C), a quoted local part unquoted. ok is false
// for what Postfix's extract_addr rejects: more than one address, unquoted
// specials or white space, or an empty address where none is allowed. Other
// control characters pass, as they pass Postfix's smtpd.
func extractAddr(token string, allowEmpty bool) (addr string, ok bool) {
	text := token
	if len(text) >= 2 && text[0] == '<' && text[len(text)-1] == '>' {
		text = text[1 : len(text)-1]
	} else if strings.ContainsAny(text, "<>") {
		return "", false
	}
	if strings.HasPrefix(text, "@") {
		if i := strings.IndexByte(text, ':'); i >= 0 {
			text = text[i+1:]
		}
	}
	if !utf8.ValidString(text) {
		return "", false
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == 0 || c == '\r' || c == '\n' || c == '\t':
			// Not even quoted or escaped (qtextSMTP has no controls):
			// these would break the queue file's lines and the logs.
			return "", false
		case c == '\\' && i+1 < len(text):
			i++
			if n := text[i]; n == 0 || n == '\r' || n == '\n' || n == '\t' {
				return "", false
			}
			b.WriteByte(text[i])
		case c == '"':
			quoted = !quoted
		case quoted:
			b.WriteByte(c)
		case strings.IndexByte(" \t<>(),;:[]", c) >= 0 && !inDomainLiteral(text, i):
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	if quoted {
		return "", false
	}
	addr = b.String()
	if addr == "" && !allowEmpty {
		return "", false
	}
	return addr, true
}

// inDomainLiteral reports whether text[i] is inside or delimits an address
// literal after the last '@' ("user@[192.0.2.1]", "user@[IPv6:2001:db8::1]").
func inDomainLiteral(text string, i int) bool {
	at := strings.LastIndexByte(text, '@')
	if at < 0 || i <= at || at+1 >= len(text) || text[at+1] != '[' || !strings.HasSuffix(text, "]") {
		return false
	}
	c := text[i]
	return c == '[' || c == ']' || c == ':'
}

// allPrint reports whether s is printable ASCII, as Postfix requires of ENVID.
func allPrint(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseNotify validates a DSN NOTIFY value (RFC 3461 §4.1) and returns it
// upper-cased: NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY.
func parseNotify(v string) (string, bool) {
	v = strings.ToUpper(v)
	seen := map[string]bool{}
	for _, w := range strings.Split(v, ",") {
		switch w {
		case "NEVER", "SUCCESS", "FAILURE", "DELAY":
			if seen[w] {
				return "", false
			}
			seen[w] = true
		default:
			return "", false
		}
	}
	if seen["NEVER"] && len(seen) > 1 {
		return "", false
	}
	return v, true
}

// parseORCPT validates "addr-type;xtext" and returns "addr-type;decoded".
func parseORCPT(v string) (string, bool) {
	typ, coded, found := strings.Cut(v, ";")
	if !found || typ == "" {
		return "", false
	}
	dec, ok := envelope.DecodeXtext(coded)
	if !ok {
		return "", false
	}
	return typ + ";" + dec, true
}

// neuter makes a HELO argument safe for logs and headers the way Postfix
// does: non-printable bytes and " <>()\";@" become '?'.
func neuter(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" <>()\\\";@", c) >= 0 {
			b[i] = '?'
		}
	}
	return string(b)
}

// isHeaderName reports whether w looks like "Name:" — a message header sent
// as a command, which Postfix treats as a non-SMTP client.
func isHeaderName(w string) bool {
	if len(w) < 2 || w[len(w)-1] != ':' {
		return false
	}
	for i := 0; i < len(w)-1; i++ {
		c := w[i]
		if c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
