package node

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"sqlmta/config"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/sasl"
	"sqlmta/mtad/smtpd"
)

// saslClients are the Dovecot auth clients by smtpd_sasl_path: one per
// server for the whole process, as each Postfix smtpd keeps one, shared by
// services and kept across reloads.
type saslClients struct {
	mu sync.Mutex
	m  map[string]*sasl.Client
}

func (sc *saslClients) get(path string) (*sasl.Client, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if c := sc.m[path]; c != nil {
		return c, nil
	}
	c, err := sasl.New(path, 0)
	if err != nil {
		return nil, err
	}
	if sc.m == nil {
		sc.m = map[string]*sasl.Client{}
	}
	sc.m[path] = c
	return c, nil
}

func (sc *saslClients) close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, c := range sc.m {
		c.Close()
	}
	sc.m = nil
}

// smtpdSASL reads the smtpd_sasl_* parameters. Only Dovecot's protocol is
// spoken; Postfix's default type, cyrus, is refused with a clear error
// when AUTH is enabled rather than silently offering nothing.
func (n *Node) smtpdSASL(cfg *config.Config) (smtpd.SASLConfig, error) {
	var c smtpd.SASLConfig
	on, err := cfg.Bool("smtpd_sasl_auth_enable")
	if err != nil || !on {
		return c, err
	}
	if t := cfg.Get("smtpd_sasl_type"); t != "dovecot" {
		return c, fmt.Errorf("smtpd_sasl_type = %s is not supported; set smtpd_sasl_type = dovecot (Dovecot's auth-client socket)", t)
	}
	path := cfg.Get("smtpd_sasl_path")
	if !strings.HasPrefix(path, "inet:") && !strings.HasPrefix(path, "unix:") && !filepath.IsAbs(path) {
		// Postfix's smtpd runs in its queue directory: private/auth there.
		path = filepath.Join(cfg.Get("queue_directory"), path)
	}
	if c.Client, err = n.sasl.get(path); err != nil {
		return c, fmt.Errorf("smtpd_sasl_path: %w", err)
	}
	c.Service = cfg.Get("smtpd_sasl_service")
	c.SecurityOptions = cfg.List("smtpd_sasl_security_options")
	c.TLSSecurityOptions = cfg.List("smtpd_sasl_tls_security_options")
	for _, p := range []string{"smtpd_sasl_security_options", "smtpd_sasl_tls_security_options"} {
		if _, err := sasl.Filter(nil, cfg.List(p)); err != nil {
			return c, fmt.Errorf("%s: %w", p, err)
		}
	}
	if c.MechanismFilter, err = sasl.ParseMechanismFilter(cfg.List("smtpd_sasl_mechanism_filter")); err != nil {
		return c, err
	}
	if nets := cfg.List("smtpd_sasl_exceptions_networks"); len(nets) > 0 {
		if c.ExceptionsNetworks, err = matchlist.ParseNetworks(nets); err != nil {
			return c, fmt.Errorf("smtpd_sasl_exceptions_networks: %w", err)
		}
	}
	if c.BrokenClients, err = cfg.Bool("broken_sasl_auth_clients"); err != nil {
		return c, err
	}
	if c.AuthenticatedHeader, err = cfg.Bool("smtpd_sasl_authenticated_header"); err != nil {
		return c, err
	}
	c.ResponseLimit, err = cfg.Int("smtpd_sasl_response_limit")
	return c, err
}
