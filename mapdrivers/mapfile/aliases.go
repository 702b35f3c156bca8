package mapfile

import (
	"io"
	"strings"
)

// ParseAliases reads an aliases(5) file as postalias(1) does and calls fn
// for each entry: Key is the name in internal (unquoted) form, lowercased;
// Value is the right-hand side re-serialised the way postalias stores it
// ("a,b" becomes "a, b", quoted strings keep their quotes). A bad entry is
// a *LineError ("need name:value pair", "name must be local").
func ParseAliases(name string, r io.Reader, fn func(e Entry) error) error {
	return ParseAliasesOptions(name, r, Options{FoldCase: true}, fn)
}

// ParseAliasesOptions is ParseAliases with postalias's -f (no folding) and
// lenient mode (warn and skip, as postalias does).
func ParseAliasesOptions(name string, r io.Reader, opts Options, fn func(e Entry) error) error {
	lr := newLineReader(name, r, opts)
	for {
		line, n, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		toks := scan822(string(line))
		if len(toks) == 0 {
			continue
		}
		colon := -1
		for i, t := range toks {
			if t.typ == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 || colon == len(toks)-1 || hasType(toks[:colon], ',') {
			if err := lr.warn(&LineError{Name: name, Line: n, Msg: "need name:value pair"}); err != nil {
				return err
			}
			continue
		}
		if hasType(toks[:colon], '@') || hasType(toks[:colon], '%') {
			if err := lr.warn(&LineError{Name: name, Line: n, Msg: "name must be local"}); err != nil {
				return err
			}
			continue
		}
		key := internalize(toks[:colon])
		if opts.FoldCase {
			key = Fold(key)
		}
		if err := fn(Entry{Key: key, Value: externalize(toks[colon+1:]), Line: n}); err != nil {
			return err
		}
	}
}

// Token types of Postfix's tok822 scanner; operators use their own byte.
const (
	tokAtom    = 256 + iota
	tokQString // quoted string, stored unquoted
	tokComment // comment, stored in external form with its parentheses
	tokDomLit  // domain literal, stored without brackets
)

type token822 struct {
	typ  int
	text string
}

// opchars are tok822's operators: RFC 822 specials plus | % !.
const opchars = "|%!()<>@,;:\\\".[]"

func isSpaceTabCRLF(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// scan822 is tok822_scan(): a flat token list of an RFC 822-ish string.
func scan822(s string) []token822 {
	var toks []token822
	i := 0
	// collect copies bytes while cond holds; a backslash takes the next
	// byte literally.
	collect := func(cond func(byte) bool) string {
		var b strings.Builder
		for i < len(s) {
			c := s[i]
			if c == '\\' {
				i++
				if i >= len(s) {
					break
				}
				c = s[i]
			} else if !cond(c) {
				break
			}
			b.WriteByte(c)
			i++
		}
		return b.String()
	}
	for i < len(s) {
		c := s[i]
		i++
		switch {
		case isSpaceTabCRLF(c):
			continue
		case c == '(':
			var b strings.Builder
			b.WriteByte('(')
			level := 1
			for i < len(s) {
				ch := s[i]
				b.WriteByte(ch)
				i++
				if ch == '(' {
					level++
				} else if ch == ')' {
					if level--; level == 0 {
						break
					}
				} else if ch == '\\' {
					if i >= len(s) {
						break
					}
					b.WriteByte(s[i])
					i++
				}
			}
			toks = append(toks, token822{tokComment, b.String()})
		case c == '[':
			t := collect(func(ch byte) bool { return ch != ']' })
			if i < len(s) {
				i++
			}
			toks = append(toks, token822{tokDomLit, t})
		case c == '"':
			t := collect(func(ch byte) bool { return ch != '"' })
			if i < len(s) {
				i++
			}
			toks = append(toks, token822{tokQString, t})
		case c != '\\' && strings.IndexByte(opchars, c) >= 0:
			toks = append(toks, token822{int(c), ""})
		default:
			i-- // a backslash may come first
			t := collect(func(ch byte) bool {
				return !isSpaceTabCRLF(ch) && strings.IndexByte(opchars, ch) < 0
			})
			typ := tokAtom
			// tok822_quote_atom: an atom that needs quoting becomes a
			// quoted string (8-bit bytes are left alone).
			for j := 0; j < len(t); j++ {
				ch := t[j]
				if ch == ' ' || ch < 0x20 || ch == 0x7f || strings.IndexByte(opchars, ch) >= 0 {
					typ = tokQString
					break
				}
			}
			toks = append(toks, token822{typ, t})
		}
	}
	return toks
}

func hasType(toks []token822, typ int) bool {
	for _, t := range toks {
		if t.typ == typ {
			return true
		}
	}
	return false
}

func nonOperator(t token822) bool {
	return t.typ == tokAtom || t.typ == tokQString || t.typ == tokComment || t.typ == tokDomLit
}

// appendSpace is tok822_append_space().
func appendSpace(toks []token822, i int) bool {
	if i+1 >= len(toks) {
		return false
	}
	if toks[i].typ == ',' || toks[i+1].typ == '<' {
		return true
	}
	return nonOperator(toks[i]) && nonOperator(toks[i+1])
}

// internalize is tok822_internalize(): quoted strings lose their quotes.
func internalize(toks []token822) string {
	var b strings.Builder
	for i, t := range toks {
		switch t.typ {
		case tokAtom, tokQString, tokComment:
			b.WriteString(t.text)
		case tokDomLit:
			b.WriteString("[" + t.text + "]")
		default:
			b.WriteByte(byte(t.typ))
		}
		if appendSpace(toks, i) {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// externalize is tok822_externalize() on a flat list: a comma is always
// followed by one space; quoted strings are re-quoted.
func externalize(toks []token822) string {
	var b strings.Builder
	for i, t := range toks {
		switch t.typ {
		case ',':
			b.WriteString(", ")
			continue
		case tokAtom, tokComment:
			b.WriteString(t.text)
		case tokQString:
			b.WriteByte('"')
			copyQuoted(&b, t.text, "\"\\\r\n")
			b.WriteByte('"')
		case tokDomLit:
			b.WriteByte('[')
			copyQuoted(&b, t.text, "\\\r\n")
			b.WriteByte(']')
		default:
			b.WriteByte(byte(t.typ))
		}
		if appendSpace(toks, i) {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func copyQuoted(b *strings.Builder, s, set string) {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}
