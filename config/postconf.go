package config

import (
	"fmt"
	"sort"
	"strings"
)

// What postconf(1) knows beyond sqlmta's own table: every Postfix 3.7
// parameter name and default, which values it never expands, and which names
// it lists only when set. mtactl conf uses these to print what postconf
// prints.

// postfixIndex maps every name in postfixDefaults, and the legacy names, to
// its raw default.
var postfixIndex = func() map[string]string {
	m := make(map[string]string, len(postfixDefaults)+len(legacyParams))
	for _, kv := range postfixDefaults {
		m[kv[0]] = kv[1]
	}
	for n := range legacyParams {
		if _, ok := m[n]; !ok {
			m[n] = ""
		}
	}
	return m
}()

// legacyParams are obsolete names that Postfix's defaults still reference
// ($virtual_maps in virtual_alias_maps, …). postconf prints them when named
// or set in main.cf, but leaves them out of its full listing.
var legacyParams = map[string]bool{
	"authorized_verp_clients":                  true,
	"fallback_relay":                           true,
	"lmtp_per_record_deadline":                 true,
	"postscreen_blacklist_action":              true,
	"postscreen_dnsbl_ttl":                     true,
	"postscreen_dnsbl_whitelist_threshold":     true,
	"postscreen_whitelist_interfaces":          true,
	"smtp_per_record_deadline":                 true,
	"smtpd_client_connection_limit_exceptions": true,
	"smtpd_per_record_deadline":                true,
	"tlsproxy_client_level":                    true,
	"tlsproxy_client_policy":                   true,
	"virtual_maps":                             true,
}

// rawParams are the parameters whose values Postfix never expands at
// configuration time (postconf -x prints them as written): their $names are
// filled in per message or per delivery.
var rawParams = map[string]bool{
	"command_execution_directory": true,
	"default_rbl_reply":           true,
	"forward_path":                true,
	"luser_relay":                 true,
	"mailbox_command":             true,
	"postscreen_expansion_filter": true,
	"postscreen_reject_footer":    true,
	"smtpd_expansion_filter":      true,
	"smtpd_reject_footer":         true,
}

// readOnlyParams may not be set in main.cf; postconf warns and ignores them.
var readOnlyParams = map[string]bool{"service_name": true}

// MapTypes are the lookup table types sqlmta supports, as `postconf -m`
// lists them (sorted).
var MapTypes = []string{
	"btree", "cdb", "cidr", "fail", "hash", "inline", "lmdb", "mysql", "nis", "pcre",
	"pgsql", "proxy", "regexp", "sqlite", "static", "texthash", "unix",
}

// IsRaw reports whether postconf leaves name's value unexpanded even with -x.
func IsRaw(name string) bool { return rawParams[name] }

// IsLegacy reports whether name is an obsolete parameter that postconf lists
// only when main.cf sets it.
func IsLegacy(name string) bool { return legacyParams[name] }

// AllDefaults returns, sorted by name, every parameter postconf -d knows plus
// sqlmta's own, with this host's computed defaults; sqlmta's table wins where
// both have a name.
func AllDefaults() []Param {
	out := Defaults()
	for n, v := range postfixIndex {
		if _, ok := paramIndex[n]; !ok {
			out = append(out, Param{Name: n, Default: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Usage is what postconf works out about the user-defined names in main.cf.
type Usage struct {
	// Used are main.cf names that are not built-in parameters but that some
	// value references as $name (or smtpd_restriction_classes lists):
	// postconf treats them as parameters.
	Used map[string]bool
	// Warnings are postconf's "unused parameter" and "undefined parameter"
	// warnings, sorted.
	Warnings []string
}

// Usage scans main.cf's values and the defaults that main.cf does not
// override for $name references, as postconf does before printing.
func (c *Config) Usage() Usage {
	u := Usage{Used: map[string]bool{}}
	undefined := map[string]bool{}
	ref := func(name string) {
		if _, set := c.values[name]; set && c.explicit[name] {
			if !Known(name) {
				u.Used[name] = true
			}
			return
		}
		if !Known(name) {
			undefined[name] = true
		}
	}
	scan := func(name, value string) {
		if IsRaw(name) {
			return
		}
		for _, r := range references(value) {
			ref(r)
		}
	}
	for _, p := range AllDefaults() {
		if !c.explicit[p.Name] {
			scan(p.Name, p.Default)
		}
	}
	for _, n := range c.Explicit() {
		scan(n, c.values[n])
	}
	if classes, err := c.Lookup("smtpd_restriction_classes"); err == nil {
		for _, n := range SplitList(classes) {
			ref(n)
		}
	}
	for n := range undefined {
		u.Warnings = append(u.Warnings, fmt.Sprintf("%s: undefined parameter: %s", c.file, n))
	}
	for _, n := range c.Explicit() {
		if !Known(n) && !u.Used[n] {
			u.Warnings = append(u.Warnings, fmt.Sprintf("%s: unused parameter: %s=%s", c.file, n, c.values[n]))
		}
	}
	sort.Strings(u.Warnings)
	return u
}

// references lists the parameter names that s refers to: $name, ${name…},
// $(name), also inside conditional and relational expressions.
func references(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '$' {
			i = j // $$ is a literal dollar
			continue
		}
		if j < len(s) && (s[j] == '{' || s[j] == '(') {
			j++
		}
		k := j
		for k < len(s) && isNameByte(s[k]) {
			k++
		}
		if k > j {
			out = append(out, s[j:k])
		}
		i = k - 1
	}
	return out
}

// FoldSpace is how postconf prints a value: runs of whitespace become one
// space, leading and trailing whitespace goes.
func FoldSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// dropReadOnly removes read-only assignments from c with postconf's warning.
func (c *Config) dropReadOnly() {
	for n := range readOnlyParams {
		if v, ok := c.values[n]; ok && c.explicit[n] {
			c.warn(fmt.Sprintf("%s: read-only parameter assignment: %s=%s", c.file, n, v))
			delete(c.values, n)
			delete(c.explicit, n)
		}
	}
}
