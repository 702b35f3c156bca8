package rewrite

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// OwnAddrs is own_inet_addr/proxy_inet_addr: the IP addresses this node
// receives mail on. A domain literal naming one of them ("user@[192.0.2.1]")
// is a local destination, as in Postfix's resolve_local.
type OwnAddrs struct {
	all   bool // inet_interfaces = all: every interface address, looked up when asked
	addrs map[netip.Addr]bool
}

// ParseOwnAddrs reads inet_interfaces and proxy_interfaces: "all",
// "loopback-only", IP addresses and host names (resolved once, here).
func ParseOwnAddrs(ctx context.Context, inet, proxy []string) (*OwnAddrs, error) {
	o := &OwnAddrs{addrs: map[netip.Addr]bool{}}
	add := func(param, item string) error {
		switch strings.ToLower(item) {
		case "all":
			if param == "inet_interfaces" {
				o.all = true
				return nil
			}
		case "loopback-only":
			if param == "inet_interfaces" {
				o.addrs[netip.MustParseAddr("127.0.0.1")] = true
				o.addrs[netip.IPv6Loopback()] = true
				return nil
			}
		}
		host := strings.TrimSuffix(strings.TrimPrefix(item, "["), "]")
		if ip, err := netip.ParseAddr(host); err == nil {
			o.addrs[ip.Unmap()] = true
			return nil
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("%s: %s: host not found: %w", param, item, err)
		}
		for _, ip := range ips {
			o.addrs[ip.Unmap()] = true
		}
		return nil
	}
	for _, item := range inet {
		if err := add("inet_interfaces", item); err != nil {
			return nil, err
		}
	}
	for _, item := range proxy {
		if err := add("proxy_interfaces", item); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Contains reports whether ip is one of ours.
func (o *OwnAddrs) Contains(ip netip.Addr) bool {
	if o == nil {
		return false
	}
	ip = ip.Unmap()
	if o.addrs[ip] {
		return true
	}
	return o.all && InterfaceAddr(ip)
}

// InterfaceAddr reports whether ip is one of this host's interface
// addresses (read at each call: interfaces come and go).
func InterfaceAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// literalAddr parses a domain literal "[192.0.2.1]" or "[ipv6:2001:db8::1]".
func literalAddr(domain string) (netip.Addr, bool) {
	if len(domain) < 3 || domain[0] != '[' || domain[len(domain)-1] != ']' {
		return netip.Addr{}, false
	}
	s := domain[1 : len(domain)-1]
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
		ip, err := netip.ParseAddr(s)
		return ip, err == nil && ip.Is6()
	}
	ip, err := netip.ParseAddr(s)
	return ip, err == nil && ip.Is4()
}
