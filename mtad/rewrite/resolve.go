// Package rewrite is trivial-rewrite's "resolve": it decides which transport
// delivers a recipient and to which next hop (reference §6, resolve.c), and
// puts addresses into standard form. smtpd asks it whether a domain is an
// authorized destination; the qmgr asks it where to deliver.
package rewrite

import (
	"strings"
)

// DomainSet is a host/domain list (mydestination, relay_domains, …).
type DomainSet interface {
	Contains(domain string) bool
}

// Class is the address class of ADDRESS_CLASS_README.
type Class string

// The address classes, in the order resolve tries them.
const (
	ClassLocal   Class = "local"
	ClassVirtual Class = "virtual"
	ClassRelay   Class = "relay"
	ClassDefault Class = "default"
)

// Resolver holds the parameters that resolve reads.
type Resolver struct {
	MyDestination         DomainSet // mydestination
	VirtualMailboxDomains DomainSet // virtual_mailbox_domains
	RelayDomains          DomainSet // relay_domains
	LocalTransport        string    // local_transport, e.g. "local:$myhostname" expanded
	VirtualTransport      string    // virtual_transport
	RelayTransport        string    // relay_transport
	DefaultTransport      string    // default_transport
	Relayhost             string    // relayhost
	MyOrigin              string    // myorigin, for unqualified addresses
	// Transport holds transport_maps; nil: none (see transport.go).
	Transport *TransportMaps
	// Own holds inet_interfaces and proxy_interfaces: a domain literal of
	// one of these addresses is local. nil: no literal is local.
	Own      *OwnAddrs
	MyDomain string // mydomain, for append_dot_mydomain

	// The standard-form switches of trivial-rewrite (reference §6.A). The
	// zero value turns each off; Postfix's defaults are yes, yes, yes and
	// (at compatibility_level >= 1) no.
	SwapBangpath      bool // swap_bangpath: site!user → user@site
	AllowPercentHack  bool // allow_percent_hack: user%domain → user@domain
	AppendAtMyorigin  bool // append_at_myorigin: user → user@$myorigin
	AppendDotMydomain bool // append_dot_mydomain: user@host → user@host.$mydomain
}

// Result says where one recipient goes.
type Result struct {
	Class     Class
	Transport string // transport name: local, virtual, relay, smtp, …
	Nexthop   string // for smtp/relay: "[host]:port", "host" or the domain
	Domain    string // the recipient's domain, lowercased
}

// Domain returns the lowercased domain of addr ("" when there is none),
// without a trailing dot.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
}

// IsLocalDomain reports whether domain is in mydestination or is a literal
// of one of our addresses (an address without a domain is local too).
func (r *Resolver) IsLocalDomain(domain string) bool {
	if domain == "" || contains(r.MyDestination, domain) {
		return true
	}
	ip, ok := literalAddr(domain)
	return ok && r.Own.Contains(ip)
}

// AuthDestination reports whether mail for domain may be accepted from an
// unauthorized client: the domain is ours (any class but default).
func (r *Resolver) AuthDestination(domain string) bool {
	return r.classOf(domain) != ClassDefault
}

func (r *Resolver) classOf(domain string) Class {
	switch {
	case r.IsLocalDomain(domain):
		return ClassLocal
	case contains(r.VirtualMailboxDomains, domain):
		return ClassVirtual
	case contains(r.RelayDomains, domain):
		return ClassRelay
	}
	return ClassDefault
}

// resolveClass finds the transport and next hop that the address class
// gives a recipient, before transport_maps (see transport.go).
func (r *Resolver) resolveClass(addr string) Result {
	domain := Domain(addr)
	res := Result{Class: r.classOf(domain), Domain: domain}
	var spec string
	switch res.Class {
	case ClassLocal:
		spec = r.LocalTransport
	case ClassVirtual:
		spec = r.VirtualTransport
	case ClassRelay:
		spec = r.RelayTransport
	default:
		spec = r.DefaultTransport
	}
	res.Transport, res.Nexthop = splitTransport(spec)
	if res.Nexthop == "" {
		switch res.Class {
		case ClassRelay, ClassDefault:
			// relayhost applies to the relay and default classes alike
			// (resolve.c: the nexthop of relay_transport is relayhost too).
			if r.Relayhost != "" {
				res.Nexthop = r.Relayhost
			} else {
				res.Nexthop = domain
			}
		default:
			res.Nexthop = domain
		}
	}
	return res
}

// splitTransport splits "transport:nexthop"; the nexthop may itself hold
// colons ("smtp:[10.0.0.1]:2525").
func splitTransport(spec string) (string, string) {
	t, n, _ := strings.Cut(strings.TrimSpace(spec), ":")
	return t, n
}

func contains(s DomainSet, domain string) bool {
	return s != nil && s.Contains(domain)
}
