package smtpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TLSConfig is smtpd's part of the smtpd_tls_* parameters.
type TLSConfig struct {
	// Server holds the certificates. nil: TLS is not offered (STARTTLS
	// answers 502, as Postfix with smtpd_tls_security_level = none).
	Server *tls.Config
	// Enforce is smtpd_tls_security_level = encrypt: every command but
	// HELO, EHLO, STARTTLS, NOOP and QUIT needs TLS first.
	Enforce bool
	// AuthOnly is smtpd_tls_auth_only: AUTH only after STARTTLS.
	AuthOnly bool
	// WrapperMode is smtpd_tls_wrappermode: TLS from the first byte, the
	// "submissions" service on port 465.
	WrapperMode bool
	// HandshakeTimeout is smtpd_starttls_timeout (0 = 300s).
	HandshakeTimeout time.Duration
	// LogLevel is smtpd_tls_loglevel: 1 and up log each TLS session.
	LogLevel int
	// ClientCAs is smtpd_tls_CAfile: the CAs whose client certificates
	// are trusted (permit_tls_all_clientcerts). Server must ask for
	// certificates (smtpd_tls_ask_ccert: tls.RequestClientCert) for any
	// of the client-certificate restrictions to see one.
	ClientCAs *x509.CertPool
	// Digest is smtpd_tls_fingerprint_digest: md5, sha1, sha256 or sha512.
	Digest string
	// RelayClientCerts is relay_clientcerts, the table of fingerprints
	// permit_tls_clientcerts allows.
	RelayClientCerts string
}

// clientCert is what the session knows of the client's certificate.
type clientCert struct {
	present, trusted bool
	certFP, pkeyFP   string // fingerprints, "AB:CD:…"
	cn               string // subject CommonName, the name in replies
}

// offered: STARTTLS is announced and accepted.
func (s *session) tlsOffered() bool {
	return s.cfg.TLS.Server != nil && s.tls == nil && !s.cfg.TLS.WrapperMode
}

// needsTLS: smtpd_tls_security_level = encrypt holds this command back
// until STARTTLS.
func (s *session) needsTLS(cmd string) bool {
	if !s.cfg.TLS.Enforce || s.tls != nil {
		return false
	}
	switch cmd {
	case "helo", "ehlo", "starttls", "noop", "quit", "xclient", "xforward":
		return false
	}
	return true
}

func (s *session) refuseBeforeTLS(string) (bool, error) {
	s.reply("530 5.7.0 Must issue a STARTTLS command first")
	return false, nil
}

// cmdStarttls answers STARTTLS. A client's commands pipelined after it
// are thrown away unread, as Postfix does: they were sent in the clear
// and must not count as sent under TLS (CVE-2011-0411).
func (s *session) cmdStarttls(args string) (bool, error) {
	if args != "" {
		s.reply("501 5.5.4 Syntax: STARTTLS")
		return false, nil
	}
	if s.tls != nil {
		s.reply("554 5.5.1 Error: TLS already active")
		return false, nil
	}
	if !s.tlsOffered() {
		s.reply("502 5.5.1 Error: command not implemented")
		return false, nil
	}
	s.reply("220 2.0.0 Ready to start TLS")
	if err := s.flush(); err != nil {
		return false, err
	}
	s.br.Discard(s.br.Buffered())
	if err := s.handshake(); err != nil {
		return false, err
	}
	// RFC 3207 §4.2: forget what the client said before TLS.
	s.resetTx()
	s.helo = ""
	s.protocol = "SMTP"
	// The mechanisms on offer change with TLS.
	s.auth = authState{}
	return true, nil
}

// errTLSHandshake ends a session whose TLS handshake failed, logged as a
// lost connection (it is no read timeout: no 421 goes out in the clear).
var errTLSHandshake = errors.New("TLS handshake failed")

// handshake runs the server side of TLS on the connection and switches
// the session's reader and writer to it. A failed handshake ends the
// session: the connection is in an unknown state.
func (s *session) handshake() error {
	tc := tls.Server(s.conn, s.cfg.TLS.Server)
	timeout := s.cfg.TLS.HandshakeTimeout
	if timeout == 0 {
		timeout = 300 * time.Second
	}
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		s.logf("SSL_accept error from %s: %v", s.namaddr(), err)
		return errTLSHandshake
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	s.mu.Lock()
	s.conn = tc
	s.mu.Unlock()
	s.tls = &st
	s.ccert = s.inspectClientCert(&st)
	s.br.Reset(tc)
	s.bw.Reset(tc)
	if s.cfg.TLS.LogLevel >= 1 {
		kind := "Anonymous"
		switch {
		case s.ccert.trusted:
			kind = "Trusted"
		case s.ccert.present:
			kind = "Untrusted"
		}
		s.logf("%s TLS connection established from %s: %s", kind, s.namaddr(), tlsSummary(&st))
	}
	return nil
}

// tlsSummary describes a TLS session as Postfix's logs do:
// "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)".
func tlsSummary(st *tls.ConnectionState) string {
	version := strings.Replace(tls.VersionName(st.Version), "TLS ", "TLSv", 1)
	cipher := tls.CipherSuiteName(st.CipherSuite)
	bits := 128
	if strings.Contains(cipher, "_256_") || strings.Contains(cipher, "CHACHA20") {
		bits = 256
	}
	return fmt.Sprintf("%s with cipher %s (%d/%d bits)", version, cipher, bits, bits)
}
