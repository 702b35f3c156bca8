package config

import (
	"net"
	"testing"
)

type ipNetAddr = net.IPNet

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip // keep the host part, as net.InterfaceAddrs does
	return n
}

func addrList(ns ...*net.IPNet) []net.Addr {
	out := make([]net.Addr, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}
