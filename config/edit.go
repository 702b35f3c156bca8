package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// EditMode selects what EditMain does with the named parameters.
type EditMode int

const (
	// EditSet replaces each "name = …" logical line (continuation lines
	// included) by "name = value" and appends names not found, sorted, at
	// the end: postconf -e.
	EditSet EditMode = iota
	// EditRemove drops the logical lines of the named parameters: postconf -X.
	EditRemove
	// EditComment prefixes every physical line of the named parameters'
	// logical lines with '#': postconf -#.
	EditComment
)

// EditMain edits the main.cf at path in place as postconf -e, -X and -#
// do: every byte outside the edited logical lines is kept, comment and blank
// lines inside a continuation pass through untouched, and the result replaces
// the file atomically (temporary file in the same directory, then rename).
//
// args are "name=value" for EditSet and bare names otherwise, exactly as
// given on the postconf command line. Warnings (a name requested twice, a
// name with several entries in the file) are returned in postconf's wording;
// the error texts are postconf's fatal messages.
func EditMain(path string, mode EditMode, args []string) (warnings []string, err error) {
	type req struct {
		value string
		found int
	}
	reqs := map[string]*req{}
	var order []string
	for _, a := range args {
		if strings.Contains(a, "\n") {
			return nil, errors.New("-e, -X, or -# accepts no multi-line input")
		}
		a = strings.TrimLeft(a, " \t\r\v\f")
		if strings.HasPrefix(a, "#") {
			return nil, errors.New("-e, -X, or -# accepts no comment input")
		}
		var name, value string
		if mode == EditSet {
			n, v, msg := splitEditNameValue(a)
			if msg != "" {
				return nil, fmt.Errorf("%s: %q", msg, a)
			}
			name, value = n, v
		} else {
			if a == "" {
				return nil, errors.New("-X or -# requires non-blank parameter names")
			}
			if strings.Contains(a, "=") {
				return nil, errors.New("-X or -# requires parameter names without value")
			}
			name = strings.TrimRight(a, " \t\r\v\f")
		}
		if old, ok := reqs[name]; ok {
			// postconf prints "(null)" for the missing value of -X/-#.
			ov := old.value
			if mode != EditSet {
				ov = "(null)"
			}
			warnings = append(warnings, fmt.Sprintf("ignoring earlier request: '%s = %s'", name, ov))
		}
		if _, dup := reqs[name]; dup {
			for i, n := range order {
				if n == name {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
		}
		order = append(order, name)
		reqs[name] = &req{value: value}
	}

	src, err := os.ReadFile(path)
	if err != nil {
		return warnings, fmt.Errorf("open %s for reading: %w", path, unwrapPathErr(err))
	}
	var out bytes.Buffer
	out.Grow(len(src) + 64)
	interesting := false
	rd := bufio.NewReader(bytes.NewReader(src))
	for {
		line, rerr := rd.ReadString('\n')
		if line == "" && rerr != nil {
			if rerr != io.EOF {
				return warnings, rerr
			}
			break
		}
		content := strings.TrimLeft(line, " \t\r\n\v\f")
		switch {
		case content == "" || content[0] == '#':
			// Blank and comment lines always pass through, even inside
			// an edited entry's continuation.
			out.WriteString(line)
		case len(content) < len(line):
			// A continuation line belongs to the previous entry.
			if !interesting {
				out.WriteString(line)
			} else if mode == EditComment {
				out.WriteString("#" + line)
			}
		default:
			key := line[:strings.IndexAny(line, " \t\r\n\v\f=")]
			r := reqs[key]
			interesting = r != nil
			if !interesting {
				out.WriteString(line)
				break
			}
			r.found++
			if r.found == 2 {
				warnings = append(warnings, fmt.Sprintf("%s: multiple entries for %q", path, key))
			}
			switch mode {
			case EditSet:
				fmt.Fprintf(&out, "%s = %s\n", key, r.value)
			case EditComment:
				out.WriteString("#" + line)
			}
		}
	}
	if mode == EditSet {
		// New names go at the end, sorted: postconf 3.7 uses its hash
		// table's order, which is arbitrary; later Postfix sorts. A last
		// line without a newline stays without one, as with postconf 3.7.
		sort.Strings(order)
		for _, name := range order {
			if r := reqs[name]; r.found == 0 {
				fmt.Fprintf(&out, "%s = %s\n", name, r.value)
			}
		}
	}
	return warnings, writeAtomic(path, out.Bytes())
}

// splitEditNameValue is Postfix's split_nameval(): name and value with
// surrounding whitespace removed; its error texts.
func splitEditNameValue(s string) (name, value, errMsg string) {
	s = strings.TrimLeft(s, " \t\r\n\v\f")
	if s == "" {
		return "", "", "missing attribute name"
	}
	end := strings.IndexAny(s, " \t\r\n\v\f=")
	if end < 0 {
		return "", "", "missing '=' after attribute name"
	}
	name, rest := s[:end], strings.TrimLeft(s[end:], " \t\r\n\v\f")
	if name == "" {
		return "", "", "missing attribute name"
	}
	if !strings.HasPrefix(rest, "=") {
		return "", "", "missing '=' after attribute name"
	}
	return name, strings.TrimSpace(rest[1:]), ""
}

// writeAtomic replaces path with data so that a reader sees the old file or
// the new one, never a half-written one. The file keeps its permissions.
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}

// unwrapPathErr turns "open X: no such file" into "No such file or
// directory"-style text without the duplicated path.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
