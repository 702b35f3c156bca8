package sqlmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"sqlmta/config"
	"sqlmta/mapdrivers"
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

	// mysql only.
	requireResultSet        bool
	optionFile, optionGroup string
	myPort, mySocket        string // from the option file
	tls                     tlsSettings
}

// tlsSettings are mysql's tls_* parameters. TLS is used when any of the
// files or the cipher list is set, as Postfix calls mysql_ssl_set then.
type tlsSettings struct {
	certFile, keyFile, caFile, caPath, ciphers string
	verifyCert                                 bool
}

func (t tlsSettings) enabled() bool {
	return t.certFile != "" || t.keyFile != "" || t.caFile != "" || t.caPath != "" || t.ciphers != ""
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
	}
	if mapType == "mysql" {
		var err error
		if s.requireResultSet, err = cfBool(path, "require_result_set", str("require_result_set", "yes")); err != nil {
			return nil, err
		}
		if s.tls.verifyCert, err = cfBool(path, "tls_verify_cert", str("tls_verify_cert", "no")); err != nil {
			return nil, err
		}
		s.optionFile = str("option_file", "")
		s.optionGroup = str("option_group", "client")
		s.tls.certFile = str("tls_cert_file", "")
		s.tls.keyFile = str("tls_key_file", "")
		s.tls.caFile = str("tls_CAfile", "")
		s.tls.caPath = str("tls_CApath", "")
		s.tls.ciphers = str("tls_ciphers", "")
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

// cfBool is cfg_get_bool: "yes" or "no", nothing else.
func cfBool(path, name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%s: bad boolean value for %s: %q", path, name, v)
}

// domainList is the "domain" parameter: a Postfix string list of exact
// domain names (no subdomain matching), /file items, type:table items
// (member = the domain is a key of the table) and !negations. The first
// matching item decides.
type domainList struct {
	items []domItem
}

type domItem struct {
	neg  bool
	name string // folded domain, or
	spec string // type:table, opened by Open into m
	m    mapdrivers.Map
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
			d.items = append(d.items, domItem{neg: neg, spec: base})
			return nil
		}
		d.items = append(d.items, domItem{neg: neg, name: foldKey(base)})
		return nil
	}
	for _, item := range config.SplitList(v) {
		if err := add(item); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// open opens the type:table items with openMap.
func (d *domainList) open(ctx context.Context, openMap func(context.Context, string) (mapdrivers.Map, error)) error {
	for i := range d.items {
		it := &d.items[i]
		if it.spec == "" {
			continue
		}
		if openMap == nil {
			return fmt.Errorf("domain: %q: type:table items need Options.OpenMap", it.spec)
		}
		m, err := openMap(ctx, it.spec)
		if err != nil {
			return fmt.Errorf("domain: %q: %w", it.spec, err)
		}
		it.m = m
	}
	return nil
}

func (d *domainList) close() error {
	var errs []error
	for i := range d.items {
		if d.items[i].m != nil {
			errs = append(errs, d.items[i].m.Close())
			d.items[i].m = nil
		}
	}
	return errors.Join(errs...)
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
// localpart whose domain is on the list are queried. A failing table
// lookup is an error, as in Postfix's match_list.
func (d *domainList) admits(ctx context.Context, key string) (bool, error) {
	at := strings.LastIndexByte(key, '@')
	if at <= 0 {
		return false, nil
	}
	dom := key[at+1:]
	for _, it := range d.items {
		match := it.name == dom
		if it.m != nil {
			_, found, err := it.m.Lookup(ctx, dom)
			if err != nil {
				return false, fmt.Errorf("domain: %s: %w", it.spec, err)
			}
			match = found
		} else if it.spec != "" {
			continue // not opened (Check before Open finished): cannot match
		}
		if match {
			return !it.neg, nil
		}
	}
	return false, nil
}
