package matchlist

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Networks is a parsed network list such as mynetworks.
type Networks struct {
	items []netItem
}

type netItem struct {
	prefix netip.Prefix
	negate bool
}

// ParseNetworks parses mynetworks-style items: "127.0.0.0/8", "[::1]/128",
// "192.168.1.1", "!net", "/file/name".
func ParseNetworks(items []string) (*Networks, error) {
	exp, err := expand(items, 0)
	if err != nil {
		return nil, err
	}
	n := &Networks{}
	for _, it := range exp {
		if it.table {
			return nil, &ErrTableNotSupported{Item: it.pattern}
		}
		p, err := parsePrefix(it.pattern)
		if err != nil {
			return nil, err
		}
		n.items = append(n.items, netItem{prefix: p, negate: it.negate})
	}
	return n, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network list item %q: bad address", s)
	}
	a = a.Unmap()
	if !hasBits {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(a.String() + "/" + bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network list item %q: bad prefix length", s)
	}
	// Postfix refuses host bits, since they usually mean a typo.
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("non-null host address bits in %q, perhaps you should use %q instead",
			s, p.Masked().String())
	}
	return p, nil
}

// Contains reports whether ip matches the list: the first matching item
// decides, and an excluded ("!") match means no.
func (n *Networks) Contains(ip netip.Addr) bool {
	if n == nil || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, it := range n.items {
		if it.prefix.Contains(ip) {
			return !it.negate
		}
	}
	return false
}

// ContainsIP is Contains for a net.IP.
func (n *Networks) ContainsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	return n.Contains(a)
}
