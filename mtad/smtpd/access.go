package smtpd

import (
	"context"
	"fmt"
	"sqlmta/mtad/rewrite"
	"strings"
	"time"
)

// The access(5) lookups of reference §3, after smtpd_check.c: check_access,
// check_domain_access, check_addr_access, check_namadr_access and
// check_mail_access, and check_table_result for the value found.

// lookupTimeout bounds one table lookup, so a hung database cannot hold a
// session forever; the failure is answered like any lookup error.
const lookupTimeout = 30 * time.Second

// errConfigValue is what Postfix evaluates when a table lookup fails.
const errConfigValue = "451 4.3.5 Server configuration error"

// checkAccess looks up one key. full is Postfix's FULL flag: pattern tables
// (regexp, pcre, cidr) only ever see the first key of a sequence.
func (s *session) checkAccess(table, key string, full bool, replyName, replyClass string) (int, bool) {
	m := s.cfg.maps[table]
	if m == nil {
		s.logf("warning: check_access: unexpected dictionary: %s", table)
		return s.checkTableResult(table, errConfigValue, key, replyName, replyClass), true
	}
	p := m.Props()
	if !full && p.Pattern {
		return dunno, false
	}
	if p.FoldCase {
		key = strings.ToLower(key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	v, found, err := m.Lookup(ctx, key)
	if err != nil {
		s.logf("warning: %s lookup error for \"%s\": %v", table, key, err)
		return s.checkTableResult(table, errConfigValue, key, replyName, replyClass), true
	}
	if !found {
		return dunno, false
	}
	return s.checkTableResult(table, v, key, replyName, replyClass), true
}

// checkDomainAccess tries a name and its parent domains. A numeric name is
// looked up once.
func (s *session) checkDomainAccess(table, domain string, full bool, replyName, replyClass string) (int, bool) {
	numeric := rewrite.ValidHostaddr(domain)
	name := domain
	for name != "" {
		if st, found := s.checkAccess(table, name, full, replyName, replyClass); st != dunno || found {
			return st, found
		}
		if numeric {
			break
		}
		// strchr(name + 1, '.'): the next parent, with or without its dot.
		i := strings.IndexByte(name[1:], '.')
		if i < 0 {
			break
		}
		next := name[1+i:]
		if !s.cfg.AccessParentDot {
			next = next[1:]
		}
		name = next
		full = false
	}
	return dunno, false
}

// checkAddrAccess tries an IP address and its shorter networks: one octet
// (or one IPv6 group) at a time from the right.
func (s *session) checkAddrAccess(table, addr string, full bool, replyName, replyClass string) (int, bool) {
	delim := byte('.')
	if strings.IndexByte(addr, ':') >= 0 {
		delim = ':'
	}
	a := addr
	for {
		if st, found := s.checkAccess(table, a, full, replyName, replyClass); st != dunno || found {
			return st, found
		}
		full = false
		i := strings.LastIndexByte(a, delim)
		if i < 0 {
			return dunno, false
		}
		a = a[:i]
	}
}

// checkNamAddrAccess is check_client_access: the host name and its parents
// first (a domain entry pre-empts an address entry), then the address.
func (s *session) checkNamAddrAccess(table, name, addr, replyName, replyClass string) (int, bool) {
	if st, found := s.checkDomainAccess(table, name, true, replyName, replyClass); st != dunno || found {
		return st, found
	}
	return s.checkAddrAccess(table, addr, true, replyName, replyClass)
}

// checkMailAccess is check_sender_access / check_recipient_access: for
// user+ext@sub.example.com the keys are user+ext@sub.example.com,
// user@sub.example.com, sub.example.com, example.com, com, user+ext@, user@.
func (s *session) checkMailAccess(table, addr, replyName, replyClass string) int {
	resolved := addr
	if s.cfg.Qualify != nil {
		resolved = s.cfg.Qualify(resolved)
	}
	resolved = strings.ToLower(strings.TrimSuffix(resolved, "."))
	at := strings.LastIndexByte(resolved, '@')
	if at < 0 {
		s.logf("warning: check_mail_access: no @domain in address: %s", resolved)
		return dunno
	}
	domain := resolved[at+1:]
	bare := stripExtension(resolved, s.cfg.RecipientDelimiter)
	// An OK for a sender-routed recipient would make us an open relay.
	suspicious := !s.cfg.AllowUntrustedRouting && replyClass == classRecipient && strings.ContainsAny(resolved[:at], "@%!")
	result := func(st int) int {
		if st == permit && suspicious {
			return dunno
		}
		return st
	}
	if st, found := s.checkAccess(table, resolved, true, replyName, replyClass); st != dunno || found {
		return result(st)
	}
	if bare != "" {
		if st, found := s.checkAccess(table, bare, false, replyName, replyClass); st != dunno || found {
			return result(st)
		}
	}
	if st, found := s.checkDomainAccess(table, domain, false, replyName, replyClass); st != dunno || found {
		return result(st)
	}
	if st, found := s.checkAccess(table, resolved[:at+1], false, replyName, replyClass); st != dunno || found {
		return result(st)
	}
	if bare != "" {
		bat := strings.LastIndexByte(bare, '@')
		if st, found := s.checkAccess(table, bare[:bat+1], false, replyName, replyClass); st != dunno || found {
			return result(st)
		}
	}
	return dunno
}

// stripExtension returns addr without its address extension, or "" when it
// has none (strip_addr). The extension starts at the first delimiter
// character after the first character of the local part.
func stripExtension(addr, delims string) string {
	if delims == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr, ""
	if at >= 0 {
		local, domain = addr[:at], addr[at:]
	}
	// Postfix never splits these (split_addr).
	if strings.EqualFold(local, "postmaster") || strings.EqualFold(local, "mailer-daemon") {
		return ""
	}
	if strings.ContainsRune(delims, '-') &&
		(strings.HasPrefix(strings.ToLower(local), "owner-") || strings.HasSuffix(strings.ToLower(local), "-request")) {
		return ""
	}
	if len(local) < 2 {
		return ""
	}
	i := strings.IndexAny(local[1:], delims)
	if i < 0 {
		return ""
	}
	return local[:1+i] + domain
}

// checkTableResult turns a table's value into a decision (reference §3's
// action table).
func (s *session) checkTableResult(table, value, datum, replyName, replyClass string) int {
	var cmd, text string
	if i := strings.IndexAny(value, " \t"); i >= 0 {
		cmd, text = value[:i], strings.TrimLeft(value[i:], " \t")
	} else {
		cmd, text = value, ""
	}
	codes := &s.cfg.Codes
	switch strings.ToUpper(cmd) {
	case "DUNNO":
		return dunno
	case "REJECT":
		dsn, t := dsnSplit("5.7.1", text)
		return s.checkRejectf(codes.AccessMapReject, dsnFix(dsn, replyClass), "<%s>: %s rejected: %s", replyName, replyClass, orDefault(t, "Access denied"))
	case "DEFER":
		dsn, t := dsnSplit("4.7.1", text)
		return s.checkRejectf(codes.AccessMapDefer, dsnFix(dsn, replyClass), "<%s>: %s rejected: %s", replyName, replyClass, orDefault(t, "Access denied"))
	case "INFO":
		s.logWhatsup("info", text)
		return dunno
	case "WARN":
		s.logWhatsup("warn", text)
		return dunno
	case "FILTER":
		if !s.canDelegate(table, "FILTER") {
			return dunno
		}
		switch {
		case text == "":
			s.logf("warning: access table %s entry \"%s\" has FILTER entry without value", table, datum)
		case !strings.Contains(text, ":"):
			s.logf("warning: access table %s entry \"%s\" requires transport:destination", table, datum)
		default:
			s.logWhatsup("filter", fmt.Sprintf("<%s>: %s triggers FILTER %s", replyName, replyClass, text))
			s.act.filter = text
		}
		return dunno
	case "HOLD":
		if !s.canDelegate(table, "HOLD") || s.act.hold {
			return dunno
		}
		s.logWhatsup("hold", fmt.Sprintf("<%s>: %s %s", replyName, replyClass, orDefault(text, "triggers HOLD action")))
		s.act.hold = true
		return dunno
	case "DISCARD":
		if !s.canDelegate(table, "DISCARD") {
			return dunno
		}
		s.logWhatsup("discard", fmt.Sprintf("<%s>: %s %s", replyName, replyClass, orDefault(text, "triggers DISCARD action")))
		s.act.discard = true
		return permit
	case "REDIRECT", "BCC":
		verb := strings.ToUpper(cmd)
		if !s.canDelegate(table, verb) {
			return dunno
		}
		if !strings.Contains(text, "@") {
			s.logf("warning: access table %s entry \"%s\" requires user@domain target", table, datum)
			return dunno
		}
		s.logWhatsup(strings.ToLower(verb), fmt.Sprintf("<%s>: %s triggers %s %s", replyName, replyClass, verb, text))
		if verb == "REDIRECT" {
			s.act.redirect = text
		} else {
			s.act.bcc = append(s.act.bcc, text)
		}
		return dunno
	case "DEFER_IF_PERMIT":
		dsn, t := dsnSplit("4.7.1", text)
		return s.deferIfPermit(codes.AccessMapDefer, dsnFix(dsn, replyClass),
			fmt.Sprintf("<%s>: %s rejected: %s", replyName, replyClass, orDefault(t, "Service unavailable")))
	case "DEFER_IF_REJECT":
		dsn, t := dsnSplit("4.7.1", text)
		deferIf(&s.chk.deferIfReject, codes.AccessMapDefer, dsnFix(dsn, replyClass),
			fmt.Sprintf("<%s>: %s rejected: %s", replyName, replyClass, orDefault(t, "Service unavailable")))
		return dunno
	case "PREPEND":
		if !s.chk.haveSender {
			s.notInClientHelo(table, "PREPEND")
			return dunno
		}
		if s.where == "END-OF-MESSAGE" {
			s.logf("warning: access table %s: action PREPEND must be used before smtpd_end_of_data_restrictions", table)
			return dunno
		}
		if text == "" || !isHeaderLine(text) {
			s.logf("warning: access table %s entry \"%s\" requires header: text", table, datum)
			return dunno
		}
		s.act.prepend = append(s.act.prepend, text)
		return dunno
	}
	if allDigits(value) {
		return permit
	}
	if len(cmd) == 3 && text != "" && (cmd[0] == '4' || cmd[0] == '5') && isDigit(cmd[1]) && isDigit(cmd[2]) {
		code := int(cmd[0]-'0')*100 + int(cmd[1]-'0')*10 + int(cmd[2]-'0')
		dsn, t := dsnSplit(string(cmd[0])+".7.1", text)
		return s.checkRejectf(code, dsnFix(dsn, replyClass), "<%s>: %s rejected: %s", replyName, replyClass, orDefault(t, "Access denied"))
	}
	if strings.EqualFold(cmd, "OK") || strings.EqualFold(cmd, "RELAY") {
		return permit
	}
	if strings.Contains(value, ":") {
		s.logf("warning: access table %s has entry with lookup table: %s", table, value)
		s.logf("warning: do not specify lookup tables inside SMTPD access maps")
		s.logf("warning: define a restriction class and specify its name instead.")
		return s.serverError()
	}
	if s.chk.recursion > 100 {
		s.logf("warning: access table %s entry %s causes unreasonable recursion", table, value)
		return s.serverError()
	}
	list := strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n' })
	if len(list) == 0 {
		s.logf("warning: access table %s entry %s has empty value", table, value)
		return permit
	}
	return s.generic(list, replyName, replyClass, s.defACLFor(replyClass))
}

// canDelegate: actions that cleanup carries out need a mail transaction.
func (s *session) canDelegate(table, action string) bool {
	if !s.chk.haveSender {
		s.notInClientHelo(table, action)
		return false
	}
	return true
}

func (s *session) notInClientHelo(table, action string) {
	s.logf("warning: access table %s: with smtpd_delay_reject=no, action %s is always skipped in %s or %s restrictions",
		table, action, classClient, classHelo)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isHeaderLine is is_header: a header name, optional blanks, then ':'.
func isHeaderLine(s string) bool {
	i := 0
	for i < len(s) && s[i] > 0x20 && s[i] < 0x7f && s[i] != ':' {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i < len(s) && s[i] == ':'
}

// dsnValid is dsn_valid: class 2, 4 or 5, then two dot-separated numbers of
// one to three digits.
func dsnValid(d string) bool {
	if len(d) < 5 || (d[0] != '2' && d[0] != '4' && d[0] != '5') || d[1] != '.' {
		return false
	}
	parts := strings.Split(d[2:], ".")
	if len(parts) != 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || !allDigits(p) {
			return false
		}
	}
	return true
}

// dsnSplit is dsn_split: text may start with its own enhanced code.
func dsnSplit(def, text string) (dsn, rest string) {
	word, after := text, ""
	if i := strings.IndexAny(text, " \t"); i >= 0 {
		word, after = text[:i], text[i:]
	}
	if dsnValid(word) {
		return word, strings.TrimLeft(after, " \t")
	}
	return def, text
}

// dsnFix is smtpd_dsn_fix: an address status (X.1.Y) is mapped to one that
// fits what is being rejected.
func dsnFix(status, class string) string {
	if len(status) < 5 || !isDigit(status[0]) || status[1:4] != ".1." {
		return status
	}
	type m struct{ micro, sender, rcpt string }
	table := []m{
		{"1", "4.1.7", "4.1.1"}, {"2", "4.1.8", "4.1.2"}, {"3", "4.1.7", "4.1.3"},
		{"4", "4.1.7", "4.1.4"}, {"5", "4.1.0", "4.1.5"}, {"6", "4.1.7", "4.1.6"},
		{"7", "4.1.7", "4.1.3"}, {"8", "4.1.8", "4.1.2"},
	}
	res := m{"", "4.1.0", "4.1.0"}
	for _, e := range table {
		if e.micro == status[4:] {
			res = e
			break
		}
	}
	switch class {
	case classSender:
		return res.sender
	case classRecipient:
		return res.rcpt
	}
	return "4.0.0"
}
