package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Expansion follows Postfix's mac_expand(3)/mac_parse(3), checked against
// postconf 3.7 (`postconf -x`):
//
//	$name ${name} $(name)           value, itself expanded
//	${name?text} ${name?{text}}     text if the raw value of name is non-empty
//	${name:text} ${name:{text}}     text if the raw value is empty or undefined
//	${name?{t1}:{t2}} ${name?{t1}:t2}
//	${{a} OP {b}}                   "true" or "", OP one of == != < <= >= >
//	                                (numeric when both sides are all digits) or
//	                                the same followed by "level" (compatibility
//	                                levels such as 2, 3.6, 3.6.1)
//	${{a} OP {b} ? {x} : {y}}       the conditional forms above, applied to it
//	$$                              a literal $
//
// Text after ? or : is taken literally to the end of the expression unless it
// starts with '{' (Postfix 2.x compatibility), so ${name?a:b} yields "a:b".
// Whitespace around {text} is dropped; whitespace inside it is kept.

// maxDepth bounds nesting of braces and references; Postfix gives up at 100
// nested macro calls too.
const maxDepth = 100

type expander struct {
	c     *Config
	vars  map[string]string // per-call names that shadow parameters
	stack []string          // parameters being expanded, for loop detection
}

// raw finds the unexpanded value of name.
func (e *expander) raw(name string) (string, bool, error) {
	if v, ok := e.vars[name]; ok {
		return v, true, nil
	}
	if v, ok := e.c.values[name]; ok {
		return v, true, nil
	}
	if p, ok := paramIndex[name]; ok {
		if p.computed {
			v, err := e.computeDefault(name)
			return v, true, err
		}
		return p.Default, true, nil
	}
	if v, ok := postfixIndex[name]; ok {
		// A Postfix parameter sqlmta does not use itself: its default
		// still matters to values that reference it.
		return v, true, nil
	}
	return "", false, nil
}

// ExpandError is an expansion problem: a syntax error or a recursive
// reference. Param names the parameter whose value was being expanded.
type ExpandError struct {
	Param string
	Msg   string
}

func (e *ExpandError) Error() string {
	if e.Param == "" {
		return e.Msg
	}
	return fmt.Sprintf("parameter %s: %s", e.Param, e.Msg)
}

func (e *expander) errorf(format string, args ...any) error {
	p := ""
	if len(e.stack) > 0 {
		p = e.stack[len(e.stack)-1]
	}
	return &ExpandError{Param: p, Msg: fmt.Sprintf(format, args...)}
}

// param returns the expanded value of a named parameter.
func (e *expander) param(name string) (string, error) {
	for i, n := range e.stack {
		if n == name {
			chain := append(append([]string(nil), e.stack[i:]...), name)
			return "", e.errorf("recursive parameter reference: %s", strings.Join(chain, " -> "))
		}
	}
	if len(e.stack) >= maxDepth {
		return "", e.errorf("unreasonable macro call nesting: %q", name)
	}
	e.stack = append(e.stack, name)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()
	raw, ok, err := e.raw(name)
	if err != nil {
		return "", err
	}
	if !ok {
		e.c.warnUndefined(name)
		return "", nil
	}
	return e.expand(raw, 0)
}

// rawValue is the value a conditional tests: Postfix tests the unexpanded
// value, so with "a = $empty", ${a?x} yields x.
func (e *expander) rawValue(name string) (string, error) {
	raw, ok, err := e.raw(name)
	if !ok {
		e.c.warnUndefined(name)
	}
	return raw, err
}

func (c *Config) warnUndefined(name string) {
	c.warn(fmt.Sprintf("%s: undefined parameter: %s", c.file, name))
}

// expand expands all references in s.
func (e *expander) expand(s string, depth int) (string, error) {
	if depth > maxDepth {
		return "", e.errorf("unreasonable macro call nesting: %q", abbrev(s, 40))
	}
	if strings.IndexByte(s, '$') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		ch := s[i]
		if ch != '$' {
			b.WriteByte(ch)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", e.errorf("empty macro name: %q", s)
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i += 2
		case next == '{' || next == '(':
			closer := byte('}')
			if next == '(' {
				closer = ')'
			}
			end := matchClose(s, i+1, next, closer)
			if end < 0 {
				return "", e.errorf("truncated macro reference: %q", s)
			}
			inner := s[i+2 : end]
			if strings.TrimSpace(inner) == "" {
				return "", e.errorf("empty macro name: %q", s)
			}
			v, err := e.expr(inner, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		case isNameByte(next):
			j := i + 1
			for j < len(s) && isNameByte(s[j]) {
				j++
			}
			v, err := e.param(s[i+1 : j])
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = j
		default:
			return "", e.errorf("empty macro name: %q", s)
		}
	}
	return b.String(), nil
}

// matchClose returns the index of the closer balancing s[open], counting only
// that pair of characters (as mac_parse does), or -1.
func matchClose(s string, open int, o, c byte) int {
	level := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			level++
		case c:
			level--
			if level == 0 {
				return i
			}
		}
	}
	return -1
}

// expr evaluates the text between ${ and }.
func (e *expander) expr(inner string, depth int) (string, error) {
	var tested string // the value that ? and : test
	var rest string   // text after the name or logical expression
	cp := skipSpace(inner)
	if strings.HasPrefix(cp, "{") {
		v, r, err := e.logical(cp, depth)
		if err != nil {
			return "", err
		}
		tested, rest = v, r
		if rest == "" {
			return tested, nil
		}
		if rest[0] != '?' && rest[0] != ':' {
			return "", e.errorf("\"?\" or \":\" expected at: \"...}>>>%s\"", abbrev(rest, 20))
		}
	} else {
		k := strings.IndexAny(inner, "?:")
		name := inner
		if k >= 0 {
			name, rest = inner[:k], inner[k:]
		}
		name = strings.TrimSpace(name)
		if !isName(name) {
			return "", e.errorf("attribute name syntax error at: %q", inner)
		}
		if rest == "" {
			return e.param(name)
		}
		var err error
		if tested, err = e.rawValue(name); err != nil {
			return "", err
		}
	}

	op := rest[0]
	rest = rest[1:]
	if op == '?' {
		iftrue, r, braced, err := e.operand(rest)
		if err != nil {
			return "", err
		}
		var out string
		if tested != "" {
			if out, err = e.expand(iftrue, depth+1); err != nil {
				return "", err
			}
		}
		if !braced || r == "" {
			return out, nil
		}
		if r[0] != ':' {
			return "", e.errorf("\":\" expected at: \"...%s}>>>%s\"", iftrue, abbrev(r, 20))
		}
		rest = r[1:]
		if tested != "" {
			// Still parse the other branch so that garbage after it is caught.
			if _, r, _, err = e.operand(rest); err != nil {
				return "", err
			} else if r != "" {
				return "", e.errorf("unexpected input at: %q", abbrev(r, 20))
			}
			return out, nil
		}
	}
	iffalse, r, _, err := e.operand(rest)
	if err != nil {
		return "", err
	}
	if r != "" {
		return "", e.errorf("unexpected input at: \"...%s}>>>%s\"", iffalse, abbrev(r, 20))
	}
	if tested != "" {
		return "", nil
	}
	return e.expand(iffalse, depth+1)
}

// operand reads the text after ? or :. A {braced} operand ends at its
// balancing brace and may be followed by more input; anything else runs to
// the end of the expression.
func (e *expander) operand(s string) (text, rest string, braced bool, err error) {
	t := skipSpace(s)
	if !strings.HasPrefix(t, "{") {
		return s, "", false, nil
	}
	text, rest, err = e.curly(t)
	return text, rest, true, err
}

// curly extracts the payload of a leading {…} and skips whitespace after it.
func (e *expander) curly(s string) (payload, rest string, err error) {
	end := matchClose(s, 0, '{', '}')
	if end < 0 {
		return "", "", e.errorf("unbalanced {} in attribute expression: %q", s)
	}
	return s[1:end], skipSpace(s[end+1:]), nil
}

// logical evaluates "{a} OP {b}" at the start of s and returns "true" or ""
// and the remaining text.
func (e *expander) logical(s string, depth int) (value, rest string, err error) {
	left, r, err := e.curly(s)
	if err != nil {
		return "", "", err
	}
	n := 0
	for n < len(r) && strings.IndexByte("<>!=?+-*/~&|%", r[n]) >= 0 {
		n++
	}
	op := r[:n]
	if strings.HasPrefix(r[n:], "level") {
		op += "level"
		n += len("level")
	}
	if !validOp[op] {
		return "", "", e.errorf(`"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: "...%s}>>>%s"`, left, abbrev(r, 20))
	}
	r = skipSpace(r[n:])
	if !strings.HasPrefix(r, "{") {
		return "", "", e.errorf("\"{expression}\" expected at: \"...{%s} %s>>>%s\"", left, op, abbrev(r, 20))
	}
	right, r, err := e.curly(r)
	if err != nil {
		return "", "", err
	}
	lv, err := e.expand(left, depth+1)
	if err != nil {
		return "", "", err
	}
	rv, err := e.expand(right, depth+1)
	if err != nil {
		return "", "", err
	}
	var cmp int
	if base, ok := strings.CutSuffix(op, "level"); ok {
		op = base
		l, lok := parseCompatLevel(lv)
		if !lok {
			return "", "", e.errorf("malformed compatibility level syntax: %q", lv)
		}
		rr, rok := parseCompatLevel(rv)
		if !rok {
			return "", "", e.errorf("malformed compatibility level syntax: %q", rv)
		}
		cmp = compareLevels(l, rr)
	} else {
		cmp = compareValues(lv, rv)
	}
	var t bool
	switch op {
	case "==":
		t = cmp == 0
	case "!=":
		t = cmp != 0
	case "<":
		t = cmp < 0
	case "<=":
		t = cmp <= 0
	case ">=":
		t = cmp >= 0
	case ">":
		t = cmp > 0
	}
	if t {
		return "true", r, nil
	}
	return "", r, nil
}

var validOp = map[string]bool{
	"==": true, "!=": true, "<": true, "<=": true, ">=": true, ">": true,
	"==level": true, "!=level": true, "<level": true, "<=level": true, ">=level": true, ">level": true,
}

// compareValues compares numerically when both sides are non-empty decimal
// digit strings (of any length), lexically otherwise.
func compareValues(a, b string) int {
	if allDigits(a) && allDigits(b) {
		a = strings.TrimLeft(a, "0")
		b = strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseCompatLevel reads "major[.minor[.patch]]".
func parseCompatLevel(s string) ([3]int, bool) {
	var l [3]int
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return l, false
	}
	for i, p := range parts {
		if !allDigits(p) {
			return l, false
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return l, false
		}
		l[i] = n
	}
	return l, true
}

func compareLevels(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func skipSpace(s string) string {
	return strings.TrimLeft(s, " \t\r\n")
}
