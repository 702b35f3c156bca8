package envelope

import (
	"strconv"
	"strings"
)

// DecodeXtext undoes RFC 3461 xtext, the encoding of the DSN parameters ENVID
// and ORCPT ("+2B" is '+'); ok is false for a malformed escape.
func DecodeXtext(s string) (string, bool) {
	if !strings.Contains(s, "+") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}
