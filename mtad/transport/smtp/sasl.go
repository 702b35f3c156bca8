package smtp

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/sasl"
)

// SASLConfig is the client side of SMTP AUTH: Postfix's smtp_sasl_*
// parameters. The zero value sends no AUTH.
type SASLConfig struct {
	// Enable is smtp_sasl_auth_enable.
	Enable bool
	// Passwords is smtp_sasl_password_maps; AUTH needs it.
	Passwords Passwords
	// SenderDependent is smtp_sender_dependent_authentication: the
	// envelope sender is looked up before the server's name.
	SenderDependent bool
	// SecurityOptions is smtp_sasl_security_options. Nil means Postfix's
	// default, noplaintext and noanonymous, under which PLAIN and LOGIN
	// are not used; an empty, non-nil list allows every mechanism.
	SecurityOptions []string
	// TLSSecurityOptions is smtp_sasl_tls_security_options, for sessions
	// that run TLS; nil means SecurityOptions (Postfix's default).
	TLSSecurityOptions []string
	// MechanismFilter is smtp_sasl_mechanism_filter: the server's
	// mechanisms that may be used, as names, "!name" exclusions and
	// "static:…" for everything else, first match wins; empty: all.
	MechanismFilter []string
	// HardBounce is smtp_sasl_auth_soft_bounce = no: a 5xx reply to AUTH
	// bounces the mail. By default it is deferred, since a wrong password
	// is the admin's mistake, not the sender's.
	HardBounce bool
}

// Passwords finds the client's credentials, "username:password", in
// smtp_sasl_password_maps. Keys of fixed-string tables are lowercased.
type Passwords interface {
	// Sender looks up an envelope sender as Postfix's mail_addr_find
	// does: the address, the address without its extension, the
	// localpart for a local domain, then "@domain".
	Sender(ctx context.Context, addr string) (value string, found bool, err error)
	// Find looks up one key as given: a host name or a nexthop as
	// written ("[mail.isp.example]:587", "isp.example").
	Find(ctx context.Context, key string) (value string, found bool, err error)
}

// passwordMapsTitle names the table in warnings, as Postfix does.
const passwordMapsTitle = "smtp_sasl_password_maps"

// TablePasswords is Passwords over lookup tables ("type:name" specs),
// opened through Open at each lookup so that the opener's cache and
// reloads apply.
type TablePasswords struct {
	Specs []string
	Open  func(ctx context.Context, spec string) (mapdrivers.Map, error)
	// Delimiter is recipient_delimiter, for the sender key without its
	// extension.
	Delimiter string
	// LocalDomain says whether a sender domain also allows the bare
	// localpart as a key ($myorigin and local domains); may be nil.
	LocalDomain func(domain string) bool
}

func (tp *TablePasswords) tables(ctx context.Context) (*rewrite.Tables, error) {
	tabs := &rewrite.Tables{Title: passwordMapsTitle}
	for _, spec := range tp.Specs {
		m, err := tp.Open(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", passwordMapsTitle, err)
		}
		tabs.Maps = append(tabs.Maps, m)
	}
	return tabs, nil
}

// Sender implements Passwords.
func (tp *TablePasswords) Sender(ctx context.Context, addr string) (string, bool, error) {
	tabs, err := tp.tables(ctx)
	if err != nil {
		return "", false, err
	}
	v, _, found, err := rewrite.FindAddr(ctx, tabs, addr, tp.Delimiter, tp.LocalDomain)
	return v, found, err
}

// Find implements Passwords.
func (tp *TablePasswords) Find(ctx context.Context, key string) (string, bool, error) {
	tabs, err := tp.tables(ctx)
	if err != nil {
		return "", false, err
	}
	return tabs.Find(ctx, key, false)
}

// CheckSASLSecurityOptions reports a word that smtp_sasl_security_options
// does not know: Postfix refuses to run with one, and so should we.
func CheckSASLSecurityOptions(opts []string) error {
	_, err := parseSecurity(opts)
	return err
}

// Security properties of a mechanism, as Cyrus SASL describes them; an
// option asks for a property the mechanism must have.
const (
	secNoPlaintext = 1 << iota // no password in the clear
	secNoActive
	secNoDictionary
	secForwardSecrecy
	secNoAnonymous
	secMutualAuth
)

var secOptions = map[string]int{
	"noplaintext":     secNoPlaintext,
	"noactive":        secNoActive,
	"nodictionary":    secNoDictionary,
	"forward_secrecy": secForwardSecrecy,
	"noanonymous":     secNoAnonymous,
	"mutual_auth":     secMutualAuth,
}

var defaultSecurity = secNoPlaintext | secNoAnonymous

func parseSecurity(opts []string) (int, error) {
	if opts == nil {
		return defaultSecurity, nil
	}
	flags := 0
	for _, o := range opts {
		f, ok := secOptions[o]
		if !ok {
			return 0, fmt.Errorf("unknown SASL security option %q (known: noplaintext, noactive, nodictionary, forward_secrecy, noanonymous, mutual_auth)", o)
		}
		flags |= f
	}
	return flags, nil
}

// credentials are what a session authenticates with; the zero value is
// "none".
type credentials struct{ user, pass string }

func parseCredentials(v string) credentials {
	user, pass, _ := strings.Cut(v, ":")
	return credentials{user, pass}
}

// mechanism is one SASL client mechanism. They are written here rather
// than taken from go-sasl, which has no CRAM-MD5 and whose LOGIN sends the
// user name with the AUTH command (some servers refuse that); each is a
// few lines. start returns the initial response (nil: none) and the
// function that answers the server's challenges.
type mechanism struct {
	name  string
	props int // the security properties it has
	start func(c credentials) (ir []byte, next func(challenge []byte) ([]byte, error))
}

// errBadProtocol is a challenge the mechanism cannot answer; the text is
// the one Cyrus SASL gives Postfix for it.
var errBadProtocol = errors.New("bad protocol / cancel")

// mechanisms in order of preference, the order in which Cyrus SASL picks
// them for Postfix: CRAM-MD5 keeps the password off the wire.
var mechanisms = []mechanism{
	{name: "CRAM-MD5", props: secNoPlaintext | secNoAnonymous, start: cramMD5},
	{name: "PLAIN", props: secNoAnonymous, start: plain},
	{name: "LOGIN", props: secNoAnonymous, start: login},
}

// plain is RFC 4616 with an empty authorization identity, as Postfix sends
// it (smtp_sasl's authzid is off by default).
func plain(c credentials) ([]byte, func([]byte) ([]byte, error)) {
	return []byte("\x00" + c.user + "\x00" + c.pass), func([]byte) ([]byte, error) { return nil, errBadProtocol }
}

// login answers the "Username:" and "Password:" prompts, whatever their
// wording.
func login(c credentials) ([]byte, func([]byte) ([]byte, error)) {
	step := 0
	return nil, func([]byte) ([]byte, error) {
		step++
		switch step {
		case 1:
			return []byte(c.user), nil
		case 2:
			return []byte(c.pass), nil
		}
		return nil, errBadProtocol
	}
}

// cramMD5 is RFC 2195: the user name and the hex HMAC-MD5 of the challenge
// keyed with the password. MD5 is what the mechanism is defined with.
func cramMD5(c credentials) ([]byte, func([]byte) ([]byte, error)) {
	done := false
	return nil, func(challenge []byte) ([]byte, error) {
		if done {
			return nil, errBadProtocol
		}
		done = true
		h := hmac.New(md5.New, []byte(c.pass))
		h.Write(challenge)
		return []byte(c.user + " " + hex.EncodeToString(h.Sum(nil))), nil
	}
}

// filterMechanisms applies smtp_sasl_mechanism_filter to the server's list,
// keeping the server's order: smtpd's filter, sasl.MechanismFilter, with
// an empty list meaning no filter here. The node drops the entries that
// filter cannot read, so a parse error leaves nothing to choose.
func filterMechanisms(filter, offered []string) []string {
	if len(filter) == 0 {
		return offered
	}
	f, err := sasl.ParseMechanismFilter(filter)
	if err != nil {
		return nil
	}
	return f.Apply(offered)
}

// chooseMechanism picks the first of our mechanisms that the server offers
// and the security options allow; nil when none is left.
func chooseMechanism(offered []string, security int) *mechanism {
	for i := range mechanisms {
		m := &mechanisms[i]
		if m.props&security != security {
			continue
		}
		if slices.ContainsFunc(offered, func(o string) bool { return strings.EqualFold(o, m.name) }) {
			return m
		}
	}
	return nil
}

// saslLookup finds and remembers the credentials of one delivery, per
// server host name: the lookup order is Postfix's (smtp_sasl_passwd_lookup)
// — the sender when sender-dependent authentication is on, then the
// server's host name, then the nexthop as written.
type saslLookup struct {
	cfg     *SASLConfig
	queueID string
	sender  string
	nexthop string
	hosts   map[string]credsResult
	bySend  *credsResult
}

type credsResult struct {
	creds credentials
	found bool
	err   error
}

func (t *Transport) newSASLLookup(queueID, sender, nexthop string) *saslLookup {
	if !t.cfg.SASL.Enable || t.cfg.SASL.Passwords == nil {
		return nil
	}
	return &saslLookup{cfg: &t.cfg.SASL, queueID: queueID, sender: sender, nexthop: nexthop, hosts: map[string]credsResult{}}
}

// creds returns the credentials for mail to host; found is false when the
// tables have none (the mail then goes without AUTH).
func (l *saslLookup) creds(ctx context.Context, host string) (credentials, bool, error) {
	if l.cfg.SenderDependent && l.sender != "" {
		if l.bySend == nil {
			v, found, err := l.cfg.Passwords.Sender(ctx, l.sender)
			l.bySend = &credsResult{parseCredentials(v), found, err}
		}
		if r := l.bySend; r.found || r.err != nil {
			return r.creds, r.found, r.err
		}
	}
	key := strings.ToLower(host)
	r, ok := l.hosts[key]
	if !ok {
		for _, k := range []string{host, l.nexthop} {
			v, found, err := l.cfg.Passwords.Find(ctx, k)
			r = credsResult{parseCredentials(v), found, err}
			if found || err != nil {
				break
			}
		}
		l.hosts[key] = r
	}
	return r.creds, r.found, r.err
}

// reusable says whether a cached session may carry this delivery: a session
// with a server that offered AUTH is only reused for mail that would
// authenticate as it did (or, like it, not at all). A lookup error says no:
// the fresh connection then meets the error and defers the mail.
func (l *saslLookup) reusable(ctx context.Context, s *session) bool {
	if !s.authOffered {
		return true
	}
	if l == nil {
		return s.creds == credentials{}
	}
	c, _, err := l.creds(ctx, s.host)
	return err == nil && c == s.creds
}

// authenticate runs AUTH on a new session after EHLO (and STARTTLS), as
// Postfix's smtp_sasl_helo_login does: only when the server offers AUTH and
// the tables have credentials for it; otherwise the mail goes without. ok
// is false when the session must end with the outcome.
func (t *Transport) authenticate(ctx context.Context, s *session, l *saslLookup) (o outcome, ok bool) {
	if l == nil {
		return outcome{}, true
	}
	offered, param := s.c.Extension("AUTH")
	if !offered {
		return outcome{}, true
	}
	s.authOffered = true
	words := strings.Fields(param)
	mechs := filterMechanisms(l.cfg.MechanismFilter, words)
	if len(mechs) == 0 {
		if len(words) == 0 {
			t.warnf("%s offered null AUTH mechanism list", s.namaddrport)
		} else {
			t.warnf("%s offered no supported AUTH mechanisms: '%s'", s.namaddrport, strings.Join(words, " "))
		}
	}
	creds, found, err := l.creds(ctx, s.host)
	if err != nil {
		t.warnf("%s: %s lookup error", l.queueID, passwordMapsTitle)
		s.quit()
		return outcome{"4.3.0", "local data error while talking to " + s.namaddr}, false
	}
	if !found {
		return outcome{}, true
	}
	fail := func(o outcome) (outcome, bool) {
		s.quit()
		return o, false
	}
	if len(mechs) == 0 {
		return fail(outcome{"4.7.0", fmt.Sprintf("SASL authentication failed: server %s offered no compatible authentication mechanisms for this type of connection security", s.namaddr)})
	}
	opts := l.cfg.SecurityOptions
	if s.tls && l.cfg.TLSSecurityOptions != nil {
		opts = l.cfg.TLSSecurityOptions
	}
	security, _ := parseSecurity(opts) // checked when the configuration was read
	m := chooseMechanism(mechs, security)
	if m == nil {
		// Cyrus SASL's own words, which Postfix passes on.
		t.warnf("SASL authentication failure: No worthy mechs found")
		return fail(outcome{"4.7.0", fmt.Sprintf("SASL authentication failed; cannot authenticate to server %s: no mechanism available", s.namaddr)})
	}
	return t.authExchange(s, m, creds)
}

// authExchange sends AUTH and answers the server's 334 challenges until it
// says yes or no. An I/O failure is reported the way Postfix reports it:
// AUTH is part of its EHLO handshake.
func (t *Transport) authExchange(s *session, m *mechanism, creds credentials) (outcome, bool) {
	p := s.p
	ioFail := func(err error) (outcome, bool) {
		s.close()
		if isTimeout(err) {
			return outcome{"4.4.2", fmt.Sprintf("conversation with %s timed out while performing the EHLO handshake", s.namaddr)}, false
		}
		return outcome{"4.4.2", fmt.Sprintf("lost connection with %s while performing the EHLO handshake", s.namaddr)}, false
	}
	timeout := t.cfg.HeloTimeout
	ir, next := m.start(creds)
	cmd := "AUTH " + m.name
	if ir != nil {
		cmd += " " + base64.StdEncoding.EncodeToString(ir)
	}
	if err := p.send(cmd); err != nil {
		return ioFail(err)
	}
	for {
		re, err := p.reply(timeout)
		if err != nil {
			return ioFail(err)
		}
		if re.Code/100 == 2 {
			s.creds = creds
			return outcome{}, true
		}
		if re.Code/100 != 3 {
			dsn := replyDSN(re.Code, re.EnhancedCode)
			if dsn[0] == '5' && !t.cfg.SASL.HardBounce {
				dsn = "4" + dsn[1:] // smtp_sasl_auth_soft_bounce
			} else if dsn[0] != '4' && dsn[0] != '5' {
				dsn = "4.7.0"
			}
			s.quit()
			return outcome{dsn, fmt.Sprintf("SASL authentication failed; server %s said: %s",
				s.namaddr, formatReply(re.Code, re.EnhancedCode, re.Message))}, false
		}
		// The challenge is the raw text after the code: never an
		// enhanced status code.
		challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p.last))
		var resp []byte
		if err == nil {
			resp, err = next(challenge)
		} else {
			err = errBadProtocol
		}
		if err != nil {
			// RFC 4954's "*" ends the exchange before we leave.
			if _, e := p.cmd(2*time.Second, "*"); e == nil {
				s.quit()
			} else {
				s.close()
			}
			return outcome{"4.7.0", fmt.Sprintf("SASL authentication failed; cannot authenticate to server %s: %s", s.namaddr, err)}, false
		}
		if err := p.send(base64.StdEncoding.EncodeToString(resp)); err != nil {
			return ioFail(err)
		}
	}
}
