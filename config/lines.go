package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// logicalLine is one main.cf/master.cf entry after joining continuation lines.
type logicalLine struct {
	text    string
	line    int    // physical line where the entry starts
	warning string // set instead of text for an entry Postfix ignores
}

// readLogicalLines splits r into logical lines the way Postfix's readlline()
// does: blank lines and lines whose first non-blank character is '#' are
// dropped wherever they occur (also inside a continuation), a line starting
// with whitespace is appended verbatim to the previous one, and there are no
// trailing comments. Text that continues nothing is ignored with a warning,
// as Postfix does, rather than failing the whole file.
func readLogicalLines(name string, r io.Reader) ([]logicalLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var (
		out   []logicalLine
		cur   strings.Builder
		start int
		n     int
	)
	flush := func() {
		if cur.Len() == 0 {
			return
		}
		text := strings.TrimRight(cur.String(), " \t\r\n\v\f")
		l := logicalLine{text: text, line: start}
		if isSpace(text[0]) {
			l = logicalLine{line: start, warning: fmt.Sprintf(
				"%s, line %d: logical line must not start with whitespace: %q", name, start, abbrev(strings.TrimSpace(text), 30))}
		}
		out = append(out, l)
		cur.Reset()
	}
	for sc.Scan() {
		n++
		raw := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimLeft(raw, " \t\r\n\v\f")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if !isSpace(raw[0]) {
			flush()
			start = n
		} else if cur.Len() == 0 {
			start = n
		}
		cur.WriteString(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	flush()
	return out, nil
}

// splitNameValue splits "name = value"; the error text is Postfix's where it
// has one.
func splitNameValue(line string) (name, value, errMsg string) {
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return "", "", fmt.Sprintf("missing '=' after attribute name: %q", abbrev(line, 60))
	}
	name = strings.TrimSpace(line[:eq])
	value = strings.TrimSpace(line[eq+1:])
	if name == "" {
		return "", "", fmt.Sprintf("missing attribute name: %q", abbrev(line, 60))
	}
	if !isName(name) {
		return "", "", fmt.Sprintf("bad parameter name %q: only letters, digits and _ are allowed", name)
	}
	return name, value, ""
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f'
}

func isNameByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
