package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sqlmta/config"
	"sqlmta/mtad/smtpd"
	"sqlmta/mtad/tlsconf"
)

// smtpdTLS reads smtpd's TLS parameters and loads the certificates, so
// that a reload picks up renewed files. A level of may without any
// certificate offers no STARTTLS and warns, as Postfix does; encrypt
// without one is an error, since no client could send mail.
func (n *Node) smtpdTLS(cfg *config.Config) (smtpd.TLSConfig, error) {
	var t smtpd.TLSConfig
	var errs []error
	boolean := func(name string) bool {
		v, err := cfg.Bool(name)
		errs = append(errs, err)
		return v
	}
	level := cfg.Get("smtpd_tls_security_level")
	if level == "" {
		// The pre-2.3 parameters, read only when the level is not set.
		switch {
		case boolean("smtpd_enforce_tls"):
			level = "encrypt"
		case boolean("smtpd_use_tls"):
			level = "may"
		default:
			level = "none"
		}
	}
	t.AuthOnly = boolean("smtpd_tls_auth_only")
	t.WrapperMode = boolean("smtpd_tls_wrappermode")
	var err error
	t.HandshakeTimeout, err = cfg.Duration("smtpd_starttls_timeout")
	errs = append(errs, err)
	t.LogLevel, err = cfg.Int("smtpd_tls_loglevel")
	errs = append(errs, err)
	switch level {
	case "none":
		if !t.WrapperMode {
			return t, errors.Join(errs...)
		}
	case "may":
	case "encrypt":
		t.Enforce = true
	default:
		return t, fmt.Errorf("smtpd_tls_security_level: unsupported value %q (none, may or encrypt)", level)
	}
	var certs []tls.Certificate
	if files := cfg.List("smtpd_tls_chain_files"); len(files) > 0 {
		for _, f := range files {
			c, err := tlsconf.LoadChainFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("smtpd_tls_chain_files: %w", err))
			}
			certs = append(certs, c)
		}
	} else {
		for _, p := range [][2]string{{"smtpd_tls_cert_file", "smtpd_tls_key_file"}, {"smtpd_tls_eccert_file", "smtpd_tls_eckey_file"}} {
			if cert := cfg.Get(p[0]); cert != "" {
				c, err := tlsconf.LoadPair(cert, cfg.Get(p[1]))
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p[0], err))
				}
				certs = append(certs, c)
			}
		}
		if cfg.Get("smtpd_tls_dcert_file") != "" {
			n.log.Printf("smtpd", "warning: smtpd_tls_dcert_file: DSA certificates are not supported; ignored")
		}
	}
	if len(certs) == 0 {
		if t.Enforce || t.WrapperMode {
			errs = append(errs, fmt.Errorf("smtpd_tls_security_level = %s (or smtpd_tls_wrappermode) needs smtpd_tls_cert_file or smtpd_tls_chain_files", level))
		} else {
			n.log.Printf("smtpd", "warning: No server certs available. TLS won't be enabled")
		}
		return t, errors.Join(errs...)
	}
	protocols := "smtpd_tls_protocols"
	if t.Enforce {
		protocols = "smtpd_tls_mandatory_protocols"
	}
	minV, maxV, err := tlsconf.Protocols(cfg.Get(protocols))
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", protocols, err))
	}
	t.Server = &tls.Config{Certificates: certs, MinVersion: minV, MaxVersion: maxV}
	errs = append(errs, n.smtpdClientCerts(cfg, &t))
	return t, errors.Join(errs...)
}

// smtpdClientCerts reads the client-certificate parameters: whether to
// ask (smtpd_tls_ask_ccert) or, at level encrypt, to require a trusted
// certificate (smtpd_tls_req_ccert), the CAs that make one trusted, the
// fingerprint digest and relay_clientcerts.
func (n *Node) smtpdClientCerts(cfg *config.Config, t *smtpd.TLSConfig) error {
	ask, err := cfg.Bool("smtpd_tls_ask_ccert")
	if err != nil {
		return err
	}
	req, err := cfg.Bool("smtpd_tls_req_ccert")
	if err != nil {
		return err
	}
	if req && !t.Enforce {
		n.log.Printf("smtpd", "warning: smtpd_tls_req_ccert: can't require client certs unless TLS is required; ignored")
		req = false
	}
	t.Digest = cfg.Get("smtpd_tls_fingerprint_digest")
	switch strings.ToLower(t.Digest) {
	case "md5", "sha1", "sha256", "sha512":
	default:
		return fmt.Errorf("smtpd_tls_fingerprint_digest: unsupported digest %q (md5, sha1, sha256 or sha512)", t.Digest)
	}
	t.RelayClientCerts = cfg.Get("relay_clientcerts")
	var pems [][]byte
	if f := cfg.Get("smtpd_tls_CAfile"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("smtpd_tls_CAfile: %w", err)
		}
		pems = append(pems, b)
	}
	if d := cfg.Get("smtpd_tls_CApath"); d != "" {
		files, err := filepath.Glob(filepath.Join(d, "*.pem"))
		if err != nil {
			return fmt.Errorf("smtpd_tls_CApath: %w", err)
		}
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				pems = append(pems, b)
			}
		}
	}
	if len(pems) > 0 {
		t.ClientCAs = x509.NewCertPool()
		for _, b := range pems {
			if !t.ClientCAs.AppendCertsFromPEM(b) {
				return fmt.Errorf("smtpd_tls_CAfile/CApath: no certificate in PEM data")
			}
		}
	}
	switch {
	case req:
		// Only a trusted certificate lets the handshake finish.
		t.Server.ClientAuth = tls.RequireAndVerifyClientCert
		t.Server.ClientCAs = t.ClientCAs
		if t.ClientCAs == nil {
			return fmt.Errorf("smtpd_tls_req_ccert = yes needs smtpd_tls_CAfile or smtpd_tls_CApath")
		}
	case ask:
		t.Server.ClientAuth = tls.RequestClientCert
	}
	return nil
}
