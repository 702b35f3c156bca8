package smtpd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/sasl"
)

// SASLConfig is SMTP AUTH (smtpd_sasl_auth_enable = yes) through a Dovecot
// auth server (smtpd_sasl_type = dovecot).
type SASLConfig struct {
	// Client asks the auth server; nil: AUTH is not enabled.
	Client *sasl.Client
	// Service is smtpd_sasl_service ("smtp").
	Service string
	// SecurityOptions and TLSSecurityOptions are
	// smtpd_sasl_security_options and smtpd_sasl_tls_security_options:
	// which mechanisms a session without and with TLS may use.
	SecurityOptions, TLSSecurityOptions []string
	// MechanismFilter is smtpd_sasl_mechanism_filter: the mechanisms shown
	// after "250-AUTH" (AUTH itself accepts every allowed one, as Postfix).
	MechanismFilter *sasl.MechanismFilter
	// ExceptionsNetworks is smtpd_sasl_exceptions_networks: clients that
	// are not shown AUTH in the EHLO reply (they may still use it).
	ExceptionsNetworks *matchlist.Networks
	// BrokenClients is broken_sasl_auth_clients: also "250-AUTH=…" for
	// Outlook Express 4 and Microsoft Exchange 5.0.
	BrokenClients bool
	// AuthenticatedHeader is smtpd_sasl_authenticated_header: the
	// Received header names the login.
	AuthenticatedHeader bool
	// ResponseLimit is smtpd_sasl_response_limit (0 = 12288).
	ResponseLimit int
}

// authState is the session's SASL state: the mechanisms this session may
// use (fetched once per TLS state), and after a successful AUTH the login.
type authState struct {
	mechs   []string // allowed by the security options
	fetched bool     // mechs holds the answer, or failed is set
	failed  bool     // the auth server could not be asked
	user    string
	method  string
	sender  string // MAIL FROM AUTH=, for the policy service
}

// authActive: AUTH is enabled for this session. smtpd_tls_auth_only keeps
// it off until STARTTLS.
func (s *session) authActive() bool {
	return s.cfg.SASL.Client != nil && (!s.cfg.TLS.AuthOnly || s.tls != nil)
}

// authMechanisms fetches the mechanisms the server offers and the security
// options allow. An auth server that cannot be asked is logged as Postfix
// logs it; the session goes on without AUTH (Postfix's smtpd exits instead,
// which would take port 25 down with Dovecot).
func (s *session) authMechanisms() ([]string, bool) {
	if s.auth.fetched {
		return s.auth.mechs, !s.auth.failed
	}
	s.auth.fetched = true
	ctx, cancel := context.WithTimeout(s.srv.base, 30*time.Second)
	defer cancel()
	mechs, err := s.cfg.SASL.Client.Mechanisms(ctx)
	if err != nil {
		var f *sasl.Failure
		if errors.As(err, &f) && f.Warning != "" {
			s.logf("warning: %s", f.Warning)
		} else {
			s.logf("warning: SASL: %v", err)
		}
		s.auth.failed = true
		return nil, false
	}
	opts := s.cfg.SASL.SecurityOptions
	if s.tls != nil {
		opts = s.cfg.SASL.TLSSecurityOptions
	}
	names, err := sasl.Filter(mechs, opts)
	if err != nil || len(names) == 0 {
		s.logf("warning: no SASL authentication mechanisms")
		s.auth.failed = true
		return nil, false
	}
	s.auth.mechs = names
	return names, true
}

// ehloAuth adds the AUTH lines to an EHLO reply.
func (s *session) ehloAuth(lines []string) []string {
	if !s.authActive() || s.cfg.SASL.ExceptionsNetworks != nil && s.cfg.SASL.ExceptionsNetworks.Contains(s.ip) {
		return lines
	}
	mechs, ok := s.authMechanisms()
	if !ok {
		return lines
	}
	if f := s.cfg.SASL.MechanismFilter; f != nil {
		mechs = f.Apply(mechs)
	}
	if len(mechs) == 0 {
		return lines
	}
	list := strings.Join(mechs, " ")
	lines = append(lines, "AUTH "+list)
	if s.cfg.SASL.BrokenClients {
		lines = append(lines, "AUTH="+list)
	}
	return lines
}

// cmdAuth is Postfix's smtpd_sasl_auth_cmd: the checks in its order, then
// the exchange with the auth server.
func (s *session) cmdAuth(args string) (bool, error) {
	if s.cfg.HeloRequired && s.helo == "" {
		s.fail(errPolicy)
		s.reply("503 5.5.1 Error: send HELO/EHLO first")
		return false, nil
	}
	// With smtpd_tls_auth_only, AUTH is not enabled before STARTTLS (Postfix
	// has a 504 for it too, which this check leaves unreachable there).
	if !s.authActive() {
		s.reply("503 5.5.1 Error: authentication not enabled")
		return false, nil
	}
	if s.inTx {
		s.reply("503 5.5.1 Error: MAIL transaction in progress")
		return false, nil
	}
	if s.auth.user != "" {
		s.reply("503 5.5.1 Error: already authenticated")
		return false, nil
	}
	f := strings.Fields(args)
	if len(f) < 1 || len(f) > 2 {
		s.reply("501 5.5.4 Syntax: AUTH mechanism")
		return false, nil
	}
	if s.anvilRate(evAuth, s.cfg.Anvil.AuthRate, "AUTH command") {
		s.reply("450 4.7.1 Error: too many AUTH commands from %s", s.addr)
		return false, nil
	}
	mech := f[0]
	var initial *string
	if len(f) == 2 {
		initial = &f[1]
	}
	mechs, ok := s.authMechanisms()
	if !ok {
		return s.authFailed(mech, &sasl.Failure{Temporary: true, Reason: sasl.ReasonCannotConnect})
	}
	info := sasl.Info{Service: s.cfg.SASL.Service, RemoteIP: s.addr, Secured: s.tls != nil, Mechanisms: mechs}
	if a, ok := s.conn.LocalAddr().(*net.TCPAddr); ok {
		info.LocalIP = a.IP.String()
	}
	ctx := s.srv.base
	conv, step, err := s.cfg.SASL.Client.Start(ctx, mech, initial, info)
	for err == nil && !step.Done {
		s.reply("334 %s", step.Challenge)
		if err := s.flush(); err != nil {
			conv.Close()
			return false, err
		}
		line, tooLong, rerr := s.readAuthLine()
		if rerr != nil {
			conv.Close()
			return false, rerr
		}
		if tooLong {
			conv.Close()
			s.reply("500 5.5.6 SASL response limit exceeded")
			return false, nil
		}
		if line == "*" {
			conv.Close()
			s.logf("warning: %s: SASL %s authentication aborted", s.namaddr(), mech)
			s.reply("501 5.7.0 Authentication aborted")
			return false, nil
		}
		step, err = conv.Next(ctx, line)
	}
	if err != nil {
		var fl *sasl.Failure
		if !errors.As(err, &fl) {
			fl = &sasl.Failure{Temporary: true, Err: err}
		}
		return s.authFailed(mech, fl)
	}
	s.auth.user, s.auth.method = step.User, mech
	s.reply("235 2.7.0 Authentication successful")
	return true, nil
}

// authFailed answers and logs a failed AUTH as Postfix does.
func (s *session) authFailed(mech string, f *sasl.Failure) (bool, error) {
	if f.Warning != "" {
		s.logf("warning: %s", f.Warning)
	}
	reason := f.Reason
	if reason == "" {
		reason = "(reason unavailable)"
	}
	user := f.User
	if user == "" {
		user = "(unavailable)"
	}
	s.logf("warning: %s: SASL %.100s authentication failed: %s, sasl_username=%.100s", s.namaddr(), mech, reason, user)
	if f.Temporary {
		s.reply("454 4.7.0 Temporary authentication failure: %s", reason)
	} else {
		s.reply("535 5.7.8 Error: authentication failed: %s", reason)
	}
	return false, nil
}

// readAuthLine reads a client's response to a 334 challenge, up to
// smtpd_sasl_response_limit; a longer line is read to its end and
// reported, as Postfix logs "request longer than N".
func (s *session) readAuthLine() (line string, tooLong bool, err error) {
	limit := s.cfg.SASL.ResponseLimit
	if limit == 0 {
		limit = 12288
	}
	s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	var b []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(b) <= limit {
			b = append(b, chunk[:min(len(chunk), limit+1-len(b))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", false, err
		}
		break
	}
	l := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if len(l) > limit {
		s.logf("warning: %s: request longer than %d: %.30s...", s.namaddr(), limit, l)
		return "", true, nil
	}
	return l, false, nil
}

// mailAuthParam is MAIL FROM's AUTH= parameter (RFC 4954 section 5): kept
// for the policy service's sasl_sender; "" is returned or a reply.
func (s *session) mailAuthParam(val string, seen bool) string {
	if seen {
		return "503 5.5.4 Error: multiple AUTH= options"
	}
	if val != "<>" {
		s.auth.sender = printable(val)
	}
	return ""
}

// hideAuthResponse keeps an AUTH command's initial response, a password
// in PLAIN, out of the transcript mailed to the postmaster.
func hideAuthResponse(line string) string {
	f := strings.Fields(line)
	if len(f) > 2 && strings.EqualFold(f[0], "AUTH") {
		return f[0] + " " + f[1] + " ********"
	}
	return line
}
