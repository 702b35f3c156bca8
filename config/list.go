package config

import "strings"

// listSeparators are the characters that separate list items: Postfix's
// CHARS_COMMA_SP.
const listSeparators = ", \t\r\n"

// SplitList splits a list-valued parameter into items the way Postfix 3.x
// does (mystrtokq + extpar): items are separated by any run of commas and
// whitespace, except inside balanced { }. An item that starts with '{' loses
// its outer braces and the whitespace just inside them, so
// "a, { b c , d } e" gives ["a", "b c , d", "e"]; braces inside an item
// ("inline:{ k=v, k2=v2 }") are left alone for the item's owner to parse.
func SplitList(s string) []string {
	items, _ := ParseList(s)
	return items
}

// ParseList is SplitList that also reports the first malformed braced item
// ("missing '}'", text after the closing brace); the items are returned
// either way, each as Postfix would use it.
func ParseList(s string) ([]string, error) {
	var items []string
	var firstErr error
	for {
		s = strings.TrimLeft(s, listSeparators)
		if s == "" {
			return items, firstErr
		}
		level, end := 0, len(s)
	scan:
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '{':
				level++
			case c == '}' && level > 0:
				level--
			case level == 0 && strings.IndexByte(listSeparators, c) >= 0:
				end = i
				break scan
			}
		}
		item := s[:end]
		s = s[end:]
		if strings.HasPrefix(item, "{") {
			var err error
			item, err = stripBraces(item)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		items = append(items, item)
	}
}

// stripBraces is Postfix's extpar(…, "{}", EXTPAR_FLAG_STRIP).
func stripBraces(item string) (string, error) {
	end := matchClose(item, 0, '{', '}')
	if end < 0 {
		return strings.TrimSpace(item[1:]), &listError{"missing '}' in \"" + item + "\""}
	}
	var err error
	if end != len(item)-1 {
		err = &listError{"syntax error after '}' in \"" + item + "\""}
	}
	return strings.TrimSpace(item[1:end]), err
}

type listError struct{ msg string }

func (e *listError) Error() string { return e.msg }
