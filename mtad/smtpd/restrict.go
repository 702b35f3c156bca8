package smtpd

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"sqlmta/mapdrivers"
	"sqlmta/mtad/reply"
	"sqlmta/mtad/rewrite"
)

// Codes are the reply code parameters of main.cf. Zero means Postfix's
// default (reference §2).
type Codes struct {
	Reject                     int // reject_code (554)
	Defer                      int // defer_code (450)
	AccessMapReject            int // access_map_reject_code (554)
	AccessMapDefer             int // access_map_defer_code (450)
	RelayDomainsReject         int // relay_domains_reject_code (554)
	NonFQDNReject              int // non_fqdn_reject_code (504)
	InvalidHostnameReject      int // invalid_hostname_reject_code (501)
	UnknownAddressReject       int // unknown_address_reject_code (450)
	UnknownClientReject        int // unknown_client_reject_code (450)
	UnknownHostnameReject      int // unknown_hostname_reject_code (450)
	MapsRBLReject              int // maps_rbl_reject_code (554)
	MultiRecipientBounceReject int // multi_recipient_bounce_reject_code (550)
	PlaintextReject            int // plaintext_reject_code (450)
	UnknownLocalRecipient      int // unknown_local_recipient_reject_code (550)
	UnknownVirtualMailbox      int // unknown_virtual_mailbox_reject_code (550)
	UnknownRelayRecipient      int // unknown_relay_recipient_reject_code (550)
	UnknownVirtualAlias        int // unknown_virtual_alias_reject_code (550)
	UnverifiedRecipientReject  int // unverified_recipient_reject_code (450)
	UnverifiedRecipientDefer   int // unverified_recipient_defer_code (450)
	UnverifiedSenderReject     int // unverified_sender_reject_code (450)
	UnverifiedSenderDefer      int // unverified_sender_defer_code (450)
}

func (c Codes) withDefaults() Codes {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Reject, 554)
	def(&c.Defer, 450)
	def(&c.AccessMapReject, 554)
	def(&c.AccessMapDefer, 450)
	def(&c.RelayDomainsReject, 554)
	def(&c.NonFQDNReject, 504)
	def(&c.InvalidHostnameReject, 501)
	def(&c.UnknownAddressReject, 450)
	def(&c.UnknownClientReject, 450)
	def(&c.UnknownHostnameReject, 450)
	def(&c.MapsRBLReject, 554)
	def(&c.MultiRecipientBounceReject, 550)
	def(&c.PlaintextReject, 450)
	def(&c.UnknownLocalRecipient, 550)
	def(&c.UnknownVirtualMailbox, 550)
	def(&c.UnknownRelayRecipient, 550)
	def(&c.UnknownVirtualAlias, 550)
	def(&c.UnverifiedRecipientReject, 450)
	def(&c.UnverifiedRecipientDefer, 450)
	def(&c.UnverifiedSenderReject, 450)
	def(&c.UnverifiedSenderDefer, 450)
	return c
}

// Restriction names and how many arguments each takes.
var knownRestrictions = map[string]bool{
	"reject_unverified_sender": true, "reject_unverified_recipient": true,
	"permit": true, "reject": true, "defer": true,
	"defer_if_permit": true, "defer_if_reject": true, "warn_if_reject": true,
	"permit_mynetworks": true, "permit_inet_interfaces": true, "permit_sasl_authenticated": true,
	"reject_unauth_destination": true, "defer_unauth_destination": true, "permit_auth_destination": true,
	"check_relay_domains":                          true,
	"reject_invalid_helo_hostname":                 true,
	"reject_invalid_hostname":                      true,
	"reject_non_fqdn_helo_hostname":                true,
	"reject_non_fqdn_hostname":                     true,
	"permit_naked_ip_address":                      true,
	"reject_non_fqdn_sender":                       true,
	"reject_non_fqdn_recipient":                    true,
	"reject_unauth_pipelining":                     true,
	"reject_multi_recipient_bounce":                true,
	"reject_plaintext_session":                     true,
	"reject_unlisted_sender":                       true,
	"reject_unlisted_recipient":                    true,
	"check_recipient_maps":                         true,
	"permit_tls_clientcerts":                       true,
	"permit_tls_all_clientcerts":                   true,
	"reject_sender_login_mismatch":                 true,
	"reject_authenticated_sender_login_mismatch":   true,
	"reject_known_sender_login_mismatch":           true,
	"reject_unauthenticated_sender_login_mismatch": true,
}

// mapCommands take a "type:table" argument.
var mapCommands = map[string]bool{
	"check_client_access":                  true,
	"check_reverse_client_hostname_access": true,
	"check_helo_access":                    true,
	"check_etrn_access":                    true,
	"check_sender_access":                  true,
	"check_recipient_access":               true,
	"check_sasl_access":                    true,
	"check_ccert_access":                   true,
}

// defaultRelayRestrictions is smtpd_relay_restrictions at compatibility
// level ≥ 1 (reference §2).
var defaultRelayRestrictions = []string{"permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"}

// compileLists validates every list and class and opens the tables they
// name, so that a typo or a missing table stops start-up (or a reload)
// instead of answering 451 to every client.
func compileLists(cfg Config) (*compiled, error) {
	c := &compiled{Config: cfg, classes: map[string][]string{}, maps: map[string]mapdrivers.Map{},
		policies: map[string]*policyClient{}}
	for name, list := range cfg.RestrictionClasses {
		n := strings.TrimSpace(name)
		if len(list) == 0 {
			return nil, fmt.Errorf("restriction class `%s' needs a definition", n)
		}
		c.classes[n] = trimList(list)
	}
	relayList := cfg.RelayRestrictions
	if relayList == nil {
		relayList = defaultRelayRestrictions
	}
	lists := []struct {
		param string
		in    []string
		out   *[]string
	}{
		{"smtpd_client_restrictions", cfg.ClientRestrictions, &c.client},
		{"smtpd_helo_restrictions", cfg.HeloRestrictions, &c.helo},
		{"smtpd_sender_restrictions", cfg.SenderRestrictions, &c.sender},
		{"smtpd_relay_restrictions", relayList, &c.relay},
		{"smtpd_recipient_restrictions", cfg.RecipientRestrictions, &c.rcpt},
		{"smtpd_data_restrictions", cfg.DataRestrictions, &c.data},
		{"smtpd_end_of_data_restrictions", cfg.EndOfDataRestrictions, &c.eod},
		{"smtpd_etrn_restrictions", cfg.EtrnRestrictions, &c.etrn},
	}
	for _, l := range lists {
		*l.out = trimList(l.in)
		if err := c.validate(l.param, *l.out); err != nil {
			return nil, err
		}
	}
	for name, list := range c.classes {
		if err := c.validate(name, list); err != nil {
			return nil, err
		}
	}
	if err := checkWorking(c.relay, c.rcpt, c.classes); err != nil {
		return nil, err
	}
	if err := c.compileDNS(); err != nil {
		return nil, err
	}
	if err := c.openSenderLoginMaps(); err != nil {
		return nil, err
	}
	if spec := c.TLS.RelayClientCerts; spec != "" {
		if err := c.openMap("relay_clientcerts", spec); err != nil {
			return nil, err
		}
		c.relayCerts = rewrite.Tables{Title: "relay_clientcerts", Maps: []mapdrivers.Map{c.maps[spec]}}
	}
	return c, nil
}

func trimList(in []string) []string {
	out := make([]string, 0, len(in))
	for _, r := range in {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// validate checks one list's names and opens its tables.
func (c *compiled) validate(param string, list []string) error {
	for i := 0; i < len(list); i++ {
		name := strings.ToLower(list[i])
		switch {
		case strings.Contains(list[i], ":"):
			// A bare table: check_<list>_access implied (Postfix's def_acl).
			if err := c.openMap(param, list[i]); err != nil {
				return err
			}
		case mapCommands[name]:
			if i+1 >= len(list) || !strings.Contains(list[i+1], ":") {
				arg := ""
				if i+1 < len(list) {
					arg = list[i+1]
				}
				return fmt.Errorf("%s: restriction %s: bad argument %q: need maptype:mapname", param, name, arg)
			}
			i++
			if err := c.openMap(param, list[i]); err != nil {
				return err
			}
		case dnsArgRestrictions[name]:
			// Its DNSBL domain follows (a missing one is only warned about
			// when the list runs, as Postfix does).
			if i+1 < len(list) {
				i++
				if err := checkRBLDomain(list[i]); err != nil {
					return fmt.Errorf("%s: %w", param, err)
				}
			}
		case name == "check_policy_service":
			if i+1 >= len(list) {
				return fmt.Errorf("%s: restriction check_policy_service: missing argument", param)
			}
			i++
			if _, ok := c.policies[list[i]]; !ok {
				p, err := parsePolicyService(list[i], c.Policy)
				if err != nil {
					return fmt.Errorf("%s: %w", param, err)
				}
				c.policies[list[i]] = p
			}
		case name == "sleep":
			if i+1 >= len(list) {
				return fmt.Errorf("%s: restriction sleep: missing argument", param)
			}
			i++
			if _, err := strconv.Atoi(list[i]); err != nil {
				return fmt.Errorf("%s: restriction sleep: bad argument %q: need a number of seconds", param, list[i])
			}
		case knownRestrictions[name]:
		case c.classes[list[i]] != nil:
		default:
			return fmt.Errorf("%s: unknown smtpd restriction: %q", param, list[i])
		}
	}
	return nil
}

func (c *compiled) openMap(param, spec string) error {
	if _, ok := c.maps[spec]; ok {
		return nil
	}
	if c.OpenMap == nil {
		return fmt.Errorf("%s: table %s: no map opener configured", param, spec)
	}
	m, err := c.OpenMap(context.Background(), spec)
	if err != nil {
		return fmt.Errorf("%s: %w", param, err)
	}
	c.maps[spec] = m
	return nil
}

// checkWorking is Postfix's start-up check (smtpd_check_init): without one
// of these, an open relay is one typo away. Classes count, as in Postfix's
// has_required; a name after warn_if_reject does not.
func checkWorking(relay, rcpt []string, classes map[string][]string) error {
	required := []string{"reject_unauth_destination", "defer_unauth_destination", "reject", "defer", "defer_if_permit", "check_relay_domains"}
	var has func(list []string, depth int) bool
	has = func(list []string, depth int) bool {
		if depth > 100 {
			return false
		}
		for i := 0; i < len(list); i++ {
			r := list[i]
			if r == "warn_if_reject" && i+1 < len(list) {
				i++
				continue
			}
			for _, q := range required {
				if strings.EqualFold(r, q) {
					return true
				}
			}
			if sub, ok := classes[r]; ok && has(sub, depth+1) {
				return true
			}
		}
		return false
	}
	if has(relay, 0) || has(rcpt, 0) {
		return nil
	}
	return fmt.Errorf("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: %s",
		"reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains")
}

// Results of a restriction, as in smtpd_check.c.
const (
	dunno  = 0
	permit = 1
	reject = 2
)

// Reply classes (smtpd_check.h SMTPD_NAME_*).
const (
	classClient    = "Client host"
	classRevClient = "Unverified Client host"
	classHelo      = "Helo command"
	classSender    = "Sender address"
	classRecipient = "Recipient address"
	classSASL      = "SASL login name"
	classCcert     = "Client certificate"
	classData      = "Data command"
	classEOD       = "End-of-data"
	classEtrn      = "Etrn command"
)

// deferState is one saved defer_if_permit / defer_if_reject reply.
type deferState struct {
	active bool
	code   int
	dsn    string
	text   string
}

// checkState is Postfix's per-session restriction state.
type checkState struct {
	recursion     int
	warnIfReject  int
	deferIfReject deferState
	deferIfPermit deferState
	// defer_if_permit carried from one protocol stage to the next.
	dipClient, dipHelo, dipSender bool
	dipSaved                      [3]deferState
	err                           *reply.Error // the last reject reply
	errClass                      errClass     // its class when given, else 0
	hangup                        bool         // reply was 421/521

	// What the restrictions see: set for the duration of a check.
	helo       string
	haveHelo   bool
	sender     string
	haveSender bool
	rcpt       string
	haveRcpt   bool
	etrn       string // the ETRN domain, during smtpd_etrn_restrictions
	haveEtrn   bool
	// The implicit and explicit unlisted-address checks run once per RCPT.
	rcptChecked, senderChecked bool
}

// actions are the access-map side effects on the mail transaction.
type actions struct {
	hold, discard    bool
	redirect, filter string
	bcc, prepend     []string
}

func (s *session) resetChecks() {
	s.chk.recursion = 0
	s.chk.warnIfReject = 0
	s.chk.deferIfReject.active = false
}

// serverError is Postfix's reject_server_error: configuration problems are
// never turned into warnings.
func (s *session) serverError() int {
	return s.rejectSoftware(451, "4.3.5", "Server configuration error")
}

func (s *session) rejectSoftware(code int, dsn, text string) int {
	return s.checkReject(errSoftware, code, dsn, text)
}

func (s *session) checkRejectf(code int, dsn, format string, args ...any) int {
	return s.checkReject(0, code, dsn, fmt.Sprintf(format, args...))
}

// checkReject is smtpd_check_reject: validate, apply defer_if_reject and
// soft_bounce, force the DSN class to the reply's, log, and reject (or only
// warn, under warn_if_reject). class is the error class Postfix gives the
// rejection, for notify_classes; 0 derives it from the status (classOf).
func (s *session) checkReject(class errClass, code int, dsn, text string) int {
	software := class == errSoftware
	warn := s.chk.warnIfReject != 0 && !software
	if code < 400 || code > 599 || !dsnValid(dsn) {
		s.logf("warning: SMTP reply code configuration error: %d %s %s", code, dsn, text)
		code, dsn, text = 450, "4.7.1", "Service unavailable"
	}
	line := fmt.Sprintf("%d %s %s", code, dsn, text)
	if len(line) > 510 {
		line = line[:510]
	}
	line = printable(line)
	if !warn && s.chk.deferIfReject.active && code/100 == 5 {
		d := s.chk.deferIfReject
		s.chk.warnIfReject = 0
		s.chk.deferIfReject.active = false
		return s.checkReject(class, d.code, d.dsn, d.text)
	}
	if s.cfg.SoftBounce && line[0] == '5' {
		line = "4" + line[1:]
	}
	// SMTP code and DSN class agree; the SMTP code wins.
	b := []byte(line)
	b[4] = b[0]
	line = string(b)
	what := "reject"
	if warn {
		what = "reject_warning"
	}
	s.logWhatsup(what, line)
	if warn {
		return dunno
	}
	s.chk.err = parseReply(line)
	s.chk.errClass = class
	s.chk.hangup = strings.HasPrefix(line, "421 ") || strings.HasPrefix(line, "521 ")
	return reject
}

// parseReply splits a "CODE X.Y.Z text" line built by checkReject.
func parseReply(line string) *reply.Error {
	var code int
	fmt.Sscanf(line[:3], "%d", &code)
	rest := line[4:]
	dsn, text, _ := strings.Cut(rest, " ")
	return &reply.Error{Code: code, Enhanced: dsn, Text: text}
}

func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

// deferIf saves the first reason for a later deferral.
func deferIf(d *deferState, code int, dsn, text string) {
	if !d.active {
		*d = deferState{active: true, code: code, dsn: dsn, text: text}
	}
}

// deferIfPermit is DEFER_IF_PERMIT with the defer_if_permit action: under
// warn_if_reject the deferral is logged as a reject_warning instead.
func (s *session) deferIfPermit(code int, dsn, text string) int {
	if s.chk.warnIfReject == 0 {
		deferIf(&s.chk.deferIfPermit, code, dsn, text)
		return dunno
	}
	return s.checkReject(0, code, dsn, text)
}

// logWhatsup is Postfix's log_whatsup: everything known about the session.
func (s *session) logWhatsup(what, text string) {
	var b strings.Builder
	id := s.queueID
	if id == "" {
		id = "NOQUEUE"
	}
	fmt.Fprintf(&b, "%s: %s: %s from %s: %s;", id, what, s.where, s.namaddr(), text)
	// Addresses as quote_822_local writes them (to=<"a b"@example.com>).
	if s.chk.haveSender {
		fmt.Fprintf(&b, " from=<%s>", rewrite.QuoteLocal(s.chk.sender))
	}
	if s.chk.haveRcpt {
		fmt.Fprintf(&b, " to=<%s>", rewrite.QuoteLocal(s.chk.rcpt))
	}
	fmt.Fprintf(&b, " proto=%s", s.protocol)
	if s.chk.haveHelo {
		fmt.Fprintf(&b, " helo=<%s>", s.chk.helo)
	}
	s.logf("%s", b.String())
}

// setContext loads what the restrictions see from the session.
func (s *session) setContext() {
	s.chk.helo, s.chk.haveHelo = s.helo, s.helo != ""
	s.chk.sender, s.chk.haveSender = s.sender, s.inTx
	s.chk.rcpt, s.chk.haveRcpt = "", false
}

// checkClient is smtpd_check_client.
func (s *session) checkClient() int {
	s.chk.deferIfPermit.active = false
	s.resetChecks()
	st := dunno
	if len(s.cfg.client) > 0 {
		st = s.generic(s.cfg.client, s.namaddr(), classClient, "check_client_access")
	}
	s.chk.dipClient = s.chk.deferIfPermit.active
	s.chk.dipSaved[0] = s.chk.deferIfPermit
	return st
}

// checkHelo is smtpd_check_helo for the HELO name in s.chk.
func (s *session) checkHelo() int {
	if !s.chk.haveHelo {
		return dunno
	}
	s.restoreDIP(s.chk.dipClient)
	s.resetChecks()
	st := dunno
	if len(s.cfg.helo) > 0 {
		st = s.generic(s.cfg.helo, s.chk.helo, classHelo, "check_helo_access")
	}
	s.chk.dipHelo = s.chk.deferIfPermit.active
	s.chk.dipSaved[1] = s.chk.deferIfPermit
	return st
}

// checkMail is smtpd_check_mail for the sender in s.chk.
func (s *session) checkMail() int {
	if !s.chk.haveSender {
		return dunno
	}
	s.restoreDIP(s.chk.dipClient || s.chk.dipHelo)
	s.resetChecks()
	st := dunno
	if len(s.cfg.sender) > 0 {
		st = s.generic(s.cfg.sender, s.chk.sender, classSender, "check_sender_access")
	}
	s.chk.dipSender = s.chk.deferIfPermit.active
	s.chk.dipSaved[2] = s.chk.deferIfPermit
	return st
}

// restoreDIP sets the defer_if_permit flag to what earlier stages left; the
// saved reason is the first stage's that raised it.
func (s *session) restoreDIP(active bool) {
	s.chk.deferIfPermit.active = false
	if !active {
		return
	}
	for _, d := range s.chk.dipSaved {
		if d.active {
			s.chk.deferIfPermit = d
			return
		}
	}
}

// checkRcpt is smtpd_check_rcpt: the delayed client, helo and sender
// restrictions, then smtpd_relay_restrictions and
// smtpd_recipient_restrictions. It logs and returns the reply to send, or
// nil to accept.
func (s *session) checkRcpt(addr string) *reply.Error {
	// RFC 5321 §4.5.1: "postmaster" without a domain is always accepted.
	if strings.EqualFold(addr, "postmaster") {
		return nil
	}
	s.setContext()
	defer s.clearContext()
	s.chk.rcpt, s.chk.haveRcpt = addr, true
	if !s.cfg.NoDelayReject {
		if s.checkClient() == reject || s.checkHelo() == reject || s.checkMail() == reject {
			return s.chk.err
		}
	}
	s.restoreDIP(s.chk.dipSender)
	s.resetChecks()
	st := dunno
	if len(s.cfg.relay) > 0 {
		st = s.generic(s.cfg.relay, addr, classRecipient, "check_recipient_access")
	}
	if st != reject && !s.discard() && len(s.cfg.rcpt) > 0 {
		s.chk.recursion, s.chk.warnIfReject = 0, 0
		st = s.generic(s.cfg.rcpt, addr, classRecipient, "check_recipient_access")
	}
	if st != reject && s.chk.deferIfPermit.active {
		d := s.chk.deferIfPermit
		st = s.checkReject(0, d.code, d.dsn, d.text)
	}
	// The implicit checks after every list: unlisted senders (when asked
	// for) and unlisted recipients, unless DISCARD made them moot.
	if st != reject && !s.discard() && s.cfg.RejectUnlistedSender && s.chk.sender != "" {
		s.resetChecks()
		st = s.checkUnlisted(s.chk.sender, true)
	}
	if st != reject && !s.discard() && s.cfg.RejectUnlistedRecipient {
		s.resetChecks()
		st = s.checkUnlisted(addr, false)
	}
	if st == reject {
		return s.chk.err
	}
	return nil
}

func (s *session) clearContext() {
	s.chk.rcpt, s.chk.haveRcpt = "", false
	s.chk.rcptChecked, s.chk.senderChecked = false, false
}

// checkData is smtpd_check_data (eod=false) or smtpd_check_eod.
func (s *session) checkData(eod bool) *reply.Error {
	list, name, class := s.cfg.data, "DATA", classData
	if eod {
		list, name, class = s.cfg.eod, "END-OF-DATA", classEOD
	}
	s.setContext()
	// With several recipients none is logged: the check is about them all.
	if len(s.rcpts) == 1 {
		s.chk.rcpt, s.chk.haveRcpt = s.rcpts[0].Address, true
	}
	s.chk.deferIfPermit.active = false
	s.resetChecks()
	return s.runStage(list, name, class, "")
}

// runStage runs a stage's list and then, as every smtpd_check_* ends, turns
// a pending defer_if_permit into the reply. It returns the reply to send
// (already logged), or nil to go on.
func (s *session) runStage(list []string, name, class, defACL string) *reply.Error {
	st := dunno
	if len(list) > 0 {
		st = s.generic(list, name, class, defACL)
	}
	if st != reject && s.chk.deferIfPermit.active {
		d := s.chk.deferIfPermit
		st = s.checkReject(0, d.code, d.dsn, d.text)
	}
	if st == reject {
		return s.chk.err
	}
	return nil
}

// checkEtrn is smtpd_check_etrn: the delayed client and helo
// restrictions, then smtpd_etrn_restrictions for the domain. It logs and
// returns the reply to send, or nil to go on.
func (s *session) checkEtrn(domain string) *reply.Error {
	s.setContext()
	s.chk.etrn, s.chk.haveEtrn = domain, true
	defer func() { s.chk.etrn, s.chk.haveEtrn = "", false }()
	if !s.cfg.NoDelayReject {
		if s.checkClient() == reject || s.checkHelo() == reject {
			return s.chk.err
		}
	}
	// The client may skip HELO: either stage's defer_if_permit counts.
	s.restoreDIP(s.chk.dipClient || s.chk.dipHelo)
	s.resetChecks()
	return s.runStage(s.cfg.etrn, domain, classEtrn, "check_etrn_access")
}

// checkConnect runs smtpd_client_restrictions at connect time
// (smtpd_delay_reject = no).
func (s *session) checkConnect() *reply.Error {
	s.setContext()
	if s.checkClient() == reject {
		return s.chk.err
	}
	return nil
}

// checkHeloCmd runs smtpd_helo_restrictions for a HELO/EHLO argument
// (smtpd_delay_reject = no).
func (s *session) checkHeloCmd(name string) *reply.Error {
	s.setContext()
	s.chk.helo, s.chk.haveHelo = name, true
	if s.checkHelo() == reject {
		return s.chk.err
	}
	return nil
}

// checkMailCmd runs smtpd_sender_restrictions at MAIL FROM
// (smtpd_delay_reject = no).
func (s *session) checkMailCmd(sender string) *reply.Error {
	s.setContext()
	s.chk.sender, s.chk.haveSender = sender, true
	if s.checkMail() == reject {
		return s.chk.err
	}
	return nil
}

func (s *session) discard() bool { return s.act.discard }

// generic is Postfix's generic_checks: scan one list; the first PERMIT,
// REJECT or DEFER ends it.
func (s *session) generic(list []string, replyName, replyClass, defACL string) (status int) {
	saved := s.chk.recursion
	s.chk.recursion++
	defer func() {
		s.chk.recursion = saved
		if r := recover(); r != nil {
			if _, ok := r.(dictRetryPanic); !ok {
				panic(r)
			}
			status = reject // s.chk.err holds the 451
		}
	}()
	status = dunno
	for i := 0; i < len(list); i++ {
		if s.act.discard {
			break
		}
		name := list[i]
		lname := strings.ToLower(name)
		if lname == "warn_if_reject" {
			if s.chk.warnIfReject == 0 {
				s.chk.warnIfReject = s.chk.recursion
			}
			continue
		}
		table := ""
		implicit := strings.Contains(name, ":")
		if implicit {
			if defACL == "" {
				s.logf("warning: specify one of (check_client_access, check_helo_access, check_sender_access, check_recipient_access, check_etrn_access) before %s restriction \"%s\"", replyClass, name)
				return s.serverError()
			}
			table, lname = name, defACL
		} else if mapCommands[lname] {
			if i+1 >= len(list) || !strings.Contains(list[i+1], ":") {
				s.logf("warning: restriction %s: bad argument: need maptype:mapname", lname)
				return s.serverError()
			}
			i++
			table = list[i]
		} else if dnsArgRestrictions[lname] && i+1 < len(list) {
			i++
			table = list[i] // the DNSBL domain
		} else if lname == "check_policy_service" || lname == "sleep" {
			if i+1 >= len(list) {
				s.logf("warning: restriction %s: missing argument", lname)
				return s.serverError()
			}
			i++
			table = list[i] // the server, or the seconds
		}
		status = s.restriction(lname, name, table, list[i+1:], replyName, replyClass)
		if s.chk.warnIfReject >= s.chk.recursion {
			s.chk.warnIfReject = 0
		}
		if status != dunno {
			break
		}
		if s.chk.deferIfPermit.active && s.chk.deferIfReject.active {
			break
		}
	}
	return status
}

// restriction evaluates one restriction; rest is what follows it in the
// list (for Postfix's "is ignored" warnings).
func (s *session) restriction(lname, name, table string, rest []string, replyName, replyClass string) int {
	ignored := func() {
		if len(rest) > 0 && s.chk.warnIfReject == 0 {
			s.logf("warning: restriction `%s' after `%s' is ignored", rest[0], lname)
		}
	}
	c := &s.cfg.Codes
	switch lname {
	case "permit":
		ignored()
		return permit
	case "reject":
		st := s.checkRejectf(c.Reject, "5.7.1", "<%s>: %s rejected: Access denied", replyName, replyClass)
		ignored()
		return st
	case "defer":
		st := s.checkRejectf(c.Defer, "4.3.2", "<%s>: %s rejected: Try again later", replyName, replyClass)
		ignored()
		return st
	case "defer_if_permit":
		return s.deferIfPermit(c.Defer, "4.7.0", fmt.Sprintf("<%s>: %s rejected: defer_if_permit requested", replyName, replyClass))
	case "defer_if_reject":
		deferIf(&s.chk.deferIfReject, c.Defer, "4.7.0", fmt.Sprintf("<%s>: %s rejected: defer_if_reject requested", replyName, replyClass))
		return dunno
	case "reject_unauth_pipelining":
		// Input already waiting is pipelining; it is improper unless the
		// client said EHLO, and always before the DATA reply.
		if s.br.Buffered() > 0 && (s.protocol != "ESMTP" || s.where == "DATA") {
			return s.checkReject(errProtocol, 503, "5.5.0", fmt.Sprintf("<%s>: %s rejected: Improper use of SMTP command pipelining", replyName, replyClass))
		}
		return dunno
	case "check_policy_service":
		return s.checkPolicy(table, replyName, replyClass)
	case "reject_unverified_recipient":
		if s.chk.haveRcpt {
			return s.rejectUnverified(s.chk.rcpt, classRecipient)
		}
		return dunno
	case "reject_unverified_sender":
		if s.chk.haveSender && s.chk.sender != "" {
			return s.rejectUnverified(s.chk.sender, classSender)
		}
		return dunno
	case "sleep":
		// A pause, then the next restriction: with smtpd_delay_reject=no
		// in the client restrictions it stops clients that talk before
		// their turn (reject_unauth_pipelining after it).
		n, _ := strconv.Atoi(table)
		_ = s.bw.Flush()
		time.Sleep(time.Duration(n) * time.Second)
		return dunno
	case "reject_plaintext_session":
		if s.tls != nil {
			return dunno
		}
		return s.checkReject(errPolicy, c.PlaintextReject, "4.7.1", "Session encryption is required")
	case "permit_mynetworks":
		if s.cfg.MyNetworks.Contains(s.ip) {
			return permit
		}
		return dunno
	case "permit_inet_interfaces":
		if s.isOwnAddr(s.ip) {
			return permit
		}
		return dunno
	case "check_client_access":
		st, _ := s.checkNamAddrAccess(table, s.name, s.addr, s.namaddr(), classClient)
		return st
	case "check_reverse_client_hostname_access":
		st, _ := s.checkNamAddrAccess(table, s.reverseName, s.addr, s.reverseName, classRevClient)
		return st
	case "check_helo_access":
		if s.chk.haveHelo {
			st, _ := s.checkDomainAccess(table, s.chk.helo, true, s.chk.helo, classHelo)
			return st
		}
		return dunno
	case "check_etrn_access":
		if s.chk.haveEtrn {
			st, _ := s.checkDomainAccess(table, s.chk.etrn, true, s.chk.etrn, classEtrn)
			return st
		}
		return dunno
	case "check_sender_access":
		if s.chk.haveSender {
			if s.chk.sender == "" {
				st, _ := s.checkAccess(table, s.cfg.NullAccessKey, true, s.chk.sender, classSender)
				return st
			}
			return s.checkMailAccess(table, s.chk.sender, s.chk.sender, classSender)
		}
		return dunno
	case "check_recipient_access":
		if s.chk.haveRcpt {
			return s.checkMailAccess(table, s.chk.rcpt, s.chk.rcpt, classRecipient)
		}
		return dunno
	case "reject_invalid_helo_hostname", "reject_invalid_hostname":
		if !s.chk.haveHelo {
			return dunno
		}
		h := s.chk.helo
		if h[0] == '[' {
			return s.rejectInvalidHostaddr(h)
		}
		t := truncateDot(h)
		if !rewrite.ValidHostname(t) && !rewrite.ValidHostaddr(t) {
			return s.checkRejectf(c.InvalidHostnameReject, "5.5.2", "<%s>: %s rejected: Invalid name", h, classHelo)
		}
		return dunno
	case "reject_non_fqdn_helo_hostname", "reject_non_fqdn_hostname":
		if !s.chk.haveHelo {
			return dunno
		}
		h := s.chk.helo
		if h[0] == '[' {
			return s.rejectInvalidHostaddr(h)
		}
		t := truncateDot(h)
		if !rewrite.ValidHostname(t) || !strings.Contains(t, ".") {
			return s.checkRejectf(c.NonFQDNReject, "5.5.2", "<%s>: %s rejected: need fully-qualified hostname", h, classHelo)
		}
		return dunno
	case "permit_naked_ip_address":
		s.logf("warning: restriction permit_naked_ip_address is deprecated. Use permit_mynetworks or permit_sasl_authenticated instead")
		if s.chk.haveHelo && strings.Trim(s.chk.helo, "0123456789.:") == "" {
			if st := s.rejectInvalidHostaddr(s.chk.helo); st != dunno {
				return st
			}
			return permit
		}
		return dunno
	case "reject_non_fqdn_sender":
		if s.chk.haveSender && s.chk.sender != "" {
			return s.rejectNonFQDNAddress(s.chk.sender, classSender)
		}
		return dunno
	case "reject_non_fqdn_recipient":
		if s.chk.haveRcpt {
			return s.rejectNonFQDNAddress(s.chk.rcpt, classRecipient)
		}
		return dunno
	case "reject_multi_recipient_bounce":
		limit := 0
		if s.where == "DATA" || s.where == "END-OF-MESSAGE" {
			limit = 1
		}
		if s.chk.haveSender && s.chk.sender == "" && len(s.rcpts) > limit {
			return s.checkRejectf(c.MultiRecipientBounceReject, "5.5.3", "<%s>: %s rejected: Multi-recipient bounce", replyName, replyClass)
		}
		return dunno
	case "permit_auth_destination":
		if s.chk.haveRcpt && s.authDestination(s.chk.rcpt) {
			return permit
		}
		return dunno
	case "reject_unauth_destination", "defer_unauth_destination":
		if !s.chk.haveRcpt || s.authDestination(s.chk.rcpt) {
			return dunno
		}
		code, dsn := c.RelayDomainsReject, "5.7.1"
		if lname == "defer_unauth_destination" {
			code, dsn = c.RelayDomainsReject-100, "4.7.1"
		}
		return s.checkRejectf(code, dsn, "<%s>: Relay access denied", s.chk.rcpt)
	case "reject_unlisted_recipient", "check_recipient_maps":
		if s.chk.haveRcpt {
			return s.checkUnlisted(s.chk.rcpt, false)
		}
		return dunno
	case "reject_unlisted_sender":
		if s.chk.haveSender {
			return s.checkUnlisted(s.chk.sender, true)
		}
		return dunno
	case "check_relay_domains":
		s.srv.warnOnce("check_relay_domains", func() {
			s.logf("warning: support for restriction \"check_relay_domains\" will be removed from Postfix; use \"reject_unauth_destination\" instead")
		})
		st := dunno
		if s.chk.haveRcpt {
			switch {
			case s.cfg.RelayDomains != nil && s.cfg.RelayDomains(s.name):
				st = permit
			case s.authDestination(s.chk.rcpt):
				st = permit
			default:
				st = s.checkRejectf(c.RelayDomainsReject, "5.7.1", "<%s>: %s rejected: Relay access denied", s.chk.rcpt, classRecipient)
			}
		}
		ignored()
		return st
	}
	if st, ok := s.saslRestriction(lname, table, replyName, replyClass); ok {
		return st
	}
	if st, ok := s.ccertRestriction(lname, table); ok {
		return st
	}
	if dnsRestrictions[lname] || dnsArgRestrictions[lname] || dnsMapCommands[lname] != 0 {
		return s.dnsRestriction(lname, table, replyName, replyClass)
	}
	if sub, ok := s.cfg.classes[name]; ok {
		return s.generic(sub, replyName, replyClass, s.defACLFor(replyClass))
	}
	s.logf("warning: unknown smtpd restriction: \"%s\"", name)
	return s.serverError()
}

// defACLFor gives the implied access check inside a restriction class,
// which inherits the list's (Postfix passes def_acl down).
func (s *session) defACLFor(class string) string {
	switch class {
	case classClient:
		return "check_client_access"
	case classHelo:
		return "check_helo_access"
	case classSender:
		return "check_sender_access"
	case classRecipient:
		return "check_recipient_access"
	case classEtrn:
		return "check_etrn_access"
	}
	return ""
}

func (s *session) rejectInvalidHostaddr(h string) int {
	t := h
	if len(t) > 2 && t[0] == '[' && t[len(t)-1] == ']' {
		t = t[1 : len(t)-1]
	}
	if !rewrite.ValidMailhostAddr(t) {
		return s.checkRejectf(s.cfg.Codes.InvalidHostnameReject, "5.5.2", "<%s>: %s rejected: invalid ip address", h, classHelo)
	}
	return dunno
}

func (s *session) rejectNonFQDNAddress(addr, class string) int {
	domain := ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		domain = addr[at+1:]
	}
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		return dunno
	}
	d := truncateDot(domain)
	if d == "" || !rewrite.ValidHostname(d) || !strings.Contains(d, ".") {
		return s.checkRejectf(s.cfg.Codes.NonFQDNReject, "4.5.2", "<%s>: %s rejected: need fully-qualified address", addr, class)
	}
	return dunno
}

// isOwnAddr is own_inet_addr: one of this host's interface addresses.
func (s *session) isOwnAddr(ip netip.Addr) bool {
	if s.cfg.InetInterfaces != nil {
		return s.cfg.InetInterfaces(ip)
	}
	return rewrite.InterfaceAddr(ip)
}

// authDestination is Postfix's permit_auth_destination test: the recipient
// is local (no domain) or in a domain we are final destination or relay for,
// and it carries no sender-specified routing.
func (s *session) authDestination(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	local := addr
	if at >= 0 {
		local = addr[:at]
	}
	// a@b@c, a%b@c and b!a are sender-routed: they would leave via another
	// host, so they are never authorized by the domain test.
	if !s.cfg.AllowUntrustedRouting && strings.ContainsAny(local, "@%!") {
		return false
	}
	if at < 0 {
		return true
	}
	domain := strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if domain == "" {
		return true
	}
	if s.cfg.AuthDestination == nil {
		return false
	}
	ok, err := s.cfg.AuthDestination(context.Background(), domain)
	if err != nil {
		s.dictRetry(addr, err)
	}
	return ok
}

// dictRetryPanic unwinds a restriction list to generic, as Postfix's
// reject_dict_retry longjmps out of smtpd_check: a table that cannot be
// read ends the whole check with a 4xx.
type dictRetryPanic struct{}

// dictRetry rejects with "451 4.3.0 <addr>: Temporary lookup failure" and
// stops the check; under warn_if_reject it only logs, and the check goes on.
func (s *session) dictRetry(addr string, err error) {
	s.logf("warning: %s: address resolver failure for %s: %v", s.queueIDOr(), addr, err)
	if s.checkRejectf(451, "4.3.0", "<%s>: Temporary lookup failure", addr) == reject {
		panic(dictRetryPanic{})
	}
}

// truncateDot drops one trailing dot, but not from "..".
func truncateDot(name string) string {
	if n := len(name); n > 1 && name[n-1] == '.' && name[n-2] != '.' {
		return name[:n-1]
	}
	return name
}

// warnOnce logs a start-up style warning once per server, as Postfix's
// "static int once" does per process.
func (srv *Server) warnOnce(key string, fn func()) {
	if _, loaded := srv.warned.LoadOrStore(key, true); !loaded {
		fn()
	}
}
