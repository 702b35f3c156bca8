// Package mapfile parses the text formats that Postfix tables are built
// from: postmap(1)'s "key whitespace value" files and aliases(5) files.
//
// The parsers stream: they hand each entry to a callback as soon as its
// logical line is complete, so a million-line import never sits in memory.
// They follow Postfix 3.7's own code (util/readlline.c, postmap/postmap.c,
// postalias/postalias.c) rather than its manual where the two differ: for
// instance a quoted key keeps its quotes, exactly as postmap stores it.
package mapfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// Options control Parse.
type Options struct {
	// FoldCase lowercases keys (postmap without -f). Folding is Unicode
	// full case folding, as Postfix does with smtputf8_enable=yes
	// ("STRASSE" and "straße" are the same key).
	FoldCase bool
	// Lenient makes a bad line a warning that skips the line, as postmap
	// and texthash: do. Without it a bad line stops the parse with a
	// *LineError, so that an import changes nothing.
	Lenient bool
	// Warn, when set, receives Postfix's warnings (skipped lines in
	// Lenient mode, "is this an alias file?"), already prefixed with
	// "name, line N: ".
	Warn func(msg string)
}

// Entry is one table record. Key is the key as postmap stores it (quotes
// and backslashes kept, folded when asked); Line is the physical line on
// which the logical line starts.
type Entry struct {
	Key, Value string
	Line       int
}

// LineError is a bad input line, worded as Postfix words its warning.
type LineError struct {
	Name string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Name, e.Msg)
	}
	return fmt.Sprintf("%s, line %d: %s", e.Name, e.Line, e.Msg)
}

// isSpace is Postfix's ISSPACE: ASCII whitespace only.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Fold returns key as Postfix's DICT_FLAG_FOLD_FIX stores it: ASCII
// lowercase for ASCII keys, Unicode full case folding otherwise.
func Fold(key string) string {
	ascii := true
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(key) {
		return asciiLower(key)
	}
	return cases.Fold().String(key)
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// lineReader yields Postfix logical lines (readllines()): blank lines and
// lines whose first non-space is '#' are dropped, also between a line and
// its continuation; a line starting with whitespace continues the previous
// one, joined as is (no newline, its leading whitespace kept).
type lineReader struct {
	name   string
	r      *bufio.Reader
	lineno int
	buf    []byte
	warn   func(error) error
}

// next returns the next logical line and the number of its first physical
// line, or io.EOF.
func (lr *lineReader) next() ([]byte, int, error) {
	for {
		lr.buf = lr.buf[:0]
		first := 0
		for {
			start := len(lr.buf)
			line, err := lr.r.ReadSlice('\n')
			for errors.Is(err, bufio.ErrBufferFull) {
				lr.buf = append(lr.buf, line...)
				line, err = lr.r.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, 0, fmt.Errorf("read %s: %w", lr.name, err)
			}
			lr.buf = append(lr.buf, line...)
			nl := len(lr.buf) > start && lr.buf[len(lr.buf)-1] == '\n'
			if nl {
				lr.buf = lr.buf[:len(lr.buf)-1]
			}
			if nl || len(lr.buf) > start {
				lr.lineno++
			}
			i := start
			for i < len(lr.buf) && isSpace(lr.buf[i]) {
				i++
			}
			if i == len(lr.buf) || lr.buf[i] == '#' {
				lr.buf = lr.buf[:start]
			} else if start == 0 {
				first = lr.lineno
			}
			if err == io.EOF {
				break
			}
			if len(lr.buf) > 0 {
				p, _ := lr.r.Peek(1)
				if len(p) == 0 || (p[0] != '#' && !isSpace(p[0])) {
					break
				}
			}
		}
		if len(lr.buf) == 0 {
			return nil, 0, io.EOF
		}
		if isSpace(lr.buf[0]) {
			// Continuation text without a line to continue: Postfix warns
			// and drops it.
			s := string(lr.buf)
			if len(s) > 30 {
				s = s[:30] + "..."
			}
			if err := lr.warn(&LineError{Name: lr.name, Line: first,
				Msg: fmt.Sprintf("logical line must not start with whitespace: %q", s)}); err != nil {
				return nil, 0, err
			}
			continue
		}
		return lr.buf, first, nil
	}
}

func newLineReader(name string, r io.Reader, opts Options) *lineReader {
	return &lineReader{
		name: name,
		r:    bufio.NewReaderSize(r, 64*1024),
		warn: func(e error) error {
			if !opts.Lenient {
				return e
			}
			if opts.Warn != nil {
				msg := e.Error()
				if le, ok := e.(*LineError); ok && !strings.HasPrefix(le.Msg, "logical line") {
					msg += " -- ignoring this line"
				}
				opts.Warn(msg)
			}
			return nil
		},
	}
}

// Parse reads a postmap(1) source file and calls fn for each entry in file
// order. Duplicates are passed on: what to do with them (postmap: first
// wins, with a warning) is the caller's business. An error from fn stops
// the parse and is returned as is.
func Parse(name string, r io.Reader, opts Options, fn func(e Entry) error) error {
	lr := newLineReader(name, r, opts)
	for {
		line, n, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !utf8.Valid(line) {
			// smtputf8_enable=yes (the 3.7 default) rejects such lines.
			if err := lr.warn(&LineError{Name: name, Line: n,
				Msg: fmt.Sprintf("non-UTF-8 input %q", line)}); err != nil {
				return err
			}
			continue
		}
		key, value, ok := splitKeyValue(line)
		if !ok {
			if err := lr.warn(&LineError{Name: name, Line: n,
				Msg: fmt.Sprintf("unbalanced '\"' in '%s'", line)}); err != nil {
				return err
			}
			continue
		}
		if key == "" || value == "" {
			if err := lr.warn(&LineError{Name: name, Line: n,
				Msg: "expected format: key whitespace value"}); err != nil {
				return err
			}
			continue
		}
		if strings.HasSuffix(key, ":") && opts.Warn != nil {
			opts.Warn(fmt.Sprintf("%s, line %d: record is in \"key: value\" format; is this an alias file?", name, n))
		}
		if opts.FoldCase {
			key = Fold(key)
		}
		if err := fn(Entry{Key: key, Value: value, Line: n}); err != nil {
			return err
		}
	}
}

// SplitKeyValue splits one logical line as postmap does: the key ends at
// the first whitespace outside double quotes (a backslash protects the next
// character) and keeps its quotes; the value is the rest, trimmed. ok is
// false for an unbalanced quote.
func SplitKeyValue(line string) (key, value string, ok bool) {
	return splitKeyValue([]byte(line))
}

func splitKeyValue(line []byte) (key, value string, ok bool) {
	inQuotes := false
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		if c == '\\' {
			i++
			if i >= len(line) {
				break
			}
		} else if isSpace(c) {
			if !inQuotes {
				break
			}
		} else if c == '"' {
			inQuotes = !inQuotes
		}
	}
	if inQuotes {
		return "", "", false
	}
	if i > len(line) {
		i = len(line)
	}
	key = string(line[:i])
	rest := line[i:]
	if len(rest) > 0 {
		rest = rest[1:]
	}
	return key, string(trimSpace(rest)), true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// Lines calls fn with each logical line of a Postfix table source file
// (readllines(): comments and blank lines dropped, continuation lines
// joined) and the number of its first physical line. Pattern tables use it.
// An orphan continuation line is a warning (Lenient) or a *LineError.
func Lines(name string, r io.Reader, opts Options, fn func(line string, lineno int) error) error {
	lr := newLineReader(name, r, opts)
	for {
		line, n, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(string(line), n); err != nil {
			return err
		}
	}
}
