// Package rewrite is trivial-rewrite's "resolve": it decides which transport
// delivers a recipient and to which next hop (reference §6, resolve.c), and
// puts addresses into standard form. smtpd asks it whether a domain is an
// authorized destination; the qmgr asks it where to deliver.
package rewrite

import (
	"context"
	"strings"
)

// DomainSet is a host/domain list (mydestination, relay_domains, …). Its
// items may be lookup tables (virtual_mailbox_domains = pgsql:…), so a
// match can fail: that is a temporary failure, never "not ours".
type DomainSet interface {
	Match(ctx context.Context, domain string) (bool, error)
}

// Class is the address class of ADDRESS_CLASS_README.
type Class string

// The address classes, in the order resolve tries them.
const (
	ClassLocal   Class = "local"
	ClassAlias   Class = "alias"
	ClassVirtual Class = "virtual"
	ClassRelay   Class = "relay"
	ClassDefault Class = "default"
)

// Resolver holds the parameters that resolve reads.
type Resolver struct {
	MyDestination         DomainSet // mydestination
	VirtualAliasDomains   DomainSet // virtual_alias_domains: every address must be an alias
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
// of one of our addresses (an address without a domain is local too). A
// table failure counts as not local; LocalDomain reports it.
func (r *Resolver) IsLocalDomain(domain string) bool {
	ok, _ := r.LocalDomain(context.Background(), domain)
	return ok
}

// LocalDomain is IsLocalDomain with mydestination's table failures.
func (r *Resolver) LocalDomain(ctx context.Context, domain string) (bool, error) {
	if domain == "" {
		return true, nil
	}
	if ok, err := match(ctx, r.MyDestination, domain); ok || err != nil {
		return ok, err
	}
	ip, ok := literalAddr(domain)
	return ok && r.Own.Contains(ip), nil
}

// AuthDestination reports whether mail for domain may be accepted from an
// unauthorized client: the domain is ours (any class but default).
func (r *Resolver) AuthDestination(ctx context.Context, domain string) (bool, error) {
	c, err := r.ClassOf(ctx, domain)
	return c != ClassDefault, err
}

// ClassOf is the address class of a domain, in resolve.c's order.
func (r *Resolver) ClassOf(ctx context.Context, domain string) (Class, error) {
	if ok, err := r.LocalDomain(ctx, domain); ok || err != nil {
		return ClassLocal, err
	}
	for _, c := range []struct {
		set   DomainSet
		class Class
	}{{r.VirtualAliasDomains, ClassAlias}, {r.VirtualMailboxDomains, ClassVirtual}, {r.RelayDomains, ClassRelay}} {
		if ok, err := match(ctx, c.set, domain); ok || err != nil {
			return c.class, err
		}
	}
	return ClassDefault, nil
}

// resolveClass finds the transport and next hop that the address class
// gives a recipient, before transport_maps (see transport.go).
func (r *Resolver) resolveClass(ctx context.Context, addr string) (Result, error) {
	domain := Domain(addr)
	class, err := r.ClassOf(ctx, domain)
	if err != nil {
		return Result{Class: class, Domain: domain}, err
	}
	res := Result{Class: class, Domain: domain}
	var spec string
	switch res.Class {
	case ClassAlias:
		// Every address of a virtual alias domain must match
		// virtual_alias_maps in cleanup; one that reaches here did not.
		res.Transport, res.Nexthop = "error", "5.1.1 User unknown in virtual alias table"
		return res, nil
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
	return res, nil
}

// splitTransport splits "transport:nexthop"; the nexthop may itself hold
// colons ("smtp:[10.0.0.1]:2525").
func splitTransport(spec string) (string, string) {
	t, n, _ := strings.Cut(strings.TrimSpace(spec), ":")
	return t, n
}

func match(ctx context.Context, s DomainSet, domain string) (bool, error) {
	if s == nil {
		return false, nil
	}
	return s.Match(ctx, domain)
}
