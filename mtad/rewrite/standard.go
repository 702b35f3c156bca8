package rewrite

import "strings"

// token is one lexical element of an address as trivial-rewrite's
// tokenizer (tok822) sees it: an operator, an atom, a quoted string or a
// domain literal. text is the token as written, quotes and brackets kept.
type token struct {
	kind byte // one of the operator characters, or 'a' atom, 'q' quoted, 'd' [literal]
	text string
}

// operators are tok822's single-character operators. '%' and '!' are among
// them because not every MTA is RFC 822 compliant.
const operators = "%!@.,:;<>"

func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			i++
		case ch == '"' || ch == '[':
			end, kind := byte('"'), byte('q')
			if ch == '[' {
				end, kind = ']', 'd'
			}
			j := i + 1
			for j < len(s) && s[j] != end {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				j++
			}
			if j < len(s) {
				j++ // the closing quote or bracket
			}
			toks = append(toks, token{kind, s[i:j]})
			i = j
		case strings.IndexByte(operators, ch) >= 0:
			toks = append(toks, token{ch, s[i : i+1]})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(operators+" \t\r\n\"[", rune(s[j])) {
				j++
			}
			toks = append(toks, token{'a', s[i:j]})
			i = j
		}
	}
	return toks
}

func join(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.text)
	}
	return b.String()
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
	if len(toks) == 0 || (len(toks) == 1 && (toks[0].kind == '@' || toks[0].text == `""`)) {
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
