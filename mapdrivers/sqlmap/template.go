package sqlmap

import (
	"fmt"
	"strconv"
	"strings"
)

// Flags gathered from the query and result_format templates, as Postfix's
// db_common_parse does: they decide which keys and results are skipped.
// Both templates feed one set, so a result_format with %D makes keys
// without a domain skip the query too, exactly as in Postfix.
type needs struct {
	keyUser, keyDomain     bool
	valueUser, valueDomain bool
	nparts                 int // highest %1…%9
}

// scanCodes validates the %-codes of format and adds what they need to n.
// query tells whether format is the query (lowercase codes refer to the key)
// or result_format (lowercase codes refer to the result value).
func (n *needs) scanCodes(format string, query bool) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i == len(format) {
			return fmt.Errorf("invalid %s template %q: %% at end", tmplName(query), format)
		}
		switch c := format[i]; {
		case c == '%', c == 's', c == 'S':
		case c == 'u':
			if query {
				n.keyUser = true
			} else {
				n.valueUser = true
			}
		case c == 'd':
			if query {
				n.keyDomain = true
			} else {
				n.valueDomain = true
			}
		case c == 'U':
			n.keyUser = true
		case c == 'D':
			n.keyDomain = true
		case c >= '1' && c <= '9':
			n.keyDomain = true
			n.nparts = max(n.nparts, int(c-'0'))
		default:
			return fmt.Errorf("invalid %s template %q: unknown code %%%c", tmplName(query), format, c)
		}
	}
	return nil
}

func tmplName(query bool) string {
	if query {
		return "query"
	}
	return "result"
}

// addr is a lookup key or a result value split the way db_common_expand
// splits it: at the last '@'.
type addr struct {
	whole  string
	at     int      // index of the last '@', or -1
	labels []string // non-empty domain labels, only when needed
}

func (a addr) user() string {
	if a.at < 0 {
		return a.whole
	}
	return a.whole[:a.at]
}

func (a addr) domain() string { return a.whole[a.at+1:] }

// splitAddr splits s; ok is false when the needs say that s must be skipped
// (no SQL sent for a key, value dropped for a result). user/domain say which
// of n's user/domain needs apply (the key's for a query, the value's for a
// result).
func splitAddr(s string, needUser, needDomain bool, nparts int) (addr, bool) {
	a := addr{whole: s, at: -1}
	if needUser || needDomain {
		a.at = strings.LastIndexByte(s, '@')
	}
	if needDomain && (a.at < 0 || a.at == len(s)-1) {
		return a, false
	}
	if needUser && a.at == 0 {
		return a, false
	}
	if nparts > 0 {
		if a.at < 0 {
			return a, false
		}
		// argv_split drops empty fields, so "a..b" has two labels.
		a.labels = strings.FieldsFunc(a.domain(), func(r rune) bool { return r == '.' })
		if len(a.labels) < nparts {
			return a, false
		}
	}
	return a, true
}

// codeValue is the text a %-code stands for. value is the key (query) or the
// result (result_format); key is the lookup key in both cases.
func codeValue(c byte, value, key addr) string {
	switch c {
	case 's':
		return value.whole
	case 'u':
		return value.user()
	case 'd':
		return value.domain()
	case 'S':
		return key.whole
	case 'U':
		return key.user()
	case 'D':
		return key.domain()
	case '%':
		return "%"
	}
	// %1…%9, counted from the right.
	return key.labels[len(key.labels)-int(c-'0')]
}

// expandResult applies result_format to one result value.
func expandResult(format string, value, key addr) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		b.WriteString(codeValue(format[i], value, key))
	}
	return b.String()
}

// dialect is what the template compiler needs to know about an SQL dialect.
type dialect struct {
	name string
	// doubleQuoteString: "…" is a string literal (MySQL), not an identifier.
	doubleQuoteString bool
	// backslashEscapes: \ escapes inside '…' literals (MySQL's default).
	backslashEscapes bool
	hashComment      bool // # starts a comment (MySQL)
	placeholder      func(n int) string
}

var (
	pgDialect = dialect{name: "pgsql", placeholder: func(n int) string { return "$" + strconv.Itoa(n) }}
	myDialect = dialect{name: "mysql", doubleQuoteString: true, backslashEscapes: true, hashComment: true,
		placeholder: func(int) string { return "?" }}
	liteDialect = dialect{name: "sqlite", placeholder: func(int) string { return "?" }}
)

// A piece of a parameter's value: literal text or a %-code.
type piece struct {
	text string
	code byte // 0 for text
}

// A segment of the compiled query.
type segment struct {
	sql    string  // verbatim SQL (kind 0)
	param  []piece // a bound parameter built from pieces (kind 1)
	inline byte    // a %-code pasted into the SQL text (kind 2)
	kind   int
}

// compiled is a query template turned into SQL with bound parameters.
//
// Postfix pastes every %-code into the SQL text, quoted by the client
// library. We bind instead: a string literal that contains %-codes ('%s',
// '%u@%d', '%%%s') becomes one parameter whose value is the literal's text
// with the codes substituted, so no key can change the statement. A code
// outside any literal (a number context, an identifier) cannot be bound; it
// is pasted, but only when its value is a harmless token (see safeToken), so
// there too a key can never alter the query.
type compiled struct {
	segs   []segment
	static string // the SQL text when there are no inline codes
	inline bool
}

// compileQuery splits query into SQL text, literals with codes (→ params)
// and codes outside literals (→ inline).
func compileQuery(query string, d dialect) (*compiled, error) {
	c := &compiled{}
	var sqlText strings.Builder
	flushSQL := func() {
		if sqlText.Len() > 0 {
			c.segs = append(c.segs, segment{sql: sqlText.String()})
			sqlText.Reset()
		}
	}
	// plainCodes copies s (SQL that is not a string literal), turning %% into
	// % and other codes into inline segments.
	plainCodes := func(s string) {
		for i := 0; i < len(s); i++ {
			if s[i] != '%' {
				sqlText.WriteByte(s[i])
				continue
			}
			i++
			if s[i] == '%' {
				sqlText.WriteByte('%')
				continue
			}
			flushSQL()
			c.segs = append(c.segs, segment{kind: 2, inline: s[i]})
			c.inline = true
		}
	}
	q := query
	for len(q) > 0 {
		ch := q[0]
		switch {
		case ch == '\'' || (ch == '"' && d.doubleQuoteString):
			pos := len(query) - len(q)
			eString := isEString(query, pos, d)
			esc := d.backslashEscapes || eString
			end, ok := literalEnd(q, ch, esc)
			if !ok {
				return nil, fmt.Errorf("unterminated string literal in query %q", query)
			}
			lit := q[:end]
			q = q[end:]
			body := lit[1 : len(lit)-1]
			if !hasDynamicCode(body) {
				plainCodes(lit) // only %% inside
				continue
			}
			pieces, ok := literalPieces(body, ch, esc)
			if !ok {
				// An escape that runs into a code (e.g. '\%s'): keep
				// Postfix's textual substitution, under the inline rules.
				plainCodes(lit)
				continue
			}
			if eString {
				// E'%s' → E$1 would not parse: drop the E, which the
				// default case has just copied.
				s := sqlText.String()
				sqlText.Reset()
				sqlText.WriteString(s[:len(s)-1])
			}
			flushSQL()
			c.segs = append(c.segs, segment{kind: 1, param: pieces})
		case ch == '"' || ch == '`' || (ch == '[' && d.name == "sqlite"):
			closeCh := ch
			if ch == '[' {
				closeCh = ']'
			}
			end := strings.IndexByte(q[1:], closeCh)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted identifier in query %q", query)
			}
			plainCodes(q[:end+2])
			q = q[end+2:]
		case strings.HasPrefix(q, "--") || (ch == '#' && d.hashComment):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				end = len(q) - 1
			}
			sqlText.WriteString(dropCodes(q[:end+1]))
			q = q[end+1:]
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q[2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment in query %q", query)
			}
			sqlText.WriteString(dropCodes(q[:end+4]))
			q = q[end+4:]
		default:
			n := 1
			if ch == '%' {
				n = 2 // keep %' together: "%'" is not a quote
			}
			plainCodes(q[:n])
			q = q[n:]
		}
	}
	flushSQL()
	if !c.inline {
		c.static = c.render(nil, d)
	}
	return c, nil
}

// isEString: is the literal at query[pos] a PostgreSQL E'…' string?
func isEString(query string, pos int, d dialect) bool {
	if d.name != "pgsql" || pos == 0 || (query[pos-1] != 'E' && query[pos-1] != 'e') {
		return false
	}
	if pos >= 2 {
		p := query[pos-2]
		if p == '_' || p >= '0' && p <= '9' || p >= 'a' && p <= 'z' || p >= 'A' && p <= 'Z' {
			return false
		}
	}
	return true
}

// literalEnd returns the length of the literal starting at s[0] (the quote),
// honouring doubled quotes and, where active, backslash escapes.
func literalEnd(s string, quote byte, backslash bool) (int, bool) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if backslash {
				i++
			}
		case quote:
			if i+1 < len(s) && s[i+1] == quote {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return 0, false
}

// dropCodes removes the %-codes from a comment: what a comment says does
// not matter, and a pasted value could end it.
func dropCodes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
		}
	}
	return b.String()
}

func hasDynamicCode(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' {
			if s[i+1] != '%' {
				return true
			}
			i++
		}
	}
	return false
}

// literalPieces turns a literal's body into parameter pieces: SQL escapes
// are undone in the text, %% becomes %, codes stay codes.
func literalPieces(body string, quote byte, backslash bool) ([]piece, bool) {
	var out []piece
	var t strings.Builder
	for i := 0; i < len(body); i++ {
		ch := body[i]
		switch {
		case ch == '%':
			i++
			if body[i] == '%' {
				t.WriteByte('%')
				continue
			}
			if t.Len() > 0 {
				out = append(out, piece{text: t.String()})
				t.Reset()
			}
			out = append(out, piece{code: body[i]})
		case ch == quote:
			t.WriteByte(quote) // the first of a doubled quote
			i++
		case ch == '\\' && backslash:
			if i+1 >= len(body) || body[i+1] == '%' {
				return nil, false
			}
			i++
			t.WriteString(unescapeBackslash(body[i]))
		default:
			t.WriteByte(ch)
		}
	}
	if t.Len() > 0 {
		out = append(out, piece{text: t.String()})
	}
	return out, true
}

// unescapeBackslash is MySQL's (and PostgreSQL E'…') meaning of \c. MySQL
// keeps the backslash in \% and \_ (LIKE escapes); so do we.
func unescapeBackslash(c byte) string {
	switch c {
	case '0':
		return "\x00"
	case 'b':
		return "\b"
	case 'n':
		return "\n"
	case 'r':
		return "\r"
	case 't':
		return "\t"
	case 'Z':
		return "\x1a"
	case '_':
		return "\\_"
	}
	return string(c)
}

// render builds the SQL text. values[i] is the pasted text of the i-th
// inline segment (nil when there are none).
func (c *compiled) render(inline []string, d dialect) string {
	var b strings.Builder
	n, k := 0, 0
	for _, s := range c.segs {
		switch s.kind {
		case 0:
			b.WriteString(s.sql)
		case 1:
			n++
			b.WriteString(d.placeholder(n))
		case 2:
			b.WriteString(inline[k])
			k++
		}
	}
	return b.String()
}

// bind computes the statement and its arguments for one key. ok is false
// when an inline code's value is not a safe token: the query is then not
// sent (not found), since pasting it could change the statement.
func (c *compiled) bind(key addr, d dialect) (sqlText string, args []any, ok bool) {
	var inline []string
	for _, s := range c.segs {
		switch s.kind {
		case 1:
			var b strings.Builder
			for _, p := range s.param {
				if p.code == 0 {
					b.WriteString(p.text)
				} else {
					b.WriteString(codeValue(p.code, key, key))
				}
			}
			args = append(args, b.String())
		case 2:
			v := codeValue(s.inline, key, key)
			if !safeToken(v) {
				return "", nil, false
			}
			inline = append(inline, v)
		}
	}
	if !c.inline {
		return c.static, args, true
	}
	return c.render(inline, d), args, true
}

// safeToken reports whether v may be pasted into SQL text outside a string
// literal: letters, digits and . _ @ + -, without "--" (a comment). Such a
// value can neither close a quote nor start a comment or a new statement.
func safeToken(v string) bool {
	if strings.Contains(v, "--") {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@+-", c) >= 0) {
			return false
		}
	}
	return true
}
