package sqlmap

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// myOptions are the connection settings of a MySQL option file (my.cnf)
// that a mysql: table uses when its .cf does not give them.
type myOptions struct {
	user, password, host, port, socket, database string
}

// defaultOptionFiles are where MariaDB Connector/C (Postfix's client on
// Debian) looks when no option_file is named.
func defaultOptionFiles() []string {
	files := []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}
	if d := os.Getenv("MARIADB_HOME"); d != "" {
		files = append(files, filepath.Join(d, "my.cnf"))
	} else if d := os.Getenv("MYSQL_HOME"); d != "" {
		files = append(files, filepath.Join(d, "my.cnf"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(h, ".my.cnf"))
	}
	return files
}

// readMyOptions reads option_file (or, as libmysqlclient does when only a
// group is set, the default files) and keeps the groups Connector/C reads:
// client, client-server, client-mariadb and option_group. Later settings
// win, as in the C library. A missing default file is not an error; a
// missing option_file is.
func readMyOptions(file, group string) (*myOptions, error) {
	o := &myOptions{}
	groups := map[string]bool{"client": true, "client-server": true, "client-mariadb": true}
	if group != "" {
		groups[group] = true
	}
	if file != "" {
		return o, o.read(file, groups, 0)
	}
	if group == "" {
		return o, nil // Postfix sets no group: nothing is read
	}
	for _, f := range defaultOptionFiles() {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		// Like the C library, an unreadable default file is skipped.
		d := &myOptions{}
		*d = *o
		if err := d.read(f, groups, 0); err == nil {
			*o = *d
		}
	}
	return o, nil
}

func (o *myOptions) read(path string, groups map[string]bool, depth int) error {
	if depth > 10 {
		return fmt.Errorf("option file %s: !include nested too deeply", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("option_file: %w", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "!includedir"):
			dir := strings.TrimSpace(strings.TrimPrefix(line, "!includedir"))
			names, _ := filepath.Glob(filepath.Join(dir, "*.cnf"))
			sort.Strings(names)
			for _, n := range names {
				if err := o.read(n, groups, depth+1); err != nil {
					return err
				}
			}
			continue
		case strings.HasPrefix(line, "!include"):
			if err := o.read(strings.TrimSpace(strings.TrimPrefix(line, "!include")), groups, depth+1); err != nil {
				return err
			}
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return fmt.Errorf("option file %s: bad group line %q", path, line)
			}
			in = groups[strings.ToLower(strings.TrimSpace(line[1:end]))]
			continue
		}
		if !in {
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
		val = myValue(strings.TrimSpace(val))
		var dst *string
		switch key {
		case "user":
			dst = &o.user
		case "password":
			dst = &o.password
		case "host":
			dst = &o.host
		case "port":
			dst = &o.port
		case "socket":
			dst = &o.socket
		case "database":
			dst = &o.database
		default:
			continue
		}
		*dst = val
	}
	return sc.Err()
}

// myValue undoes my.cnf quoting: a quoted value ends at its closing quote;
// an unquoted one at a " #" comment; backslash escapes apply to both.
func myValue(v string) string {
	if len(v) >= 1 && (v[0] == '"' || v[0] == '\'') {
		q := v[0]
		if end := strings.LastIndexByte(v[1:], q); end >= 0 {
			v = v[1 : end+1]
		}
	} else if i := strings.Index(v, "#"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			switch v[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			case 'b':
				c = '\b'
			case 's':
				c = ' '
			case '\\', '"', '\'':
				c = v[i]
			default:
				b.WriteByte('\\')
				c = v[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// applyMyOptions fills the .cf settings that are empty from the option
// file. Empty hosts become the option file's host (or socket), else
// Postfix's default "localhost".
func applyMyOptions(s *settings) error {
	o, err := readMyOptions(s.optionFile, s.optionGroup)
	if err != nil {
		return err
	}
	if s.user == "" {
		s.user = o.user
	}
	if s.password == "" {
		s.password = o.password
	}
	if s.dbname == "" {
		s.dbname = o.database
	}
	s.myPort, s.mySocket = o.port, o.socket
	if len(s.hosts) == 0 {
		switch {
		case o.host != "" && o.host != "localhost":
			s.hosts = []string{o.host}
		default:
			s.hosts = []string{"localhost"}
		}
	}
	return nil
}

// registerTLS builds the crypto/tls configuration of a mysql: table's
// tls_* parameters and registers it with the driver. The name is derived
// from the settings, so .cf files with equal settings share a pool and
// reopening a map replaces (with freshly read files) rather than grows the
// driver's registry. serverName is the host for certificate name checks.
func registerTLS(t tlsSettings, serverName string, warnf func(string, ...any)) (string, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if t.certFile != "" || t.keyFile != "" {
		keyFile := t.keyFile
		if keyFile == "" {
			keyFile = t.certFile
		}
		certFile := t.certFile
		if certFile == "" {
			certFile = keyFile
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return "", fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	var roots *x509.CertPool
	if t.caFile != "" || t.caPath != "" {
		roots = x509.NewCertPool()
		var files []string
		if t.caFile != "" {
			files = append(files, t.caFile)
		}
		if t.caPath != "" {
			ents, err := os.ReadDir(t.caPath)
			if err != nil {
				return "", fmt.Errorf("tls_CApath: %w", err)
			}
			for _, e := range ents {
				if !e.IsDir() {
					files = append(files, filepath.Join(t.caPath, e.Name()))
				}
			}
		}
		for i, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("tls_CAfile: %w", err)
			}
			if !roots.AppendCertsFromPEM(pem) && i == 0 && t.caFile != "" {
				return "", fmt.Errorf("tls_CAfile %s: no PEM certificates", f)
			}
		}
		cfg.RootCAs = roots
	}
	if t.ciphers != "" {
		cfg.CipherSuites = tlsCiphers(t.ciphers, warnf)
	}
	if !t.verifyCert {
		// tls_verify_cert = no skips the host name check; with a CA the
		// chain is still verified, as the C client does.
		cfg.InsecureSkipVerify = true
		if roots != nil {
			cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				return verifyChain(raw, roots)
			}
		}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{t.certFile, t.keyFile, t.caFile, t.caPath, t.ciphers, fmt.Sprint(t.verifyCert), serverName}, "\x00")))
	name := "sqlmta-sqlmap-" + hex.EncodeToString(sum[:12])
	if err := mysql.RegisterTLSConfig(name, cfg); err != nil {
		return "", err
	}
	return name, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return fmt.Errorf("server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}

// tlsCiphers maps tls_ciphers (an OpenSSL-style list separated by colons,
// commas or spaces) to Go's suites, by IANA or OpenSSL name. Unknown names
// are warned about and skipped; TLS 1.3 suites are not configurable in Go.
func tlsCiphers(list string, warnf func(string, ...any)) []uint16 {
	byName := map[string]uint16{}
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[c.Name] = c.ID
		byName[opensslName(c.Name)] = c.ID
	}
	var ids []uint16
	for _, n := range strings.FieldsFunc(list, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if id, ok := byName[strings.ToUpper(n)]; ok {
			ids = append(ids, id)
		} else {
			warnf("tls_ciphers: %q is not a cipher suite Go supports: ignored", n)
		}
	}
	return ids
}

// opensslName turns TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 into
// ECDHE-RSA-AES128-GCM-SHA256 (good enough for the common suites).
func opensslName(iana string) string {
	s := strings.TrimPrefix(iana, "TLS_")
	s = strings.Replace(s, "_WITH_", "_", 1)
	s = strings.ReplaceAll(s, "AES_128", "AES128")
	s = strings.ReplaceAll(s, "AES_256", "AES256")
	s = strings.ReplaceAll(s, "CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305")
	return strings.ReplaceAll(s, "_", "-")
}
