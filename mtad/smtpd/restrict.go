package smtpd

import (
	"fmt"
	"strings"

	"sqlmta/mtad/reply"
)

// The restrictions smtpd understands so far. Anything else is refused at
// New, so that a main.cf which relies on an unimplemented check cannot run
// with a silently weaker policy.
var knownRestrictions = map[string]bool{
	"permit":                    true,
	"reject":                    true,
	"defer":                     true,
	"permit_mynetworks":         true,
	"permit_sasl_authenticated": true,
	"reject_unauth_destination": true,
	"defer_unauth_destination":  true,
	"permit_auth_destination":   true,
}

// defaultRelayRestrictions is smtpd_relay_restrictions at compatibility
// level ≥ 1 (reference §2).
var defaultRelayRestrictions = []string{"permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"}

// compileRestrictions lower-cases names and refuses unknown ones.
func compileRestrictions(param string, list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, r := range list {
		n := strings.ToLower(strings.TrimSpace(r))
		if n == "" {
			continue
		}
		if !knownRestrictions[n] {
			return nil, fmt.Errorf("%s: unknown or unsupported restriction %q", param, r)
		}
		out = append(out, n)
	}
	return out, nil
}

// checkWorking is Postfix's startup check (smtpd_check_init): without one of
// these, an open relay is one typo away.
func checkWorking(relay, rcpt []string) error {
	required := []string{"reject_unauth_destination", "defer_unauth_destination", "reject", "defer", "defer_if_permit", "check_relay_domains"}
	for _, l := range [][]string{relay, rcpt} {
		for _, r := range l {
			for _, q := range required {
				if r == q {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: %s",
		"reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains")
}

// checkRcpt runs smtpd_relay_restrictions then smtpd_recipient_restrictions
// for one recipient (as Postfix does at compatibility level ≥ 3.6). A PERMIT
// ends only the current list; a reject or defer ends the whole check.
func (s *session) checkRcpt(addr string) *reply.Error {
	if isBarePostmaster(addr) {
		return nil
	}
	for _, list := range [][]string{s.cfg.relay, s.cfg.rcpt} {
	list:
		for _, r := range list {
			switch r {
			case "permit":
				break list
			case "reject":
				return reply.Errorf(554, "5.7.1", "<%s>: Recipient address rejected: Access denied", addr)
			case "defer":
				return reply.Errorf(450, "4.3.2", "<%s>: Recipient address rejected: Try again later", addr)
			case "permit_mynetworks":
				if s.cfg.MyNetworks.Contains(s.ip) {
					break list
				}
			case "permit_sasl_authenticated":
				// No AUTH yet, so never authenticated.
			case "permit_auth_destination":
				if s.authDestination(addr) {
					break list
				}
			case "reject_unauth_destination":
				if !s.authDestination(addr) {
					return reply.Errorf(554, "5.7.1", "<%s>: Relay access denied", addr)
				}
			case "defer_unauth_destination":
				if !s.authDestination(addr) {
					// relay_domains_reject_code − 100, as Postfix does.
					return reply.Errorf(454, "4.7.1", "<%s>: Relay access denied", addr)
				}
			}
		}
	}
	return nil
}

// isBarePostmaster: RFC 5321 §4.5.1 requires accepting mail to "postmaster"
// without a domain, so Postfix skips every RCPT check for it.
func isBarePostmaster(addr string) bool {
	return strings.EqualFold(addr, "postmaster")
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
	if strings.ContainsAny(local, "@%!") {
		return false
	}
	if at < 0 {
		return true
	}
	domain := strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if domain == "" {
		return true
	}
	return s.cfg.AuthDestination != nil && s.cfg.AuthDestination(domain)
}
