// Package dnsq is the small DNS client behind smtpd's DNS restrictions and
// its client name lookup. It talks to a configurable list of servers (the
// system's resolv.conf by default, a test server in tests), retries on
// timeouts, falls back to TCP when a UDP reply is truncated, and tells a
// permanent "no such name / no such data" apart from a temporary failure,
// because Postfix answers the two differently (5xx versus 450).
package dnsq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Config says where and how to ask.
type Config struct {
	// Servers are "host:port" addresses tried in order; empty means the
	// nameservers of /etc/resolv.conf.
	Servers []string
	// Timeout bounds one try at one server (0 = 5s, resolv.conf's default).
	Timeout time.Duration
	// Attempts is how many rounds over all servers are made (0 = 2).
	Attempts int
	// HostsFile is consulted before DNS by HostName and HostAddrs, the
	// getnameinfo/getaddrinfo look-alikes ("" = no hosts file).
	HostsFile string
}

// Resolver answers queries; it is safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	hosts    *hostsFile
}

// New makes a resolver from cfg.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{servers: cfg.Servers, timeout: cfg.Timeout, attempts: cfg.Attempts}
	if len(r.servers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		switch {
		case errors.Is(err, os.ErrNotExist):
			// The resolver library's default: a server on this host.
			cc = &dns.ClientConfig{Servers: []string{"127.0.0.1"}, Port: "53"}
		case err != nil:
			return nil, fmt.Errorf("dnsq: %w", err)
		}
		for _, s := range cc.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
		}
		if r.timeout == 0 && cc.Timeout > 0 {
			r.timeout = time.Duration(cc.Timeout) * time.Second
		}
		if r.attempts == 0 && cc.Attempts > 0 {
			r.attempts = cc.Attempts
		}
	}
	if len(r.servers) == 0 {
		return nil, errors.New("dnsq: no name servers")
	}
	if r.timeout == 0 {
		r.timeout = 5 * time.Second
	}
	if r.attempts == 0 {
		r.attempts = 2
	}
	if cfg.HostsFile != "" {
		h, err := readHosts(cfg.HostsFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dnsq: %w", err)
		}
		r.hosts = h
	}
	return r, nil
}

// System is the resolver Postfix would use: resolv.conf and /etc/hosts.
func System() (*Resolver, error) {
	return New(Config{HostsFile: "/etc/hosts"})
}

// Error is a failed lookup. Temporary errors (server failure, timeout,
// refusal) may go away; the others are "no such name" (NXDomain) or "the
// name exists but has no records of that type".
type Error struct {
	Name      string
	Type      string // "A", "MX", …
	Temporary bool
	NXDomain  bool
	Reason    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s lookup for %s: %s", e.Type, e.Name, e.Reason)
}

// IsNotFound reports whether err is a permanent "no such name or data".
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Temporary
}

// IsTemporary reports whether err is a failure worth retrying later. Any
// error that is not a *Error counts as temporary: not knowing is not "no".
func IsTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary
	}
	return err != nil
}

// Query sends one question and returns the answer records of that type.
// An empty answer is an *Error, never a nil error with no records.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.Fqdn(name)
	tname := dns.TypeToString[qtype]
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 {
		return nil, &Error{Name: name, Type: tname, NXDomain: true, Reason: "malformed domain name"}
	}
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	var lastErr error = &Error{Name: name, Type: tname, Temporary: true, Reason: "no reply from any server"}
	for round := 0; round < r.attempts; round++ {
		for _, srv := range r.servers {
			if err := ctx.Err(); err != nil {
				return nil, &Error{Name: name, Type: tname, Temporary: true, Reason: err.Error()}
			}
			in, err := r.exchange(ctx, m, srv)
			if err != nil {
				lastErr = &Error{Name: name, Type: tname, Temporary: true, Reason: err.Error()}
				continue
			}
			switch in.Rcode {
			case dns.RcodeSuccess:
				var out []dns.RR
				for _, rr := range in.Answer {
					if rr.Header().Rrtype == qtype {
						out = append(out, rr)
					}
				}
				if len(out) == 0 {
					return nil, &Error{Name: name, Type: tname, Reason: "no data"}
				}
				return out, nil
			case dns.RcodeNameError:
				return nil, &Error{Name: name, Type: tname, NXDomain: true, Reason: "host not found"}
			default:
				// SERVFAIL, REFUSED, …: another server may know better.
				lastErr = &Error{Name: name, Type: tname, Temporary: true, Reason: dns.RcodeToString[in.Rcode]}
			}
		}
	}
	return nil, lastErr
}

// exchange asks one server over UDP, and again over TCP when the reply
// was truncated.
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: 1232}
	in, _, err := c.ExchangeContext(ctx, m, srv)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, srv)
	}
	return in, err
}

// PTR returns the names an address points to, without trailing dots.
func (r *Resolver) PTR(ctx context.Context, ip netip.Addr) ([]string, error) {
	arpa, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, &Error{Name: ip.String(), Type: "PTR", Reason: err.Error()}
	}
	rrs, err := r.Query(ctx, arpa, dns.TypePTR)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(rr.(*dns.PTR).Ptr, "."))
	}
	return out, err
}

// A returns a name's IPv4 addresses.
func (r *Resolver) A(ctx context.Context, name string) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, dns.TypeA)
	var out []netip.Addr
	for _, rr := range rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.A).A.To4()); ok {
			out = append(out, a)
		}
	}
	return out, err
}

// AAAA returns a name's IPv6 addresses.
func (r *Resolver) AAAA(ctx context.Context, name string) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, dns.TypeAAAA)
	var out []netip.Addr
	for _, rr := range rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.AAAA).AAAA.To16()); ok {
			out = append(out, a)
		}
	}
	return out, err
}

// IP returns A then AAAA addresses. It fails only when both lookups do:
// temporarily if either failure was temporary.
func (r *Resolver) IP(ctx context.Context, name string) ([]netip.Addr, error) {
	v4, err4 := r.A(ctx, name)
	v6, err6 := r.AAAA(ctx, name)
	out := append(v4, v6...)
	if len(out) > 0 {
		return out, nil
	}
	if IsTemporary(err4) {
		return nil, err4
	}
	return nil, err6
}

// MX is one mail exchanger.
type MX struct {
	Pref uint16
	Host string // without the trailing dot; "" for a null MX (RFC 7505)
}

// MX returns a domain's mail exchangers in the order the server gave.
func (r *Resolver) MX(ctx context.Context, name string) ([]MX, error) {
	rrs, err := r.Query(ctx, name, dns.TypeMX)
	var out []MX
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, MX{Pref: mx.Preference, Host: strings.TrimSuffix(mx.Mx, ".")})
	}
	return out, err
}

// NullMX reports whether mxs is RFC 7505's "this domain takes no mail".
func NullMX(mxs []MX) bool {
	return len(mxs) == 1 && mxs[0].Host == "" && mxs[0].Pref == 0
}

// NS returns a domain's name servers.
func (r *Resolver) NS(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeNS)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(rr.(*dns.NS).Ns, "."))
	}
	return out, err
}

// TXT returns each TXT record's strings joined, one entry per record.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, err
}

// HostName is getnameinfo with NI_NAMEREQD: the hosts file, then PTR. The
// first name is returned.
func (r *Resolver) HostName(ctx context.Context, ip netip.Addr) (string, error) {
	ip = ip.Unmap()
	if r.hosts != nil {
		if n, ok := r.hosts.byAddr[ip]; ok {
			return n, nil
		}
	}
	names, err := r.PTR(ctx, ip)
	if err != nil {
		return "", err
	}
	return names[0], nil
}

// HostAddrs is getaddrinfo: the hosts file, then A and AAAA records.
func (r *Resolver) HostAddrs(ctx context.Context, name string) ([]netip.Addr, error) {
	if r.hosts != nil {
		if a, ok := r.hosts.byName[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
			return a, nil
		}
	}
	return r.IP(ctx, name)
}

// hostsFile is /etc/hosts, read once: smtpd sessions must not reread it.
type hostsFile struct {
	byAddr map[netip.Addr]string
	byName map[string][]netip.Addr
}

func readHosts(path string) (*hostsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &hostsFile{byAddr: map[netip.Addr]string{}, byName: map[string][]netip.Addr{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if _, ok := h.byAddr[ip]; !ok {
			h.byAddr[ip] = fields[1]
		}
		for _, n := range fields[1:] {
			n = strings.ToLower(n)
			h.byName[n] = append(h.byName[n], ip)
		}
	}
	return h, sc.Err()
}
