package smtpd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"sqlmta/mtad/dnsq"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/rewrite"
)

// DNSConfig is what the DNS restrictions and the client name lookup need
// (Postfix's smtpd_peer.c and the DNS half of smtpd_check.c).
type DNSConfig struct {
	// Resolver answers every DNS question; nil means the system's
	// (resolv.conf and /etc/hosts), made when the configuration compiles.
	Resolver *dnsq.Resolver
	// NoPeernameLookup is smtpd_peername_lookup = no: every client is
	// "unknown", with a permanent status.
	NoPeernameLookup bool
	// MapsRBLDomains is maps_rbl_domains, for the old reject_maps_rbl.
	MapsRBLDomains []string
	// DefaultRBLReply is default_rbl_reply ("" = Postfix's default).
	DefaultRBLReply string
	// RBLReplyMaps are the rbl_reply_maps tables ("type:name"), searched in
	// order by DNSBL domain for a reply template.
	RBLReplyMaps []string
	// UnknownHeloTempfailAction and UnknownAddressTempfailAction are
	// unknown_helo_hostname_tempfail_action and
	// unknown_address_tempfail_action: "defer_if_permit" (also "") or
	// "defer".
	UnknownHeloTempfailAction    string
	UnknownAddressTempfailAction string
	// PermitMXBackupNetworks is permit_mx_backup_networks (nil = any).
	PermitMXBackupNetworks *matchlist.Networks
	// FinalDestination reports whether a domain is one we deliver to
	// ourselves (Postfix's RESOLVE_CLASS_FINAL: local, virtual alias,
	// virtual mailbox): reject_unknown_*_domain skips those.
	FinalDestination func(domain string) bool
	// IsLocal is resolve_local: a host name in mydestination or a literal
	// of one of our addresses (permit_mx_backup's "am I an MX").
	IsLocal func(host string) bool
}

// defaultRBLReply is default_rbl_reply's default (reference §2).
const defaultRBLReply = "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}"

// dnsTimeout bounds all the lookups one restriction makes, on top of the
// resolver's own per-query timeout and retries.
const dnsTimeout = 2 * time.Minute

// Peer name lookup outcomes (smtpd.h SMTPD_PEER_CODE_*).
const (
	peerOK     = 2
	peerTemp   = 4
	peerPerm   = 5
	peerForged = 6
)

// dnsState is the per-session DNS state: the name lookup's outcome and a
// memo of DNSBL answers (Postfix keeps one per process).
type dnsState struct {
	nameStatus, reverseStatus int
	rbl                       map[string]*rblResult
}

// compileDNS fills in the resolver and checks what can be checked before
// the first client: DNSBL reply filters, reply templates, tempfail actions.
func (c *compiled) compileDNS() error {
	d := &c.DNS
	if d.Resolver == nil {
		r, err := dnsq.System()
		if err != nil {
			return fmt.Errorf("smtpd: %w", err)
		}
		d.Resolver = r
	}
	if d.DefaultRBLReply == "" {
		d.DefaultRBLReply = defaultRBLReply
	}
	if _, err := expandMacros(d.DefaultRBLReply, func(string) (string, bool) { return "x", true }); err != nil {
		return fmt.Errorf("bad default rbl reply template: %s", d.DefaultRBLReply)
	}
	for _, a := range []*string{&d.UnknownHeloTempfailAction, &d.UnknownAddressTempfailAction} {
		switch *a {
		case "":
			*a = "defer_if_permit"
		case "defer", "defer_if_permit":
		default:
			return fmt.Errorf("unknown tempfail action %q: specify defer or defer_if_permit", *a)
		}
	}
	for _, spec := range d.RBLReplyMaps {
		if err := c.openMap("rbl_reply_maps", spec); err != nil {
			return err
		}
	}
	for _, dom := range d.MapsRBLDomains {
		if err := checkRBLDomain(dom); err != nil {
			return err
		}
	}
	return nil
}

// lookupPeerName is smtpd_peer_sockaddr_to_hostname: the PTR name, kept as
// the reverse name, counts as the client name only when it resolves back
// to the client address.
func (s *session) lookupPeerName() {
	s.name, s.reverseName = "unknown", "unknown"
	s.dns.nameStatus, s.dns.reverseStatus = peerPerm, peerPerm
	if s.cfg.DNS.NoPeernameLookup || !s.ip.IsValid() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
	defer cancel()
	r := s.cfg.DNS.Resolver
	name, err := r.HostName(ctx, s.ip)
	// getnameinfo's caller refuses malformed and numeric names.
	if err == nil && (!rewrite.ValidHostname(name) || rewrite.ValidHostaddr(name)) {
		s.logf("warning: %s: hostname %s: malformed or numeric, treated as unknown", s.addr, name)
		return
	}
	if err != nil {
		if dnsq.IsTemporary(err) {
			s.dns.nameStatus, s.dns.reverseStatus = peerTemp, peerTemp
		}
		return
	}
	s.name, s.reverseName = name, name
	s.dns.nameStatus, s.dns.reverseStatus = peerOK, peerOK
	addrs, err := r.HostAddrs(ctx, name)
	if err != nil {
		s.logf("warning: hostname %s does not resolve to address %s: %s", name, s.addr, aiStrerror(err))
		s.name, s.dns.nameStatus = "unknown", peerForged
		if dnsq.IsTemporary(err) {
			s.dns.nameStatus = peerTemp
		}
		return
	}
	for _, a := range addrs {
		if a.Unmap() == s.ip {
			return
		}
	}
	s.logf("warning: hostname %s does not resolve to address %s", name, s.addr)
	s.name, s.dns.nameStatus = "unknown", peerForged
}

// aiStrerror is glibc's gai_strerror text for what went wrong.
func aiStrerror(err error) string {
	if dnsq.IsTemporary(err) {
		return "Temporary failure in name resolution"
	}
	return "Name or service not known"
}

// hErrnoText is dns_strerror(h_errno) for a failed lookup.
func hErrnoText(err error) string {
	if dnsq.IsTemporary(err) {
		return "Host not found, try again"
	}
	return "Host not found"
}

// lookupCtx is the context for one restriction's lookups.
func lookupCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dnsTimeout)
}

// mailhostStatus is the outcome of dns_lookup_l over several types.
type mailhostStatus int

const (
	dnsOK mailhostStatus = iota
	dnsNotFound
	dnsRetry
	dnsNullMX
	dnsInvalid
)

// lookupHost is reject_unknown_hostname's query: A, AAAA, then MX, the
// first that answers wins. A null MX counts as found (an MTA name may
// have one).
func (s *session) lookupHost(ctx context.Context, name string) mailhostStatus {
	if st := s.lookupAddrs(ctx, name); st == dnsOK {
		return st
	} else if mx, err := s.cfg.DNS.Resolver.MX(ctx, name); len(mx) > 0 {
		return dnsOK
	} else if st == dnsRetry || dnsq.IsTemporary(err) {
		return dnsRetry
	}
	return dnsNotFound
}

// lookupAddrs asks for A, then AAAA records: found if either answers,
// a temporary failure if either failed so.
func (s *session) lookupAddrs(ctx context.Context, name string) mailhostStatus {
	r := s.cfg.DNS.Resolver
	soft := false
	for _, lookup := range []func(context.Context, string) ([]netip.Addr, error){r.A, r.AAAA} {
		a, err := lookup(ctx, name)
		if len(a) > 0 {
			return dnsOK
		}
		soft = soft || dnsq.IsTemporary(err)
	}
	if soft {
		return dnsRetry
	}
	return dnsNotFound
}

// lookupMailhost is reject_unknown_mailhost's query: MX first (a null MX
// or a malformed exchanger name ends it), then A and AAAA.
func (s *session) lookupMailhost(ctx context.Context, name string) mailhostStatus {
	mxs, err := s.cfg.DNS.Resolver.MX(ctx, name)
	switch {
	case dnsq.NullMX(mxs):
		return dnsNullMX
	case len(mxs) > 0:
		for _, mx := range mxs {
			if !rewrite.ValidHostname(mx.Host) {
				return dnsInvalid
			}
		}
		return dnsOK
	}
	st := s.lookupAddrs(ctx, name)
	if st == dnsNotFound && dnsq.IsTemporary(err) {
		return dnsRetry
	}
	return st
}

// hostAddrs is hostname_to_sockaddr for a server name in the a/mx/ns
// access checks and permit_mx_backup.
func (s *session) hostAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	return s.cfg.DNS.Resolver.HostAddrs(ctx, host)
}

// domainOf returns what follows the last '@', or the whole string.
func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[at+1:]
	}
	return addr
}
