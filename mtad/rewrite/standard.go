package rewrite

import "strings"

// token is one lexical element of an address as trivial-rewrite's
// tokenizer (tok822_scan) sees it: an operator, an atom, a quoted string, a
// domain literal or a comment. text is the content with backslash escapes
// resolved and without the quotes, brackets or parentheses; join puts them
// back (tok822_externalize), so an unterminated quote comes out closed.
type token struct {
	kind byte // one of the operator characters, or 'a' atom, 'q' quoted, 'd' [literal], 'c' (comment)
	text string
}

// operators are tok822's single-character operators. '%' and '!' are among
// them because not every MTA is RFC 822 compliant; '|' for aliases files.
const operators = "|%!@.,:;<>)]"

// specials make an atom that contains them (after unescaping) a quoted
// string when written out (tok822_quote_atom).
const specials = "|\"(),.:;<>@[]%!"

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// collect is tok822's COLLECT: from s[i], take bytes while more(c) holds; a
// backslash takes the next byte as is; white space becomes a space.
func collect(s string, i int, more func(byte) bool) (string, int) {
	var b strings.Builder
	for i < len(s) {
		c := s[i]
		if c == '\\' {
			if i+1 >= len(s) {
				i++
				break
			}
			i++
			c = s[i]
		} else if !more(c) {
			break
		}
		if isSpace(c) {
			c = ' '
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), i
}

func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case isSpace(ch):
			i++
		case ch == '(':
			text, j := comment(s, i+1)
			toks = append(toks, token{'c', text})
			i = j
		case ch == '"' || ch == '[':
			end, kind := byte('"'), byte('q')
			if ch == '[' {
				end, kind = ']', 'd'
			}
			text, j := collect(s, i+1, func(c byte) bool { return c != end })
			if j < len(s) {
				j++ // the closing quote or bracket
			}
			toks = append(toks, token{kind, text})
			i = j
		case strings.IndexByte(operators, ch) >= 0:
			toks = append(toks, token{ch, s[i : i+1]})
			i++
		default:
			text, j := collect(s, i, func(c byte) bool {
				return !isSpace(c) && strings.IndexByte(specials, c) < 0
			})
			if j == i { // cannot happen: every special is an operator or opens a token
				j = i + 1
			}
			kind := byte('a')
			for k := 0; k < len(text); k++ {
				// A backslash is quoted too (tok822 leaves it bare, which
				// would escape the next byte when the result is read again).
				if c := text[k]; c <= ' ' || c == 0x7f || c == '\\' || strings.IndexByte(specials, c) >= 0 {
					kind = 'q'
					break
				}
			}
			if text != "" { // a lone trailing backslash leaves nothing
				toks = append(toks, token{kind, text})
			}
			i = j
		}
	}
	return toks
}

// comment is tok822_comment: the text up to the matching ')', escapes
// resolved; a nested comment keeps its parentheses as text.
func comment(s string, i int) (string, int) {
	var b strings.Builder
	for i < len(s) {
		c := s[i]
		i++
		switch c {
		case '(':
			inner, j := comment(s, i)
			b.WriteString("(" + inner + ")")
			i = j
			continue
		case ')':
			return b.String(), i
		case '\\':
			if i >= len(s) {
				return b.String(), i
			}
			c = s[i]
			i++
		}
		b.WriteByte(c)
	}
	return b.String(), i
}

// join is tok822_externalize: quoted strings, literals and comments get
// their delimiters back with the characters that need it escaped, and a
// space separates two adjacent words.
func join(toks []token) string {
	var b strings.Builder
	word := func(k byte) bool { return k == 'a' || k == 'q' || k == 'd' || k == 'c' }
	for i, t := range toks {
		switch t.kind {
		case 'a':
			b.WriteString(t.text)
		case 'q':
			b.WriteByte('"')
			copyQuoted(&b, t.text, "\"\\\r\n")
			b.WriteByte('"')
		case 'd':
			b.WriteByte('[')
			// Brackets too (tok822 leaves them), so the literal reads back whole.
			copyQuoted(&b, t.text, "[]\\\r\n")
			b.WriteByte(']')
		case 'c':
			b.WriteByte('(')
			copyQuoted(&b, t.text, "()\\\r\n")
			b.WriteByte(')')
		default:
			b.WriteString(t.text)
		}
		if i+1 < len(toks) && (t.kind == ',' || toks[i+1].kind == '<' || word(t.kind) && word(toks[i+1].kind)) {
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

func find(toks []token, kind byte) int {
	for i, t := range toks {
		if t.kind == kind {
			return i
		}
	}
	return -1
}

func rfind(toks []token, kind byte) int {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].kind == kind {
			return i
		}
	}
	return -1
}

// Qualify puts an envelope address into standard form the way
// trivial-rewrite does in the local context (rewrite.c, reference §6.A):
// a source route "@a,@b:user@site" loses its route; without an '@',
// "site!user" becomes "user@site" (swap_bangpath), else "user%domain"
// becomes "user@domain" (allow_percent_hack), else "@$myorigin" is appended
// (append_at_myorigin); a domain without a dot gets ".$mydomain"
// (append_dot_mydomain); one trailing dot is removed. The null address,
// and a lone "@", stay (become) empty. Input and output are the external
// (quoted) form.
func (r *Resolver) Qualify(addr string) string {
	toks := tokenize(addr)
	if len(toks) == 0 || (len(toks) == 1 && (toks[0].kind == '@' || toks[0].kind == 'q' && toks[0].text == "")) {
		return ""
	}
	// Strip the source route: everything up to the first ':' that is not last.
	if toks[0].kind == '@' {
		if c := find(toks, ':'); c >= 0 && c != len(toks)-1 {
			toks = toks[c+1:]
		}
	}
	if rfind(toks, '@') < 0 {
		if bang := find(toks, '!'); r.SwapBangpath && bang >= 0 {
			site, user := toks[:bang], toks[bang+1:]
			out := append(append(append([]token{}, user...), token{'@', "@"}), site...)
			toks = out
		} else if pct := rfind(toks, '%'); r.AllowPercentHack && pct >= 0 {
			toks[pct] = token{'@', "@"}
		} else if r.AppendAtMyorigin && r.MyOrigin != "" {
			toks = append(toks, token{'@', "@"})
			toks = append(toks, tokenize(r.MyOrigin)...)
		}
	}
	// Append ".$mydomain" to a domain without a dot, leaving broken forms
	// ending in '@' and domain literals alone.
	if at := rfind(toks, '@'); r.AppendDotMydomain && r.MyDomain != "" && at >= 0 && at != len(toks)-1 &&
		find(toks[at:], 'd') < 0 && find(toks[at:], '.') < 0 {
		toks = append(toks, token{'.', "."})
		toks = append(toks, tokenize(r.MyDomain)...)
	}
	// One trailing dot goes, but not from "..", "@." (bogus forms stay
	// visible in diagnostics).
	if n := len(toks); n > 1 && toks[n-1].kind == '.' && toks[n-2].kind != '.' && toks[n-2].kind != '@' {
		toks = toks[:n-1]
	}
	return join(toks)
}

// MailerDaemon reports whether sender is "MAILER-DAEMON@$myorigin" in
// standard form: cleanup replaces that envelope sender with the null
// sender, so that bounces of bounces cannot loop (cleanup_addr.c).
func (r *Resolver) MailerDaemon(sender string) bool {
	return len(sender) > len("MAILER-DAEMON@") && strings.EqualFold(sender, r.Qualify("MAILER-DAEMON"))
}

// LocalpartLookup reports whether an address in domain may be looked up by
// its bare localpart in canonical, virtual and relocated tables: the domain
// is $myorigin or a local domain (mail_addr_find.c).
func (r *Resolver) LocalpartLookup(domain string) bool {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	return domain != "" && (strings.EqualFold(domain, r.MyOrigin) || r.IsLocalDomain(domain))
}
