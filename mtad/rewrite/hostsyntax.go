package rewrite

import (
	"net/netip"
	"strings"
)

// ValidHostname is Postfix's valid_hostname: letters, digits, '-' and '_'
// in labels of at most 63 characters, no empty label, no hyphen at a label's
// edge, and not all-numeric.
func ValidHostname(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	label, nonNumeric := 0, false
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch == '.':
			if label == 0 || i == len(name)-1 {
				return false
			}
			label = 0
		case ch == '-':
			nonNumeric = true
			label++
			if label == 1 || i == len(name)-1 || name[i+1] == '.' {
				return false
			}
		case ch|0x20 >= 'a' && ch|0x20 <= 'z' || ch == '_' || ch >= '0' && ch <= '9':
			label++
			if label > 63 {
				return false
			}
			if ch < '0' || ch > '9' {
				nonNumeric = true
			}
		default:
			return false
		}
	}
	return nonNumeric
}

// ValidHostaddr is valid_hostaddr: a dotted quad or an IPv6 address.
func ValidHostaddr(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return false
	}
	return !a.Is4() || strings.Count(s, ".") == 3
}

// ValidMailhostAddr is valid_mailhost_addr: an address literal's inside,
// "IPv6:" before IPv6 addresses.
func ValidMailhostAddr(s string) bool {
	if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
		a, err := netip.ParseAddr(s[5:])
		return err == nil && a.Is6() && !a.Is4In6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && strings.Count(s, ".") == 3
}
