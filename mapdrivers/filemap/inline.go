package filemap

import (
	"context"
	"fmt"
	"strings"

	"sqlmta/mapdrivers"
	"sqlmta/mapdrivers/mapfile"
)

// Inline is inline:{ key=value, { key = text with space } }.
type Inline struct {
	m map[string]string
}

// OpenInline parses the text after "inline:" (braces included). Elements
// are separated by commas or whitespace; an element in braces may have
// spaces around '=' and in its value. Keys are folded; a later duplicate
// replaces an earlier one, as Postfix's in-memory table does.
func OpenInline(spec string) (*Inline, error) {
	bad := func(detail string) error {
		if detail != "" {
			return fmt.Errorf("%s: \"inline:%s\"; need \"inline:{name=value...}\"", detail, spec)
		}
		return fmt.Errorf("bad syntax: \"inline:%s\"; need \"inline:{name=value...}\"", spec)
	}
	inner, err := extpar(spec)
	if err != nil {
		return nil, bad("")
	}
	elems, err := splitBraced(inner)
	if err != nil || len(elems) == 0 {
		return nil, bad("")
	}
	m := map[string]string{}
	for _, e := range elems {
		var name, value string
		if strings.HasPrefix(e, "{") {
			in, err := extpar(e)
			if err != nil {
				return nil, bad("")
			}
			k := strings.IndexByte(in, '=')
			if k < 0 {
				return nil, bad("missing '=' after attribute name")
			}
			name, value = strings.TrimSpace(in[:k]), strings.TrimSpace(in[k+1:])
			if strings.ContainsAny(name, " \t\r\n\v\f") {
				// split_nameval: the name is one word.
				return nil, bad("missing '=' after attribute name")
			}
		} else {
			k := strings.IndexByte(e, '=')
			if k < 0 {
				return nil, bad("missing '=' after attribute name")
			}
			name, value = e[:k], e[k+1:]
		}
		if name == "" {
			return nil, bad("missing attribute name")
		}
		m[mapfile.Fold(name)] = value
	}
	return &Inline{m: m}, nil
}

// extpar strips one pair of enclosing braces and the whitespace inside them.
func extpar(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return "", fmt.Errorf("missing braces")
	}
	return strings.TrimSpace(s[1 : len(s)-1]), nil
}

// splitBraced splits on commas and whitespace, keeping {...} groups whole.
func splitBraced(s string) ([]string, error) {
	var out []string
	depth, start := 0, -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{':
			depth++
		case c == '}':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced braces")
			}
		case depth == 0 && (c == ',' || isSpace(c)):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced braces")
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out, nil
}

// Lookup implements mapdrivers.Map.
func (t *Inline) Lookup(_ context.Context, key string) (string, bool, error) {
	v, ok := t.m[mapfile.Fold(key)]
	return v, ok, nil
}

// Props implements mapdrivers.Map.
func (t *Inline) Props() mapdrivers.Props { return mapdrivers.Props{FoldCase: true} }

// Close implements mapdrivers.Map.
func (t *Inline) Close() error { return nil }

// Static is static:value — every key is found with the same value.
type Static struct{ value string }

// OpenStatic takes the text after "static:"; "{ text }" keeps the inner
// text (spaces inside included), braces and surrounding spaces stripped.
func OpenStatic(value string) (*Static, error) {
	if value == "" {
		return nil, fmt.Errorf("open dictionary: expecting \"type:name\" form instead of \"static:\"")
	}
	if strings.HasPrefix(value, "{") {
		in, err := extpar(value)
		if err != nil {
			return nil, fmt.Errorf("static:%s: %v", value, err)
		}
		value = in
	}
	return &Static{value: value}, nil
}

// Lookup implements mapdrivers.Map.
func (t *Static) Lookup(context.Context, string) (string, bool, error) {
	return t.value, true, nil
}

// Props implements mapdrivers.Map.
func (t *Static) Props() mapdrivers.Props { return mapdrivers.Props{} }

// Close implements mapdrivers.Map.
func (t *Static) Close() error { return nil }
