package smtpd

import (
	"net/netip"
	"sync"
	"time"
)

// Client rate and concurrency limits, Postfix's anvil(8) kept in the
// server: smtpd_client_connection_count_limit (50 by default),
// smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit,
// smtpd_client_recipient_rate_limit and smtpd_client_auth_rate_limit, per
// client address and service, rates counted per anvil_rate_time_unit.
// Clients in smtpd_client_event_limit_exceptions are not counted. Like
// Postfix's anvil, the counts are per node: a fleet's limit is the sum.

// AnvilConfig holds the limits; 0 turns one off.
type AnvilConfig struct {
	ConnectionCount int
	ConnectionRate  int
	MessageRate     int
	RecipientRate   int
	AuthRate        int
	// RateTimeUnit is anvil_rate_time_unit (0 = 60s).
	RateTimeUnit time.Duration
	// Exceptions is smtpd_client_event_limit_exceptions ($mynetworks by
	// default): clients that no limit applies to.
	Exceptions interface{ Contains(netip.Addr) bool }
}

type anvilEvent int

const (
	evConnect anvilEvent = iota
	evMail
	evRcpt
	evAuth
	nEvents
)

// anvil counts events per client address.
type anvil struct {
	mu      sync.Mutex
	clients map[netip.Addr]*anvilClient
	sweep   time.Time
}

type anvilClient struct {
	conns int
	start time.Time // of the current rate window
	rates [nEvents]int
}

// count records one event (a connect also opens a connection) and
// returns the rate in the current window and the open connections.
func (a *anvil) count(ip netip.Addr, ev anvilEvent, unit time.Duration) (rate, conns int) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.clients == nil {
		a.clients = map[netip.Addr]*anvilClient{}
	}
	// Forget idle clients whose window has passed, at most once a unit,
	// so that the table stays as small as the set of recent clients.
	if now.Sub(a.sweep) >= unit {
		for k, c := range a.clients {
			if c.conns == 0 && now.Sub(c.start) >= unit {
				delete(a.clients, k)
			}
		}
		a.sweep = now
	}
	c := a.clients[ip]
	if c == nil {
		c = &anvilClient{start: now}
		a.clients[ip] = c
	}
	if now.Sub(c.start) >= unit {
		c.start, c.rates = now, [nEvents]int{}
	}
	if ev == evConnect {
		c.conns++
	}
	c.rates[ev]++
	return c.rates[ev], c.conns
}

// disconnect closes a connection that count(evConnect) opened.
func (a *anvil) disconnect(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.clients[ip]; c != nil && c.conns > 0 {
		c.conns--
	}
}

// anvilExempt: the limits do not apply to this session's client.
func (s *session) anvilExempt() bool {
	ex := s.cfg.Anvil.Exceptions
	return !s.ip.IsValid() || ex != nil && ex.Contains(s.ip)
}

// anvilConnect counts the connection and answers the client in place of
// the greeting when it is over a limit; false ends the session.
func (s *session) anvilConnect() bool {
	l := s.cfg.Anvil
	if (l.ConnectionCount <= 0 && l.ConnectionRate <= 0) || s.anvilExempt() {
		return true
	}
	rate, conns := s.srv.anvil.count(s.ip, evConnect, s.anvilUnit())
	s.anvilCounted = true
	switch {
	case l.ConnectionCount > 0 && conns > l.ConnectionCount:
		s.logf("warning: Connection concurrency limit exceeded: %d from %s for service %s", conns, s.namaddr(), s.serviceName())
	case l.ConnectionRate > 0 && rate > l.ConnectionRate:
		s.logf("warning: Connection rate limit exceeded: %d from %s for service %s", rate, s.namaddr(), s.serviceName())
	default:
		return true
	}
	s.errMask |= errPolicy
	s.reply("421 4.7.0 %s Error: too many connections from %s", s.cfg.Hostname, s.addr)
	return false
}

// anvilRate counts a MAIL, RCPT or AUTH and reports whether the client is
// over that event's limit (the caller answers).
func (s *session) anvilRate(ev anvilEvent, limit int, what string) bool {
	if limit <= 0 || s.anvilExempt() {
		return false
	}
	rate, _ := s.srv.anvil.count(s.ip, ev, s.anvilUnit())
	if rate <= limit {
		return false
	}
	s.logf("warning: %s rate limit exceeded: %d from %s for service %s", what, rate, s.namaddr(), s.serviceName())
	s.fail(errPolicy)
	return true
}

func (s *session) anvilUnit() time.Duration {
	if s.cfg.Anvil.RateTimeUnit > 0 {
		return s.cfg.Anvil.RateTimeUnit
	}
	return 60 * time.Second
}

func (s *session) serviceName() string {
	if s.cfg.ServiceName != "" {
		return s.cfg.ServiceName
	}
	return "smtp"
}
