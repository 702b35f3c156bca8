// Package lmtp is the lmtp delivery transport: Postfix's lmtp(8), speaking
// RFC 2033 to a mailbox server such as Dovecot over TCP or a UNIX socket.
// LHLO, MAIL and RCPT as in SMTP, but after the final dot the server answers
// once per accepted recipient, so one recipient can be saved while another
// is over quota. Commands go out in one write when the server offers
// PIPELINING, and idle sessions are reused for the next delivery to the
// same next hop.
//
// The protocol is spoken here rather than through go-smtp's LMTP client:
// v0.25.1 sends one command at a time (no pipelining) and hands the replies
// after DATA back keyed by address, which loses the order and merges
// recipients that appear twice.
package lmtp

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/client"
	"sqlmta/mtad/transport/connpool"
)

// Config is the lmtp transport's part of main.cf, as plain values.
type Config struct {
	LHLOName string // lmtp_lhlo_name (= $myhostname)
	// Hostname names the server of a UNIX socket in the log, as Postfix
	// does: relay=myhostname[/path/to/socket].
	Hostname string
	Port     int // lmtp_tcp_port: for "host" and "inet:host" without a port; 24
	// QueueDirectory anchors a relative socket path, so Postfix's
	// "lmtp:unix:private/dovecot-lmtp" keeps working; /var/spool/postfix.
	QueueDirectory  string
	ConnectTimeout  time.Duration // lmtp_connect_timeout; 0: the operating system's
	LHLOTimeout     time.Duration // lmtp_lhlo_timeout: greeting and LHLO, 300s
	MailTimeout     time.Duration // lmtp_mail_timeout, 300s
	RcptTimeout     time.Duration // lmtp_rcpt_timeout, 300s
	DataInitTimeout time.Duration // lmtp_data_init_timeout, 120s
	DataXferTimeout time.Duration // lmtp_data_xfer_timeout: per write of the body, 180s
	DataDoneTimeout time.Duration // lmtp_data_done_timeout: all replies after the dot, 600s
	RsetTimeout     time.Duration // lmtp_rset_timeout, 20s
	QuitTimeout     time.Duration // lmtp_quit_timeout, 300s (capped: nobody waits for it)
	MaxIdlePerDest  int           // idle sessions kept per next hop; 4; <0 disables reuse
	IdleTimeout     time.Duration // lmtp_connection_cache_time_limit, 2s
}

func (c *Config) setDefaults() {
	if c.LHLOName == "" {
		c.LHLOName = "localhost"
	}
	if c.Hostname == "" {
		c.Hostname = c.LHLOName
	}
	if c.Port == 0 {
		c.Port = 24
	}
	if c.QueueDirectory == "" {
		c.QueueDirectory = "/var/spool/postfix"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LHLOTimeout, 300*time.Second)
	def(&c.MailTimeout, 300*time.Second)
	def(&c.RcptTimeout, 300*time.Second)
	def(&c.DataInitTimeout, 120*time.Second)
	def(&c.DataXferTimeout, 180*time.Second)
	def(&c.DataDoneTimeout, 600*time.Second)
	def(&c.RsetTimeout, 20*time.Second)
	def(&c.QuitTimeout, 300*time.Second)
	def(&c.IdleTimeout, 2*time.Second)
	if c.MaxIdlePerDest == 0 {
		c.MaxIdlePerDest = 4
	}
}

// Transport delivers over LMTP. It is safe for concurrent use.
type Transport struct {
	cfg  Config
	pool *connpool.Pool[*session]
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport; zero Config fields take Postfix's defaults.
func New(cfg Config) *Transport {
	cfg.setDefaults()
	return &Transport{cfg: cfg, pool: connpool.New[*session](cfg.MaxIdlePerDest, cfg.IdleTimeout)}
}

// Close ends the idle cached sessions. Deliveries in progress finish but
// their sessions are not cached afterwards.
func (t *Transport) Close() error {
	t.pool.Close()
	return nil
}

// Idle is the number of cached sessions for nexthop (tests, metrics).
func (t *Transport) Idle(nexthop string) int {
	dest, err := parseNexthop(nexthop, &t.cfg)
	if err != nil {
		return 0
	}
	return t.pool.Idle(dest.key())
}

// destination is a parsed next hop: a UNIX socket or a TCP host and port.
type destination struct {
	unix string // socket path; "" for TCP
	host string
	port int
}

func (d destination) key() string {
	if d.unix != "" {
		return "unix:" + d.unix
	}
	return "inet:" + strings.ToLower(d.host) + ":" + strconv.Itoa(d.port)
}

// parseNexthop reads lmtp(8)'s destinations: "unix:/path" (a relative path
// is under the queue directory), "inet:host", "inet:host:port",
// "inet:[addr]:port", and the same without "inet:". LMTP looks up no MX
// records, so "[host]" and "host" mean the same.
func parseNexthop(nexthop string, cfg *Config) (destination, error) {
	s := strings.TrimSpace(nexthop)
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		if rest == "" {
			return destination{}, fmt.Errorf("bad LMTP destination %q: empty socket path", nexthop)
		}
		if !filepath.IsAbs(rest) {
			rest = filepath.Join(cfg.QueueDirectory, rest)
		}
		return destination{unix: rest}, nil
	}
	s = strings.TrimPrefix(s, "inet:")
	d := destination{port: cfg.Port}
	portText := ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return d, fmt.Errorf("bad LMTP destination %q: missing ']'", nexthop)
		}
		d.host, portText = s[1:end], s[end+1:]
		if len(d.host) > 5 && strings.EqualFold(d.host[:5], "ipv6:") {
			d.host = d.host[5:]
		}
		if portText != "" {
			if portText[0] != ':' {
				return d, fmt.Errorf("bad LMTP destination %q", nexthop)
			}
			portText = portText[1:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		d.host, portText = s[:i], s[i+1:]
	} else {
		d.host = s
	}
	if d.host == "" {
		return d, fmt.Errorf("bad LMTP destination %q: empty host", nexthop)
	}
	if portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil {
			if p, err = net.LookupPort("tcp", portText); err != nil {
				return d, fmt.Errorf("bad LMTP destination %q: unknown service %q", nexthop, portText)
			}
		}
		if p <= 0 || p > 65535 {
			return d, fmt.Errorf("bad LMTP destination %q: bad port", nexthop)
		}
		d.port = p
	}
	return d, nil
}

// outcome is a status code with its text, as the log and the bounce show it.
type outcome struct {
	dsn, text string
}

// Verifies marks the transport as one that handles address verification
// probes (transport.Verifier): they end after RCPT TO.
func (t *Transport) Verifies() {}

// Deliver implements transport.Transport.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	b := client.NewBatch(d)
	if len(b.Pending) == 0 {
		return b.Res
	}
	dest, err := parseNexthop(d.Nexthop, &t.cfg)
	if err != nil {
		// A configuration error: keep the mail until the admin fixes it.
		b.SetAll(b.Pending, "4.3.5", err.Error(), "none", 0, time.Time{})
		return b.Res
	}
	key := dest.key()

	// A cached session first. If it turns out dead before MAIL FROM was
	// accepted, nothing happened yet: try the next one, then a fresh one.
	for {
		s, ok := t.pool.Get(key)
		if !ok {
			break
		}
		s.uses++
		early, healthy := s.transact(ctx, b, time.Now())
		if early {
			s.close()
			continue
		}
		t.release(s, healthy)
		return b.Res
	}
	s, o, relay := t.connect(ctx, dest, key)
	if s == nil {
		b.SetAll(b.Pending, o.dsn, o.text, relay, 0, time.Time{})
		return b.Res
	}
	s.uses = 1
	_, healthy := s.transact(ctx, b, time.Now())
	t.release(s, healthy)
	return b.Res
}

// release caches a healthy session, clean (RSET after a transaction that
// did not finish), or ends it.
func (t *Transport) release(s *session, healthy bool) {
	if !healthy {
		s.close()
		return
	}
	if s.dirty {
		if code, _, err := s.command(t.cfg.RsetTimeout, "RSET"); err != nil || code != 250 {
			s.close()
			return
		}
		s.dirty = false
	}
	t.pool.Put(s.key, s)
}

// connect opens a session: the socket, or each address of the host in
// turn until one answers; then greeting and LHLO. On failure it returns
// the outcome and the relay to log ("none" when nothing answered).
func (t *Transport) connect(ctx context.Context, dest destination, key string) (*session, outcome, string) {
	dialer := net.Dialer{Timeout: t.cfg.ConnectTimeout}
	if dest.unix != "" {
		namaddr := fmt.Sprintf("%s[%s]", t.cfg.Hostname, dest.unix)
		c, err := dialer.DialContext(ctx, "unix", dest.unix)
		if err != nil {
			return nil, outcome{"4.4.1", fmt.Sprintf("connect to %s: %s", dest.unix, client.DialErrText(err))}, "none"
		}
		return t.hello(c, key, namaddr, namaddr)
	}
	ips, err := lookupHost(ctx, dest.host)
	if err != nil {
		return nil, outcome{"4.4.3", fmt.Sprintf("Host or domain name not found. Name service error for name=%s type=A: %v", dest.host, err)}, "none"
	}
	var last outcome
	for _, ip := range ips {
		namaddr := fmt.Sprintf("%s[%s]", dest.host, ip)
		relay := fmt.Sprintf("%s:%d", namaddr, dest.port)
		c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(dest.port)))
		if err != nil {
			last = outcome{"4.4.1", fmt.Sprintf("connect to %s: %s", relay, client.DialErrText(err))}
			continue
		}
		return t.hello(c, key, namaddr, relay)
	}
	return nil, last, "none"
}

// lookupHost returns the addresses of host (itself when it is an address).
func lookupHost(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips, nil
}
