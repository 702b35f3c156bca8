package smtpd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/rewrite"
)

// DNS allow and deny lists (DNSBL, RHSBL, DNSWL, RHSWL), after
// smtpd_check.c's find_dnsxl_addr, find_dnsxl_domain and rbl_reject_reply.

// rblResult is one DNSxL answer: soft means the lookup failed temporarily
// (the client gets the benefit of the doubt).
type rblResult struct {
	soft bool
	a    []netip.Addr
	txt  string
}

// rblTXTLimit caps the concatenated TXT text (RBL_TXT_LIMIT).
const rblTXTLimit = 500

// checkRBLDomain validates "domain[=pattern]" at start-up, where Postfix
// would fail at the first lookup ("RBL reply error").
func checkRBLDomain(spec string) error {
	if _, pat, ok := strings.Cut(spec, "="); ok {
		if _, err := parseIPMatch(pat); err != nil {
			return fmt.Errorf("RBL reply error: %v", err)
		}
	}
	return nil
}

// rblLookup asks for the A records of query and, when listed, its TXT.
func (s *session) rblLookup(query string) *rblResult {
	if r, ok := s.dns.rbl[query]; ok {
		return r
	}
	ctx, cancel := lookupCtx()
	defer cancel()
	res := &rblResult{}
	a, err := s.cfg.DNS.Resolver.A(ctx, query)
	switch {
	case err == nil:
		res.a = a
		txts, _ := s.cfg.DNS.Resolver.TXT(ctx, query)
		var b strings.Builder
		for i, t := range txts {
			if left := rblTXTLimit - b.Len(); len(t) > left {
				t = t[:left]
			}
			b.WriteString(t)
			if i+1 < len(txts) && rblTXTLimit-b.Len() > 3 {
				b.WriteString(" / ")
			}
			if b.Len() >= rblTXTLimit {
				break
			}
		}
		res.txt = b.String()
	case dnsq.IsTemporary(err):
		s.logf("warning: %s: RBL lookup error: %s", query, hErrnoText(err))
		res.soft = true
	default:
		res = nil // not listed
	}
	if s.dns.rbl == nil {
		s.dns.rbl = map[string]*rblResult{}
	}
	s.dns.rbl[query] = res
	return res
}

// findDNSxL looks up name under spec ("domain[=pattern]"): nil when not
// listed or when no answer matches the pattern.
func (s *session) findDNSxL(name, spec string) *rblResult {
	domain, pat, hasPat := strings.Cut(spec, "=")
	res := s.rblLookup(name + "." + domain)
	if res == nil || res.soft || !hasPat {
		return res
	}
	m, err := parseIPMatch(pat)
	if err != nil {
		// compileLists has checked every pattern; this is a bug.
		s.logf("warning: RBL reply error: %v", err)
		return nil
	}
	for _, a := range res.a {
		if m.match(a) {
			return res
		}
	}
	return nil
}

// reversedAddr is the DNSBL query prefix of a client address: IPv4
// octets or IPv6 nibbles in reverse order.
func reversedAddr(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		o := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d", o[3], o[2], o[1], o[0])
		return b.String()
	}
	o := ip.As16()
	for i := len(o) - 1; i >= 0; i-- {
		if i < len(o)-1 {
			b.WriteByte('.')
		}
		fmt.Fprintf(&b, "%x.%x", o[i]&0xf, o[i]>>4)
	}
	return b.String()
}

// rblDomainName is find_dnsxl_domain's name: the domain of an address or
// the name itself; numeric-looking and malformed names are not asked.
func rblDomainName(what string) string {
	domain := domainOf(what)
	if domain == "" || domain[0] == '[' {
		return ""
	}
	last := domain
	if i := strings.LastIndexByte(domain, '.'); i >= 0 {
		last = domain[i+1:]
	}
	if allDigits(last) || !rewrite.ValidHostname(domain) {
		return ""
	}
	return domain
}

// rejectRBLAddr is reject_rbl_addr: the client address is listed.
func (s *session) rejectRBLAddr(spec, addr, replyClass string) int {
	res := s.findDNSxL(reversedAddr(addr), spec)
	if res == nil || res.soft {
		return dunno
	}
	return s.rblRejectReply(res, spec, addr, replyClass)
}

// rejectRBLDomain is reject_rbl_domain: a name or an address's domain is
// listed.
func (s *session) rejectRBLDomain(spec, what, replyClass string) int {
	d := rblDomainName(what)
	if d == "" {
		return dunno
	}
	res := s.findDNSxL(d, spec)
	if res == nil || res.soft {
		return dunno
	}
	return s.rblRejectReply(res, spec, what, replyClass)
}

// permitDNSWL is permit_dnswl_addr (domain=false) and permit_dnswl_domain.
// It never lets an allowlisted client relay.
func (s *session) permitDNSWL(spec, what, replyClass string, domain bool) int {
	if s.where == "RCPT" && s.chk.haveRcpt && !s.authDestination(s.chk.rcpt) {
		return dunno
	}
	var res *rblResult
	if domain {
		d := rblDomainName(what)
		if d == "" {
			return dunno
		}
		res = s.findDNSxL(d, spec)
	} else {
		res = s.findDNSxL(reversedAddr(what), spec)
	}
	switch {
	case res == nil:
		return dunno
	case res.soft:
		deferIf(&s.chk.deferIfReject, 450, "4.7.1", fmt.Sprintf("<%s>: %s rejected: Service unavailable", what, replyClass))
		return dunno
	}
	return permit
}

// rblRejectReply formats the reply from rbl_reply_maps or default_rbl_reply.
func (s *session) rblRejectReply(res *rblResult, spec, what, replyClass string) int {
	domain, _, _ := strings.Cut(spec, "=")
	// Postfix 3.7 looks up the restriction's argument as written,
	// "=pattern" included (the bare-domain fallback came later).
	template, _, err := s.rblReplyLookup(spec)
	if err != nil {
		return s.serverError()
	}
	lookup := func(name string) (string, bool) {
		switch name {
		case "rbl_code":
			return strconv.Itoa(s.cfg.Codes.MapsRBLReject), true
		case "rbl_domain":
			return domain, true
		case "rbl_reason", "rbl_txt":
			return res.txt, true
		case "rbl_what":
			return what, true
		case "rbl_class":
			return replyClass, true
		}
		return s.expandLookup(name)
	}
	var why string
	for {
		if template == "" {
			template = s.cfg.DNS.DefaultRBLReply
		}
		var err error
		why, err = expandMacros(template, lookup)
		if err == nil {
			break
		}
		if template == s.cfg.DNS.DefaultRBLReply {
			// compileDNS checked it; an unknown $name can still fail here.
			s.logf("warning: rbl_reject_reply: bad default rbl reply template: %s", template)
			why = fmt.Sprintf("%d Service unavailable", s.cfg.Codes.MapsRBLReject)
			break
		}
		s.logf("warning: rbl_reject_reply: bad rbl reply template for domain %s: %s", spec, template)
		template = ""
	}
	if len(why) < 4 || (why[0] != '4' && why[0] != '5') || !isDigit(why[1]) || !isDigit(why[2]) || why[3] != ' ' {
		s.logf("warning: rbl response code configuration error: %s", why)
		return s.checkReject(0, 450, "4.7.1", "Service unavailable")
	}
	code, _ := strconv.Atoi(why[:3])
	dsn, text := dsnSplit("4.7.1", why[4:])
	return s.checkReject(0, code, dsnFix(dsn, replyClass), orDefault(text, "Service unavailable"))
}

// rblReplyLookup searches rbl_reply_maps for a DNSBL domain.
func (s *session) rblReplyLookup(key string) (string, bool, error) {
	for _, spec := range s.cfg.DNS.RBLReplyMaps {
		m := s.cfg.maps[spec]
		if m == nil {
			continue
		}
		k := key
		if m.Props().FoldCase {
			k = strings.ToLower(k)
		}
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		v, found, err := m.Lookup(ctx, k)
		cancel()
		if err != nil {
			s.logf("warning: %s lookup error for \"%s\": %v", spec, key, err)
			return "", false, err
		}
		if found {
			return v, true, nil
		}
	}
	return "", false, nil
}

// expandLookup is smtpd_expand_lookup: the session attributes a reply
// template may name.
func (s *session) expandLookup(name string) (string, bool) {
	local := func(a string) string {
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			return a[:at]
		}
		return a
	}
	dom := func(a string) string {
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			return a[at+1:]
		}
		return ""
	}
	switch name {
	case "client_address":
		return s.addr, true
	case "client_name":
		return s.name, true
	case "reverse_client_name":
		return s.reverseName, true
	case "helo_name":
		return s.chk.helo, true
	case "sender":
		return s.chk.sender, true
	case "sender_name":
		return local(s.chk.sender), true
	case "sender_domain":
		return dom(s.chk.sender), true
	case "recipient":
		return s.chk.rcpt, true
	case "recipient_name":
		return local(s.chk.rcpt), true
	case "recipient_domain":
		return dom(s.chk.rcpt), true
	case "protocol":
		return s.protocol, true
	case "myhostname":
		return s.cfg.Hostname, true
	}
	return "", false
}

var errUndefined = errors.New("undefined macro")

// expandMacros is mac_expand without recursion: $name, ${name}, $(name),
// ${name?text}, ${name:text}, ${name?{text}:{text}} and $$. A plain
// reference to an unknown name is an error (the template is then "bad").
// Values are made printable as smtpd's expansion filter does.
func expandMacros(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("dangling $")
		}
		i++
		switch s[i] {
		case '$':
			b.WriteByte('$')
			continue
		case '{', '(':
			close := byte('}')
			if s[i] == '(' {
				close = ')'
			}
			end := matching(s, i, s[i], close)
			if end < 0 {
				return "", fmt.Errorf("unbalanced %c", s[i])
			}
			inner := s[i+1 : end]
			i = end
			name := inner
			op := byte(0)
			rest := ""
			if k := strings.IndexAny(inner, "?:"); k >= 0 {
				name, op, rest = inner[:k], inner[k], inner[k+1:]
			}
			v, ok := lookup(name)
			if op == 0 {
				if !ok {
					return "", errUndefined
				}
				b.WriteString(printable(v))
				continue
			}
			yes, no := condTexts(rest)
			if op == ':' {
				yes, no = "", yes
			}
			pick := no
			if v != "" {
				pick = yes
			}
			out, err := expandMacros(pick, lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(out)
		default:
			j := i
			for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '_') {
				j++
			}
			if j == i {
				return "", fmt.Errorf("bad $ syntax")
			}
			v, ok := lookup(s[i:j])
			if !ok {
				return "", errUndefined
			}
			b.WriteString(printable(v))
			i = j - 1
		}
	}
	return b.String(), nil
}

// matching finds the bracket that closes the one at s[open].
func matching(s string, open int, o, c byte) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			depth++
		case c:
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// condTexts splits what follows "?" or ":": "{t1}", "{t1}:{t2}",
// "{t1}:t2", or plain text taken literally to the end.
func condTexts(rest string) (yes, no string) {
	t := strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(t, "{") {
		return rest, ""
	}
	e := matching(t, 0, '{', '}')
	if e < 0 {
		return rest, ""
	}
	yes = strings.TrimSpace(t[1:e])
	after := strings.TrimSpace(t[e+1:])
	if strings.HasPrefix(after, ":") {
		no = strings.TrimSpace(after[1:])
		if strings.HasPrefix(no, "{") && strings.HasSuffix(no, "}") {
			no = strings.TrimSpace(no[1 : len(no)-1])
		}
	}
	return yes, no
}

// ipMatch is ip_match(3): a dotted-quad pattern whose octets are numbers
// or [n;m..k] lists.
type ipMatch [4][][2]int

func parseIPMatch(pat string) (ipMatch, error) {
	var m ipMatch
	// Dots inside [..] are range syntax, not octet separators.
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				parts = append(parts, pat[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, pat[start:])
	if len(parts) != 4 {
		return m, fmt.Errorf("bad address pattern %q: need four octets", pat)
	}
	for i, p := range parts {
		var ranges [][2]int
		if strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]") {
			for _, e := range strings.Split(p[1:len(p)-1], ";") {
				lo, hi, isRange := strings.Cut(e, "..")
				a, err1 := octet(lo)
				b := a
				var err2 error
				if isRange {
					b, err2 = octet(hi)
				}
				if err1 != nil || err2 != nil || b < a {
					return m, fmt.Errorf("bad address pattern %q: bad octet list %q", pat, p)
				}
				ranges = append(ranges, [2]int{a, b})
			}
		} else {
			a, err := octet(p)
			if err != nil {
				return m, fmt.Errorf("bad address pattern %q: bad octet %q", pat, p)
			}
			ranges = [][2]int{{a, a}}
		}
		m[i] = ranges
	}
	return m, nil
}

func octet(s string) (int, error) {
	if s == "" || !allDigits(s) {
		return 0, errors.New("not a number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 255 {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func (m ipMatch) match(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	o := a.As4()
	for i, ranges := range m {
		ok := false
		for _, r := range ranges {
			if int(o[i]) >= r[0] && int(o[i]) <= r[1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
