package sqlmap

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"sqlmta/config"
)

// settings are the parameters of one .cf file.
type settings struct {
	hosts          []string
	user, password string
	dbname         string
	dbpath         string // sqlite
	query          string
	resultFormat   string
	domains        *domainList
	expansionLimit int
}

// readCF parses a pgsql:, mysql: or sqlite: .cf file. The file has main.cf
// syntax but, like Postfix's cfg_parser, its values are taken literally:
// there is no $name expansion (a '$' in a query or password stays a '$').
func readCF(mapType, path string) (*settings, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := config.Parse(path, f)
	if err != nil {
		return nil, err
	}
	get := func(name, def string) (string, bool) {
		if !c.IsExplicit(name) {
			return def, false
		}
		v, _ := c.Raw(name)
		return v, true
	}
	str := func(name, def string) string { v, _ := get(name, def); return v }

	s := &settings{
		user:         str("user", ""),
		password:     str("password", ""),
		dbname:       str("dbname", ""),
		resultFormat: str("result_format", "%s"),
	}
	if v := str("expansion_limit", "0"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: bad expansion_limit value: %q", path, v)
		}
		s.expansionLimit = n
	}
	switch mapType {
	case "sqlite":
		s.dbpath = str("dbpath", "")
		if s.dbpath == "" {
			return nil, fmt.Errorf("%s: 'dbpath' parameter not defined", path)
		}
	default:
		s.hosts = config.SplitList(str("hosts", ""))
		if len(s.hosts) == 0 {
			s.hosts = []string{"localhost"}
		}
	}

	if q, ok := get("query", ""); ok {
		s.query = q
	} else if fn, ok := get("select_function", ""); ok && mapType == "pgsql" {
		s.query = "SELECT " + fn + "('%s')"
	} else {
		// The model of the old mysql-aliases.cf: exactly Postfix's text.
		var missing []string
		field := func(name string) string {
			v, ok := get(name, "")
			if !ok || v == "" {
				missing = append(missing, name)
			}
			return v
		}
		table, sel, where := field("table"), field("select_field"), field("where_field")
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s: no 'query' and legacy parameter %s not defined", path, strings.Join(missing, ", "))
		}
		s.query = fmt.Sprintf("SELECT %s FROM %s WHERE %s='%%s' %s", sel, table, where, str("additional_conditions", ""))
	}

	if v := str("domain", ""); v != "" {
		d, err := parseDomainList(v)
		if err != nil {
			return nil, fmt.Errorf("%s: domain: %w", path, err)
		}
		s.domains = d
	}
	return s, nil
}

// domainList is the "domain" parameter: a Postfix string list of exact
// domain names (no subdomain matching), /file items and !negations.
type domainList struct {
	patterns []string // folded; "!x" negates
}

func parseDomainList(v string) (*domainList, error) {
	d := &domainList{}
	var add func(item string) error
	add = func(item string) error {
		neg := strings.HasPrefix(item, "!")
		base := strings.TrimPrefix(item, "!")
		switch {
		case strings.HasPrefix(base, "/"):
			words, err := readWords(base)
			if err != nil {
				return err
			}
			for _, w := range words {
				if neg {
					w = "!" + w
				}
				if err := add(w); err != nil {
					return err
				}
			}
			return nil
		case strings.Contains(base, ":"):
			return fmt.Errorf("%q: type:table items are not supported yet", item)
		}
		d.patterns = append(d.patterns, foldKey(item))
		return nil
	}
	for _, item := range config.SplitList(v) {
		if err := add(item); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// readWords reads a /file list: words separated by whitespace or commas,
// '#' comments to the end of the line.
func readWords(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		out = append(out, config.SplitList(line)...)
	}
	return out, sc.Err()
}

// admits is db_common_check_domain: only user@domain keys with a non-empty
// localpart whose domain is on the list are queried.
func (d *domainList) admits(key string) bool {
	at := strings.LastIndexByte(key, '@')
	if at <= 0 {
		return false
	}
	dom := key[at+1:]
	for _, p := range d.patterns {
		if strings.HasPrefix(p, "!") {
			if p[1:] == dom {
				return false
			}
		} else if p == dom {
			return true
		}
	}
	return false
}
