// Package testdns runs a small authoritative-style DNS server on loopback
// for tests: the test sets the records, names it does not know are
// NXDOMAIN, and a name can be made to fail (SERVFAIL) or to go unanswered
// (a timeout). It serves UDP and TCP on the same port and stops when the
// test ends, so no test needs the internet.
package testdns

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu      sync.Mutex
	records map[string][]dns.RR // lowercased FQDN → records of every type
	fail    map[string]bool     // answer SERVFAIL
	silent  map[string]bool     // never answer
	queries []string            // "name TYPE", in arrival order
}

// Start runs a server on 127.0.0.1 at a free port.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0")
}

// StartOn runs a server at addr ("ip:port"; port 0 picks one free for both
// UDP and TCP). A fixed port 53 lets a resolv.conf point at it.
func StartOn(t testing.TB, addr string) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, fail: map[string]bool{}, silent: map[string]bool{}}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for try := 0; try < 20; try++ {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("testdns: %v", err)
		}
		// TCP on the same port; a port picked for UDP may be taken for TCP.
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if !strings.HasSuffix(addr, ":0") {
			t.Fatalf("testdns: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func(srv *dns.Server) {
			defer wg.Done()
			srv.ActivateAndServe()
		}(srv)
		<-started
	}
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
		wg.Wait()
	})
	return s
}

// Addr is the server's "ip:port".
func (s *Server) Addr() string { return s.addr }

// Add adds records in zone-file form, e.g. "mail.example.test. A 192.0.2.1"
// or "example.test. MX 10 mail.example.test."; names are absolute whether
// or not they end in a dot. The TTL defaults to 300.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR("$ORIGIN .\n$TTL 300\n" + text)
		if err != nil || rr == nil {
			t.Fatalf("testdns: bad record %q: %v", text, err)
		}
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}

// AddPTR adds the reverse record of ip.
func (s *Server) AddPTR(t testing.TB, ip, name string) {
	t.Helper()
	arpa, err := dns.ReverseAddr(netip.MustParseAddr(ip).String())
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	s.Add(t, arpa+" PTR "+dns.Fqdn(name))
}

// ServFail makes every query for name answer SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[strings.ToLower(dns.Fqdn(name))] = true
}

// Timeout makes every query for name go unanswered.
func (s *Server) Timeout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[strings.ToLower(dns.Fqdn(name))] = true
}

// Queries returns the questions received so far, as "name TYPE" with the
// name lowercased and without its trailing dot.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries = append(s.queries, strings.TrimSuffix(name, ".")+" "+dns.TypeToString[q.Qtype])
	silent, fail := s.silent[name], s.fail[name]
	all := s.records[name]
	s.mu.Unlock()
	if silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case len(all) == 0 && !s.hasBelow(name):
		m.Rcode = dns.RcodeNameError
	default:
		for _, rr := range all {
			t := rr.Header().Rrtype
			if t == q.Qtype || t == dns.TypeCNAME && q.Qtype != dns.TypeCNAME {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	size := dns.MinMsgSize
	if w.RemoteAddr().Network() == "tcp" {
		size = dns.MaxMsgSize
	} else if opt := req.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
	}
	m.Truncate(size)
	w.WriteMsg(m)
}

// hasBelow: a name with records under it exists (an empty non-terminal),
// so it answers "no data" rather than NXDOMAIN.
func (s *Server) hasBelow(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.records {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}
