package smtp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// dnsKind is the outcome class of one DNS query, named after the resolver's
// h_errno values because Postfix's texts are built from them.
type dnsKind int

const (
	dnsNotFound dnsKind = iota // NXDOMAIN: HOST_NOT_FOUND
	dnsNoData                  // name exists, no record of this type: NO_DATA
	dnsRetry                   // SERVFAIL, timeout, network error: TRY_AGAIN
	dnsFail                    // FORMERR, NOTIMP, REFUSED: NO_RECOVERY
	dnsNullMX                  // RFC 7505 "MX 0 ."
)

// dnsError is a failed lookup, worded as Postfix's dns_lookup() words it.
type dnsError struct {
	name  string
	qtype uint16
	kind  dnsKind
}

func (e *dnsError) Error() string {
	if e.kind == dnsNullMX {
		return fmt.Sprintf("Domain %s does not accept mail (nullMX)", e.name)
	}
	var why string
	switch e.kind {
	case dnsNotFound:
		why = "Host not found"
	case dnsNoData:
		why = "Host found but no data record of requested type"
	case dnsRetry:
		why = "Host not found, try again"
	default:
		why = "Non-recoverable error"
	}
	return fmt.Sprintf("Host or domain name not found. Name service error for name=%s type=%s: %s",
		e.name, dns.TypeToString[e.qtype], why)
}

// dsn is the status Postfix's smtp_addr.c gives each outcome.
func (e *dnsError) dsn() string {
	switch e.kind {
	case dnsRetry:
		return "4.4.3"
	case dnsFail:
		return "5.4.3"
	case dnsNullMX:
		return "5.1.0"
	}
	return "5.4.4"
}

// resolver asks one DNS server directly (miekg/dns), so that tests can point
// it at an in-process server and so that NXDOMAIN, NODATA and SERVFAIL stay
// distinguishable (net.Resolver folds them together).
type resolver struct {
	server string
	client *dns.Client
	// noDNS: disable_dns_lookups (smtp_dns_support_level=disabled): no MX
	// lookups, and host addresses from the system resolver only.
	noDNS bool
	// lookup is smtp_host_lookup: "dns" and/or "native", tried in order.
	lookup []string
}

func newResolver(server string, noDNS bool, lookup []string) *resolver {
	if len(lookup) == 0 {
		lookup = []string{"dns"}
	}
	if server == "" {
		server = "127.0.0.1:53"
		if cc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cc.Servers) > 0 {
			server = net.JoinHostPort(cc.Servers[0], cc.Port)
		}
	}
	return &resolver{server: server, client: &dns.Client{}, noDNS: noDNS, lookup: lookup}
}

// addrs finds host's addresses the ways smtp_host_lookup names, the first
// that answers winning; with DNS disabled, natively only.
func (r *resolver) addrs(ctx context.Context, host string) ([]net.IP, error) {
	if r.noDNS {
		return nativeAddrs(ctx, host)
	}
	var err error
	for _, how := range r.lookup {
		var ips []net.IP
		if how == "native" {
			ips, err = nativeAddrs(ctx, host)
		} else {
			ips, err = r.hostAddrs(ctx, host)
		}
		if err == nil {
			return ips, nil
		}
	}
	return nil, err
}

// nativeError is a failed system-resolver lookup, worded as Postfix's
// smtp_addr.c words a getaddrinfo() failure.
type nativeError struct {
	host, why string
	temp      bool
}

func (e *nativeError) Error() string {
	return fmt.Sprintf("unable to look up host %s: %s", e.host, e.why)
}

func (e *nativeError) dsn() string {
	if e.temp {
		return "4.4.4"
	}
	return "5.4.4"
}

// nativeAddrs looks host up as the C library would (/etc/hosts, then DNS
// per nsswitch.conf): Postfix's smtp_host_lookup=native. IPv4 comes first.
func nativeAddrs(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	as, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(as) == 0 {
		var de *net.DNSError
		if errors.As(err, &de) && (de.IsTemporary || de.IsTimeout) {
			return nil, &nativeError{host, "Temporary failure in name resolution", true}
		}
		return nil, &nativeError{host, "Name or service not known", false}
	}
	var v4, v6 []net.IP
	for _, a := range as {
		if a.IP.To4() != nil {
			v4 = append(v4, a.IP)
		} else {
			v6 = append(v6, a.IP)
		}
	}
	return append(v4, v6...), nil
}

// query returns the answer records of type qtype for name.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	in, _, err := r.client.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		tcp := &dns.Client{Net: "tcp"}
		in, _, err = tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, &dnsError{name, qtype, dnsRetry}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, &dnsError{name, qtype, dnsNotFound}
	case dns.RcodeServerFailure:
		return nil, &dnsError{name, qtype, dnsRetry}
	default:
		return nil, &dnsError{name, qtype, dnsFail}
	}
	var rrs []dns.RR
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == qtype {
			rrs = append(rrs, rr)
		}
	}
	if len(rrs) == 0 {
		return nil, &dnsError{name, qtype, dnsNoData}
	}
	return rrs, nil
}

// hostAddrs returns the IPv4 then IPv6 addresses of host. When neither
// exists, the A query's error is returned, unless the AAAA one was a
// temporary failure (a soft error must not turn into a bounce).
func (r *resolver) hostAddrs(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	var ips []net.IP
	a, errA := r.query(ctx, host, dns.TypeA)
	for _, rr := range a {
		ips = append(ips, rr.(*dns.A).A)
	}
	aaaa, errAAAA := r.query(ctx, host, dns.TypeAAAA)
	for _, rr := range aaaa {
		ips = append(ips, rr.(*dns.AAAA).AAAA)
	}
	if len(ips) > 0 {
		return ips, nil
	}
	if e, ok := errA.(*dnsError); ok && e.kind == dnsRetry {
		return nil, errA
	}
	if e, ok := errAAAA.(*dnsError); ok && e.kind == dnsRetry {
		return nil, errAAAA
	}
	return nil, errA
}

// target is one address to try.
type target struct {
	name string // MX host, literal host, or the domain for the A fallback
	ip   net.IP
	port int
}

// mxTargets does what Postfix's smtp_domain_addr() does: MX lookup sorted by
// preference (equal preferences shuffled, as RFC 5321 asks), addresses of
// each exchanger, and the domain's own addresses when it has no MX at all.
// At most limit targets are returned (smtp_mx_address_limit).
func (r *resolver) mxTargets(ctx context.Context, domain string, port, limit int) ([]target, error) {
	if r.noDNS {
		// Without DNS there are no MX records: the domain is the host.
		ips, err := r.addrs(ctx, domain)
		if err != nil {
			return nil, err
		}
		return limitTargets(toTargets(domain, ips, port), limit), nil
	}
	rrs, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		e := err.(*dnsError)
		if e.kind != dnsNotFound && e.kind != dnsNoData {
			return nil, err
		}
		// RFC 5321 5.1: no MX means the domain itself is the exchanger.
		ips, err := r.addrs(ctx, domain)
		if err != nil {
			return nil, err
		}
		return limitTargets(toTargets(domain, ips, port), limit), nil
	}
	mxs := make([]*dns.MX, 0, len(rrs))
	for _, rr := range rrs {
		mxs = append(mxs, rr.(*dns.MX))
	}
	if len(mxs) == 1 && mxs[0].Mx == "." {
		return nil, &dnsError{name: domain, qtype: dns.TypeMX, kind: dnsNullMX}
	}
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Preference < mxs[j].Preference })

	var out []target
	var lastErr error
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Mx, ".")
		if host == "" {
			continue
		}
		ips, err := r.addrs(ctx, host)
		if err != nil {
			// An exchanger without addresses is skipped, as long as
			// another one has some.
			lastErr = err
			continue
		}
		out = append(out, toTargets(host, ips, port)...)
		if len(out) >= limit {
			break
		}
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = &dnsError{name: domain, qtype: dns.TypeMX, kind: dnsNoData}
		}
		return nil, lastErr
	}
	return limitTargets(out, limit), nil
}

func toTargets(name string, ips []net.IP, port int) []target {
	ts := make([]target, len(ips))
	for i, ip := range ips {
		ts[i] = target{name: name, ip: ip, port: port}
	}
	return ts
}

func limitTargets(ts []target, limit int) []target {
	if limit > 0 && len(ts) > limit {
		return ts[:limit]
	}
	return ts
}
