package sasl

import (
	"fmt"
	"strings"
)

// securityOptions maps the words of smtpd_sasl_security_options to the
// Dovecot flag they concern. A "no…" option refuses mechanisms with the
// flag; mutual_auth and forward_secrecy require it.
var securityOptions = map[string]struct {
	flag    string
	require bool
}{
	"noplaintext":     {"plaintext", false},
	"noactive":        {"active", false},
	"nodictionary":    {"dictionary", false},
	"noanonymous":     {"anonymous", false},
	"mutual_auth":     {"mutual-auth", true},
	"forward_secrecy": {"forward-secrecy", true},
}

// Filter returns the names of the mechanisms that the security options opts
// allow, in the server's order: the words of smtpd_sasl_security_options,
// or of smtpd_sasl_tls_security_options on a TLS session (both
// "noanonymous" by default). Case does not matter. An unknown option is an
// error, as it is fatal to Postfix; an empty result is what Postfix's smtpd
// dies of with "fatal: no SASL authentication mechanisms".
func Filter(mechs []Mechanism, opts []string) ([]string, error) {
	type rule struct {
		flag    string
		require bool
	}
	var rules []rule
	for _, o := range opts {
		r, ok := securityOptions[strings.ToLower(o)]
		if !ok {
			return nil, fmt.Errorf("unknown SASL security option %q", o)
		}
		rules = append(rules, rule(r))
	}
	names := []string{}
next:
	for _, m := range mechs {
		for _, r := range rules {
			if m.Has(r.flag) != r.require {
				continue next
			}
		}
		names = append(names, m.Name)
	}
	return names, nil
}

// MechanismFilter is smtpd_sasl_mechanism_filter, Postfix's last cut of the
// list shown after "250-AUTH" (and smtp_sasl_mechanism_filter, the SMTP
// client's cut of the server's list). It is a match list read left to right, the
// first match deciding: a mechanism name (any case), "!name" to drop it, and
// "static:…" (the default's "static:rest") matching every mechanism. Other
// tables and "/file" items are not supported. Postfix applies it to the EHLO
// reply only: AUTH accepts any mechanism that the security options allow.
type MechanismFilter struct {
	items []filterItem
}

type filterItem struct {
	name   string // "" matches everything (a static: table)
	negate bool
}

// ParseMechanismFilter reads the items of smtpd_sasl_mechanism_filter,
// "!external, static:rest" by default. An empty list matches nothing, so
// that every mechanism is dropped, as in Postfix.
func ParseMechanismFilter(items []string) (*MechanismFilter, error) {
	f := &MechanismFilter{}
	for _, it := range items {
		neg := false
		for strings.HasPrefix(it, "!") {
			neg, it = !neg, strings.TrimSpace(it[1:])
		}
		switch {
		case it == "":
			return nil, fmt.Errorf("smtpd_sasl_mechanism_filter: empty item")
		case strings.HasPrefix(it, "static:"):
			f.items = append(f.items, filterItem{negate: neg})
		case strings.HasPrefix(it, "/") || strings.Contains(it, ":"):
			return nil, fmt.Errorf("smtpd_sasl_mechanism_filter: %q is not supported (only names, !names and static: tables)", it)
		default:
			f.items = append(f.items, filterItem{name: it, negate: neg})
		}
	}
	return f, nil
}

// Apply returns the names the filter keeps, in their order.
func (f *MechanismFilter) Apply(names []string) []string {
	kept := []string{}
	for _, n := range names {
		for _, it := range f.items {
			if it.name == "" || strings.EqualFold(it.name, n) {
				if !it.negate {
					kept = append(kept, n)
				}
				break
			}
		}
	}
	return kept
}
