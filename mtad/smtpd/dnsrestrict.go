package smtpd

import (
	"fmt"
	"sort"
	"strings"

	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/rewrite"
)

// The DNS restrictions of reference §4, after smtpd_check.c.

// dnsRestrictions take no argument.
var dnsRestrictions = map[string]bool{
	"reject_unknown_client_hostname":         true,
	"reject_unknown_client":                  true,
	"reject_unknown_reverse_client_hostname": true,
	"reject_unknown_helo_hostname":           true,
	"reject_unknown_hostname":                true,
	"reject_unknown_sender_domain":           true,
	"reject_unknown_recipient_domain":        true,
	"reject_unknown_address":                 true,
	"reject_maps_rbl":                        true,
	"permit_mx_backup":                       true,
}

// dnsArgRestrictions take a DNSBL domain, optionally with "=pattern".
var dnsArgRestrictions = map[string]bool{
	"reject_rbl_client":           true,
	"reject_rbl":                  true,
	"permit_dnswl_client":         true,
	"reject_rhsbl_client":         true,
	"permit_rhswl_client":         true,
	"reject_rhsbl_reverse_client": true,
	"reject_rhsbl_helo":           true,
	"reject_rhsbl_sender":         true,
	"reject_rhsbl_recipient":      true,
}

// dnsMapCommands take a table: the names, then addresses, of the client's,
// HELO name's, sender's or recipient's A, MX or NS hosts are looked up.
var dnsMapCommands = map[string]uint16{}

func init() {
	for _, who := range []string{"client", "reverse_client_hostname", "helo", "sender", "recipient"} {
		for _, t := range []struct {
			n string
			t uint16
		}{{"a", typeA}, {"mx", typeMX}, {"ns", typeNS}} {
			name := "check_" + who + "_" + t.n + "_access"
			dnsMapCommands[name] = t.t
			// Their table argument is parsed and opened like any
			// check_*_access table's.
			mapCommands[name] = true
		}
	}
	for n := range dnsRestrictions {
		knownRestrictions[n] = true
	}
}

const (
	typeA  uint16 = 1
	typeNS uint16 = 2
	typeMX uint16 = 15
)

// dnsRestriction evaluates one DNS restriction; arg is its table or DNSBL
// domain ("" when the list ended early).
func (s *session) dnsRestriction(lname, arg, replyName, replyClass string) int {
	if t, ok := dnsMapCommands[lname]; ok {
		return s.checkServerRestriction(lname, arg, t)
	}
	if dnsArgRestrictions[lname] && arg == "" {
		s.logf("warning: restriction %s requires domain name argument", lname)
		return dunno
	}
	c := &s.cfg.Codes
	switch lname {
	case "reject_unknown_client_hostname", "reject_unknown_client":
		if st := s.dns.nameStatus; st != peerOK {
			code := 450
			if st >= peerPerm {
				code = c.UnknownClientReject
			}
			return s.checkRejectf(code, "4.7.25", "Client host rejected: cannot find your hostname, [%s]", s.addr)
		}
	case "reject_unknown_reverse_client_hostname":
		if st := s.dns.reverseStatus; st != peerOK {
			code := 450
			if st == peerPerm {
				code = c.UnknownClientReject
			}
			return s.checkRejectf(code, "4.7.1", "Client host rejected: cannot find your reverse hostname, [%s]", s.addr)
		}
	case "reject_unknown_helo_hostname", "reject_unknown_hostname":
		if !s.chk.haveHelo {
			return dunno
		}
		if s.chk.helo[0] == '[' {
			return s.rejectInvalidHostaddr(s.chk.helo)
		}
		return s.rejectUnknownHostname(s.chk.helo, s.chk.helo, classHelo)
	case "reject_unknown_sender_domain", "reject_unknown_address":
		if s.chk.haveSender && s.chk.sender != "" {
			return s.rejectUnknownAddress(s.chk.sender, s.chk.sender, classSender)
		}
	case "reject_unknown_recipient_domain":
		if s.chk.haveRcpt {
			return s.rejectUnknownAddress(s.chk.rcpt, s.chk.rcpt, classRecipient)
		}
	case "reject_rbl_client", "reject_rbl":
		return s.rejectRBLAddr(arg, s.addr, classClient)
	case "reject_maps_rbl":
		s.srv.warnOnce("reject_maps_rbl", func() {
			s.logf("warning: support for restriction \"reject_maps_rbl\" will be removed from Postfix; use \"reject_rbl_client domain-name\" instead")
		})
		for _, d := range s.cfg.DNS.MapsRBLDomains {
			if st := s.rejectRBLAddr(d, s.addr, classClient); st != dunno {
				return st
			}
		}
	case "permit_dnswl_client":
		return s.permitDNSWL(arg, s.addr, classClient, false)
	case "reject_rhsbl_client":
		if !strings.EqualFold(s.name, "unknown") {
			return s.rejectRBLDomain(arg, s.name, classClient)
		}
	case "permit_rhswl_client":
		if !strings.EqualFold(s.name, "unknown") {
			return s.permitDNSWL(arg, s.name, classClient, true)
		}
	case "reject_rhsbl_reverse_client":
		if !strings.EqualFold(s.reverseName, "unknown") {
			return s.rejectRBLDomain(arg, s.reverseName, classRevClient)
		}
	case "reject_rhsbl_helo":
		if s.chk.haveHelo {
			return s.rejectRBLDomain(arg, s.chk.helo, classHelo)
		}
	case "reject_rhsbl_sender":
		if s.chk.haveSender && s.chk.sender != "" {
			return s.rejectRBLDomain(arg, s.chk.sender, classSender)
		}
	case "reject_rhsbl_recipient":
		if s.chk.haveRcpt {
			return s.rejectRBLDomain(arg, s.chk.rcpt, classRecipient)
		}
	case "permit_mx_backup":
		if s.chk.haveRcpt {
			return s.permitMXBackup(s.chk.rcpt, s.chk.rcpt, classRecipient)
		}
	}
	return dunno
}

// tempfail is DEFER_IF_PERMIT2 with a configurable action: defer now, or
// only if the rest would permit.
func (s *session) tempfail(action string, code int, dsn, text string) int {
	if action == "defer_if_permit" {
		return s.deferIfPermit(code, dsn, text)
	}
	return s.checkReject(0, code, dsn, text)
}

// rejectUnknownHostname: the HELO name has no A, AAAA or MX record.
func (s *session) rejectUnknownHostname(name, replyName, replyClass string) int {
	ctx, cancel := lookupCtx()
	defer cancel()
	switch s.lookupHost(ctx, name) {
	case dnsOK:
		return dunno
	case dnsRetry:
		return s.tempfail(s.cfg.DNS.UnknownHeloTempfailAction, 450, "4.7.1",
			fmt.Sprintf("<%s>: %s rejected: Host not found", replyName, replyClass))
	}
	return s.checkRejectf(s.cfg.Codes.UnknownHostnameReject, "4.7.1", "<%s>: %s rejected: Host not found", replyName, replyClass)
}

// rejectUnknownAddress: the address's domain, unless we are its final
// destination, has no MX, A or AAAA record (or a null MX).
func (s *session) rejectUnknownAddress(addr, replyName, replyClass string) int {
	resolved, at := s.qualified(addr)
	if at < 0 {
		return dunno
	}
	domain := strings.TrimSuffix(resolved[at+1:], ".")
	if domain == "" || domain[0] == '[' && domain[len(domain)-1] == ']' {
		return dunno
	}
	if f := s.cfg.DNS.FinalDestination; f != nil && f(strings.ToLower(domain)) {
		return dunno
	}
	sender := replyClass == classSender
	ctx, cancel := lookupCtx()
	defer cancel()
	dsn := "4.1.2"
	if sender {
		dsn = "4.1.8"
	}
	switch s.lookupMailhost(ctx, domain) {
	case dnsOK:
		return dunno
	case dnsNullMX:
		code, ndsn := 556, "4.1.10"
		if sender {
			code, ndsn = 550, "4.7.27"
		}
		return s.checkRejectf(code, ndsn, "<%s>: %s rejected: Domain %s does not accept mail (nullMX)", replyName, replyClass, domain)
	case dnsRetry:
		return s.tempfail(s.cfg.DNS.UnknownAddressTempfailAction, 450, dsn,
			fmt.Sprintf("<%s>: %s rejected: Domain not found", replyName, replyClass))
	case dnsInvalid:
		return s.checkRejectf(s.cfg.Codes.UnknownAddressReject, dsn, "<%s>: %s rejected: Malformed DNS server reply", replyName, replyClass)
	}
	return s.checkRejectf(s.cfg.Codes.UnknownAddressReject, dsn, "<%s>: %s rejected: Domain not found", replyName, replyClass)
}

// qualified is the address as trivial-rewrite gives it (user becomes
// user@$myorigin) and the index of its last '@' (-1: none).
func (s *session) qualified(addr string) (string, int) {
	if s.cfg.Qualify != nil {
		addr = s.cfg.Qualify(addr)
	}
	return addr, strings.LastIndexByte(addr, '@')
}

// checkServerRestriction picks what check_*_{a,mx,ns}_access looks at.
func (s *session) checkServerRestriction(lname, table string, qtype uint16) int {
	var name, replyName, class string
	switch {
	case strings.HasPrefix(lname, "check_client_"):
		if strings.EqualFold(s.name, "unknown") {
			return dunno
		}
		name, replyName, class = s.name, s.namaddr(), classClient
	case strings.HasPrefix(lname, "check_reverse_client_hostname_"):
		if strings.EqualFold(s.reverseName, "unknown") {
			return dunno
		}
		name, replyName, class = s.reverseName, s.reverseName, classRevClient
	case strings.HasPrefix(lname, "check_helo_"):
		if !s.chk.haveHelo {
			return dunno
		}
		name, replyName, class = s.chk.helo, s.chk.helo, classHelo
	case strings.HasPrefix(lname, "check_sender_"):
		if !s.chk.haveSender || s.chk.sender == "" {
			return dunno
		}
		name, replyName, class = s.chk.sender, s.chk.sender, classSender
	default:
		if !s.chk.haveRcpt || s.chk.rcpt == "" {
			return dunno
		}
		name, replyName, class = s.chk.rcpt, s.chk.rcpt, classRecipient
	}
	st := s.checkServerAccess(table, name, qtype, replyName, class)
	// An OK here would let a spammer allowlist himself by naming a
	// friendly host (forbid_allowlist).
	if !s.act.discard && st == permit {
		s.logf("warning: restriction %s returns OK for %s", lname, name)
		s.logf("warning: this is not allowed for security reasons")
		s.logf("warning: use DUNNO instead of OK if you want to make an exception")
		return s.serverError()
	}
	return st
}

// dnsRRListLimit is dns_rr_list_limit: at most this many server
// addresses are checked.
const dnsRRListLimit = 100

// checkServerAccess is check_server_access: the A, MX or NS hosts of the
// name's domain, by name then by address.
func (s *session) checkServerAccess(table, name string, qtype uint16, replyName, replyClass string) int {
	domain := domainOf(name)
	tname := map[uint16]string{typeA: "A", typeMX: "MX", typeNS: "NS"}[qtype]
	// An address literal is its own MX (and A) host; it has no NS.
	if strings.HasPrefix(domain, "[") {
		if qtype == typeNS || !strings.HasSuffix(domain, "]") {
			return dunno
		}
		inner := domain[1 : len(domain)-1]
		if !rewrite.ValidMailhostAddr(inner) {
			return dunno
		}
		if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
			inner = inner[5:]
		}
		st, _ := s.checkAddrAccess(table, inner, true, replyName, replyClass)
		return st
	}
	ctx, cancel := lookupCtx()
	defer cancel()
	r := s.cfg.DNS.Resolver
	var servers []string
	switch qtype {
	case typeA:
		servers = []string{domain}
	case typeMX:
		mxs, err := r.MX(ctx, domain)
		switch {
		case dnsq.NullMX(mxs):
			return dunno
		case err == nil:
			for _, mx := range mxs {
				servers = append(servers, mx.Host)
			}
		case dnsq.IsNotFound(err):
			// No MX: the domain is its own mail exchanger.
			servers = []string{domain}
		default:
			s.logf("warning: Unable to look up %s host for %s: %s", tname, domain, hErrnoText(err))
			return dunno
		}
	case typeNS:
		ns, err := r.NS(ctx, domain)
		d := domain
		// No NS records: ask the parent domains.
		for dnsq.IsNotFound(err) {
			i := strings.IndexByte(d, '.')
			if i < 0 || i == len(d)-1 {
				break
			}
			d = d[i+1:]
			ns, err = r.NS(ctx, d)
		}
		if err != nil {
			s.logf("warning: Unable to look up %s host for %s: %s", tname, d, hErrnoText(err))
			return dunno
		}
		servers = ns
	}
	count := 0
	for _, host := range servers {
		if rewrite.ValidHostaddr(host) {
			if st, found := s.checkAddrAccess(table, host, true, replyName, replyClass); st != dunno || found {
				return st
			}
			continue
		}
		if qtype != typeA {
			if st, found := s.checkDomainAccess(table, host, true, replyName, replyClass); st != dunno || found {
				return st
			}
		}
		addrs, err := s.hostAddrs(ctx, host)
		if err != nil {
			if qtype != typeA {
				s.logf("warning: Unable to look up %s host %s for %s %s: %s", tname, host, replyClass, replyName, aiStrerror(err))
			}
			continue
		}
		for _, a := range addrs {
			count++
			if count > dnsRRListLimit {
				s.logf("warning: check_server_access: %s server address count limit (%d) exceeded for %s %s -- ignoring the remainder",
					tname, dnsRRListLimit, replyClass, replyName)
				return dunno
			}
			if st, found := s.checkAddrAccess(table, a.String(), true, replyName, replyClass); st != dunno || found {
				return st
			}
		}
	}
	return dunno
}

// permitMXBackup: we are a backup (not primary) MX for the recipient's
// domain, and with permit_mx_backup_networks every primary MX address is
// in those networks. Our own domains pass as permit_auth_destination does.
func (s *session) permitMXBackup(rcpt, replyName, replyClass string) int {
	resolved, at := s.qualified(rcpt)
	if at < 0 {
		return permit
	}
	if !s.cfg.AllowUntrustedRouting && strings.ContainsAny(resolved[:at], "@%!") {
		return dunno
	}
	if s.authDestination(resolved) {
		return permit
	}
	domain := strings.TrimSuffix(resolved[at+1:], ".")
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		return dunno
	}
	ctx, cancel := lookupCtx()
	defer cancel()
	mxs, err := s.cfg.DNS.Resolver.MX(ctx, domain)
	if err != nil {
		if dnsq.IsTemporary(err) {
			deferIf(&s.chk.deferIfReject, 450, "4.4.4", fmt.Sprintf("<%s>: %s rejected: Unable to look up mail exchanger information: %s",
				replyName, replyClass, hErrnoText(err)))
		}
		return dunno
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	n := 1
	for n < len(mxs) && mxs[n].Pref == mxs[0].Pref {
		n++
	}
	primary, backup := mxs[:n], mxs[n:]
	if s.iAmMX(primary, replyName, replyClass) {
		return dunno
	}
	if len(backup) == 0 || !s.iAmMX(backup, replyName, replyClass) {
		return dunno
	}
	if nets := s.cfg.DNS.PermitMXBackupNetworks; nets != nil {
		for _, mx := range primary {
			addrs, err := s.cfg.DNS.Resolver.IP(ctx, mx.Host)
			if err != nil {
				deferIf(&s.chk.deferIfReject, 450, "4.4.4", fmt.Sprintf("<%s>: %s rejected: Unable to look up host %s as mail exchanger: %s",
					replyName, replyClass, mx.Host, hErrnoText(err)))
				return dunno
			}
			for _, a := range addrs {
				if !nets.Contains(a) {
					return dunno
				}
			}
		}
	}
	return permit
}

// iAmMX is i_am_mx: one of the hosts is a local name, or has one of our
// addresses.
func (s *session) iAmMX(mxs []dnsq.MX, replyName, replyClass string) bool {
	for _, mx := range mxs {
		if s.cfg.DNS.IsLocal != nil && s.cfg.DNS.IsLocal(strings.ToLower(mx.Host)) {
			return true
		}
	}
	ctx, cancel := lookupCtx()
	defer cancel()
	for _, mx := range mxs {
		addrs, err := s.hostAddrs(ctx, mx.Host)
		if err != nil {
			deferIf(&s.chk.deferIfReject, 450, "4.4.4", fmt.Sprintf("<%s>: %s rejected: Unable to look up mail exchanger host %s: %s",
				replyName, replyClass, mx.Host, aiStrerror(err)))
			continue
		}
		for _, a := range addrs {
			if s.isOwnAddr(a) {
				return true
			}
		}
	}
	return false
}
