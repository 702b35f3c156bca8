package filemap

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/mapfile"
)

// Regexp is a regexp: or pcre: table: rules tried in file order, the first
// match wins, if/endif blocks skipped when their pattern does not match.
type Regexp struct {
	kind  string // "regexp" or "pcre", for messages
	rules []rule
}

type ruleKind int

const (
	ruleMatch ruleKind = iota
	ruleIf
	ruleEndif
)

type rule struct {
	kind   ruleKind
	re     *regexp.Regexp // nil for endif
	negate bool
	result []piece // match rules only
	end    int     // if rules: index of the matching endif (or len(rules))
	line   int
}

// piece is a literal (group < 0) or a $n substitution.
type piece struct {
	lit   string
	group int
}

// OpenRegexp reads a regexp_table(5) file. POSIX semantics are kept where
// Go allows: leftmost-longest matching, '.' matching newline unless the m
// flag is given, case-insensitive unless the i flag is given.
func OpenRegexp(path string, opts ...Option) (*Regexp, error) {
	return openPattern("regexp", path, newConfig(opts))
}

// OpenPCRE reads a pcre_table(5) file with Go's RE2 engine: patterns using
// PCRE-only features (backreferences, lookaround) are an error at open.
func OpenPCRE(path string, opts ...Option) (*Regexp, error) {
	return openPattern("pcre", path, newConfig(opts))
}

func openPattern(kind, path string, c *config) (*Regexp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	t := &Regexp{kind: kind}
	var stack []int // indexes of open if rules
	warn := func(line int, format string, args ...any) {
		c.warn(fmt.Sprintf("%s map %s, line %d: ", kind, path, line) + fmt.Sprintf(format, args...))
	}
	err = mapfile.Lines(path, f, mapfile.Options{Lenient: true, Warn: c.warn}, func(line string, n int) error {
		p := line
		switch {
		case !isAlnum(p[0]):
			r, ok, err := parseRule(kind, path, p, n, false, warn)
			if err != nil {
				return err
			}
			if ok {
				t.rules = append(t.rules, r)
			}
		case len(p) >= 2 && strings.EqualFold(p[:2], "if") && (len(p) == 2 || !isAlnum(p[2])):
			r, ok, err := parseRule(kind, path, p[2:], n, true, warn)
			if err != nil {
				return err
			}
			if ok {
				stack = append(stack, len(t.rules))
				t.rules = append(t.rules, r)
			}
		case len(p) >= 5 && strings.EqualFold(p[:5], "endif") && (len(p) == 5 || !isAlnum(p[5])):
			if len(stack) == 0 {
				warn(n, "ignoring ENDIF without matching IF")
				return nil
			}
			if rest := strings.TrimSpace(p[5:]); rest != "" {
				warn(n, "ignoring extra text after ENDIF: %q", rest)
			}
			t.rules[stack[len(stack)-1]].end = len(t.rules)
			stack = stack[:len(stack)-1]
			t.rules = append(t.rules, rule{kind: ruleEndif, line: n})
		default:
			warn(n, "ignoring unknown directive %q", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, i := range stack {
		warn(t.rules[i].line, "IF has no matching ENDIF")
		t.rules[i].end = len(t.rules)
	}
	return t, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func skipSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// parseRule parses "[!]/pattern/flags result" (isIf: no result). ok false
// means Postfix would skip the rule (warned); err is a pattern RE2 refuses.
func parseRule(kind, path, s string, n int, isIf bool, warn func(int, string, ...any)) (rule, bool, error) {
	r := rule{line: n, kind: ruleMatch}
	if isIf {
		r.kind = ruleIf
	}
	s = skipSpace(s)
	if strings.HasPrefix(s, "!") {
		r.negate = true
		s = skipSpace(s[1:])
	}
	if s == "" {
		warn(n, "no regexp delimiter")
		return r, false, nil
	}
	delim := s[0]
	i := 1
	for ; i < len(s); i++ {
		if s[i] == '\\' {
			if i+1 < len(s) {
				i++
				continue
			}
			i = len(s)
			break
		} else if s[i] == delim {
			break
		}
	}
	if i >= len(s) {
		warn(n, "no closing regexp delimiter \"%c\": skipping this rule", delim)
		return r, false, nil
	}
	pat := s[1:i]
	s = s[i+1:]
	j := 0
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	flags := s[:j]
	s = skipSpace(s[j:])
	re, ok, err := compile(kind, pat, flags, path, n, warn)
	if err != nil || !ok {
		return r, false, err
	}
	r.re = re
	if isIf {
		if s != "" {
			warn(n, "ignoring extra text after IF statement: %q", s)
		}
		return r, true, nil
	}
	result := strings.TrimRight(s, " \t\r\n\v\f")
	if result == "" {
		warn(n, "no replacement text: using empty string")
	}
	pieces, msg := parseResult(result, re.NumSubexp(), r.negate)
	if msg != "" {
		warn(n, "%s", msg)
		return r, false, nil
	}
	r.result = pieces
	return r, true, nil
}

// compile turns Postfix pattern and flags into a Go regexp.
func compile(kind, pat, flags, path string, n int, warn func(int, string, ...any)) (*regexp.Regexp, bool, error) {
	icase, ext, newline := true, true, false // regexp: REG_ICASE|REG_EXTENDED
	dotall, ungreedy, xmode, anchored := false, false, false, false
	for k := 0; k < len(flags); k++ {
		f := flags[k]
		switch {
		case f == 'i':
			icase = !icase
		case f == 'm':
			newline = !newline
		case kind == "regexp" && f == 'x':
			ext = !ext
		case kind == "pcre" && f == 's':
			dotall = !dotall
		case kind == "pcre" && f == 'x':
			xmode = !xmode
		case kind == "pcre" && f == 'A':
			anchored = !anchored
		case kind == "pcre" && f == 'U':
			ungreedy = !ungreedy
		case kind == "pcre" && (f == 'E' || f == 'X'):
			// E (DOLLAR_ENDONLY) is Go's behaviour already; X (EXTRA)
			// only makes PCRE stricter about escapes.
		default:
			warn(n, "unknown regexp option %q: skipping this rule", string(f))
			return nil, false, nil
		}
	}
	var prefix strings.Builder
	if icase {
		prefix.WriteString("i")
	}
	if kind == "regexp" {
		// POSIX: '.' and [^...] match newline unless REG_NEWLINE, which
		// also makes ^ and $ match at line boundaries.
		if newline {
			prefix.WriteString("m")
		} else {
			prefix.WriteString("s")
		}
		if !ext {
			pat = breToERE(pat)
		}
	} else {
		if newline {
			prefix.WriteString("m")
		}
		if dotall {
			prefix.WriteString("s")
		}
		if ungreedy {
			prefix.WriteString("U")
		}
		if xmode {
			pat = stripExtended(pat)
		}
		if anchored {
			pat = `\A(?:` + pat + `)`
		}
	}
	goPat := pat
	if prefix.Len() > 0 {
		goPat = "(?" + prefix.String() + ")" + pat
	}
	re, err := regexp.Compile(goPat)
	if err != nil {
		return nil, false, fmt.Errorf("%s map %s, line %d: pattern %q: %v", kind, path, n, pat, err)
	}
	if kind == "regexp" {
		re.Longest()
	}
	return re, true, nil
}

// parseResult splits the result into literals and $n, ${n}, $(n); $$ is a
// dollar, and any other '$' makes the rule bad. The messages are Postfix's, for rules it skips.
func parseResult(s string, nsub int, negate bool) ([]piece, string) {
	var out []piece
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, "bad replacement syntax: skipping this rule"
		}
		var name string
		switch c := s[i+1]; {
		case c == '$':
			lit.WriteByte('$')
			i++
			continue
		case c == '{' || c == '(':
			closer := byte('}')
			if c == '(' {
				closer = ')'
			}
			k := strings.IndexByte(s[i+2:], closer)
			if k < 0 {
				return nil, "bad replacement syntax: skipping this rule"
			}
			name = s[i+2 : i+2+k]
			i += 2 + k
		case isAlnum(c) || c == '_':
			k := i + 1
			for k < len(s) && (isAlnum(s[k]) || s[k] == '_') {
				k++
			}
			name = s[i+1 : k]
			i = k - 1
		default:
			// mac_parse: "empty macro name".
			return nil, "bad replacement syntax: skipping this rule"
		}
		g, err := strconv.Atoi(name)
		if err != nil || name == "" || name[0] == '+' || name[0] == '-' {
			return nil, fmt.Sprintf("non-numeric replacement index %q", name)
		}
		if negate {
			return nil, "$number found in negative match replacement text: skipping this rule"
		}
		if g < 0 || g > nsub {
			return nil, fmt.Sprintf("out of range replacement index %q: skipping this rule", name)
		}
		if lit.Len() > 0 {
			out = append(out, piece{lit: lit.String(), group: -1})
			lit.Reset()
		}
		out = append(out, piece{group: g})
	}
	if lit.Len() > 0 || len(out) == 0 {
		out = append(out, piece{lit: lit.String(), group: -1})
	}
	return out, ""
}

// breToERE rewrites a POSIX basic regular expression (regexp: with the x
// flag) into the extended syntax Go parses.
func breToERE(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			i++
			switch d := p[i]; d {
			case '(', ')', '{', '}', '+', '?', '|':
				b.WriteByte(d)
			default:
				b.WriteByte('\\')
				b.WriteByte(d)
			}
		case c == '(' || c == ')' || c == '{' || c == '}' || c == '+' || c == '?' || c == '|':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// stripExtended implements PCRE_EXTENDED: unescaped whitespace outside a
// character class is dropped, and '#' starts a comment to end of line.
func stripExtended(p string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			i++
			b.WriteByte(p[i])
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == ']' { // "[]...]" keeps the ]
				i++
				b.WriteByte(']')
			}
		case isSpace(c):
		case c == '#':
			for i < len(p) && p[i] != '\n' {
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Lookup implements mapdrivers.Map.
func (t *Regexp) Lookup(_ context.Context, key string) (string, bool, error) {
	for i := 0; i < len(t.rules); {
		r := &t.rules[i]
		switch r.kind {
		case ruleEndif:
			i++
		case ruleIf:
			if r.re.MatchString(key) != r.negate {
				i++
			} else {
				i = r.end + 1
			}
		default:
			if r.negate {
				if !r.re.MatchString(key) {
					return r.result[0].lit, true, nil
				}
				i++
				continue
			}
			m := r.re.FindStringSubmatchIndex(key)
			if m == nil {
				i++
				continue
			}
			var b strings.Builder
			for _, p := range r.result {
				if p.group < 0 {
					b.WriteString(p.lit)
				} else if s, e := m[2*p.group], m[2*p.group+1]; s >= 0 {
					b.WriteString(key[s:e])
				}
			}
			return b.String(), true, nil
		}
	}
	return "", false, nil
}

// Props implements mapdrivers.Map: a pattern table sees only full keys.
func (t *Regexp) Props() mapdrivers.Props { return mapdrivers.Props{Pattern: true} }

// Close implements mapdrivers.Map.
func (t *Regexp) Close() error { return nil }
