package rewrite

import "strings"

// QuoteLocal is Postfix's quote_822_local: an address in internal form gets
// its local part quoted as a whole when that is not a dot-atom (RFC 5322
// specials, spaces, controls, empty or misplaced dots).
func QuoteLocal(addr string) string {
	local, domain, hasAt := SplitLocal(addr)
	if !needsQuote(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	if hasAt {
		b.WriteString("@" + domain)
	}
	return b.String()
}

func needsQuote(local string) bool {
	if local == "" {
		return false
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return true
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c <= ' ' || c == 0x7f || (c != '.' && strings.IndexByte(`()<>@,;:\".[]`, c) >= 0) {
			return true
		}
	}
	return false
}
