// Package smtp is the smtp delivery transport: it relays a message to the
// nexthop (relayhost, a transport-map destination or the recipient domain's
// MX hosts), the way Postfix's smtp(8) does — MX then A fallback, STARTTLS
// when offered, SMTP AUTH for servers that ask for it (sasl.go),
// per-recipient results, the next MX host on a temporary failure,
// PIPELINING, and a cache of idle sessions per destination.
//
// github.com/emersion/go-smtp's client does the greeting and EHLO (with its
// HELO fallback); the mail transaction is ours (proto.go), because go-smtp
// cannot pipeline. This package adds what an MTA needs around it: routing,
// PIPELINING, Postfix's wording of every failure, and connection reuse.
package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/client"
)

// Config is the smtp transport's part of main.cf, as plain values.
type Config struct {
	HeloName        string        // smtp_helo_name (= $myhostname)
	Port            int           // default port of MX hosts and bare nexthops; 25
	DNSServer       string        // "host:port"; default: first nameserver in /etc/resolv.conf
	ConnectTimeout  time.Duration // smtp_connect_timeout, 30s
	HeloTimeout     time.Duration // smtp_helo_timeout (greeting, EHLO, STARTTLS), 300s
	MailTimeout     time.Duration // smtp_mail_timeout, 300s
	RcptTimeout     time.Duration // smtp_rcpt_timeout, 300s
	DataInitTimeout time.Duration // smtp_data_init_timeout, 120s
	RsetTimeout     time.Duration // smtp_rset_timeout, 20s
	DataXferTimeout time.Duration // smtp_data_xfer_timeout, per write of the body, 180s
	DataDoneTimeout time.Duration // smtp_data_done_timeout, 600s
	MaxIdlePerDest  int           // idle sessions kept per destination; 4; <0 disables reuse
	IdleTimeout     time.Duration // smtp_connection_cache_time_limit, 2s
	// TLSLevel is smtp_tls_security_level: "none" (or ""): never STARTTLS;
	// "may": STARTTLS when offered, no verification, plaintext when it
	// fails; "encrypt": STARTTLS or no delivery (no verification either).
	TLSLevel       string
	MXAddressLimit int // smtp_mx_address_limit, 5
	MXSessionLimit int // smtp_mx_session_limit, 2
	// NoDNS is disable_dns_lookups=yes or smtp_dns_support_level=disabled:
	// no MX lookups, host addresses from the system resolver (/etc/hosts).
	NoDNS bool
	// HostLookup is smtp_host_lookup: "dns" (default) and/or "native".
	HostLookup []string
	// BindAddress and BindAddress6 are smtp_bind_address(6): the local
	// address of connections to IPv4 and IPv6 servers (a host with several
	// addresses sends from the one its SPF records and reputation name).
	BindAddress, BindAddress6 net.IP
	// SASL is SMTP AUTH towards servers that ask for it (smtp_sasl_*).
	SASL SASLConfig
	// Warnf receives the client's warnings (Postfix's wording, without
	// the "warning: " prefix); nil drops them.
	Warnf func(format string, args ...any)
}

func (c *Config) setDefaults() {
	if c.HeloName == "" {
		c.HeloName = "localhost"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Port == 0 {
		c.Port = 25
	}
	def(&c.ConnectTimeout, 30*time.Second)
	def(&c.HeloTimeout, 300*time.Second)
	def(&c.MailTimeout, 300*time.Second)
	def(&c.RcptTimeout, 300*time.Second)
	def(&c.DataInitTimeout, 120*time.Second)
	def(&c.RsetTimeout, 20*time.Second)
	def(&c.DataXferTimeout, 180*time.Second)
	def(&c.DataDoneTimeout, 600*time.Second)
	def(&c.IdleTimeout, 2*time.Second)
	if c.MaxIdlePerDest == 0 {
		c.MaxIdlePerDest = 4
	}
	if c.MXAddressLimit <= 0 {
		c.MXAddressLimit = 5
	}
	if c.MXSessionLimit <= 0 {
		c.MXSessionLimit = 2
	}
}

// Transport delivers over SMTP. It is safe for concurrent use.
type Transport struct {
	cfg  Config
	dns  *resolver
	pool *pool
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport; zero Config fields take Postfix's defaults.
func New(cfg Config) *Transport {
	cfg.setDefaults()
	return &Transport{cfg: cfg, dns: newResolver(cfg.DNSServer, cfg.NoDNS, cfg.HostLookup), pool: newPool(cfg.MaxIdlePerDest, cfg.IdleTimeout)}
}

// Verifies marks the transport as one that handles address verification
// probes (transport.Verifier): they end after RCPT TO.
func (t *Transport) Verifies() {}

// Close closes the idle cached sessions (QUIT). Deliveries in progress finish
// but their sessions are not cached afterwards.
func (t *Transport) Close() error {
	t.pool.close()
	return nil
}

// destination is a parsed nexthop.
type destination struct {
	host   string
	port   int
	noMX   bool // "[host]": no MX lookup
	source string
}

// parseNexthop reads "[host]:port", "[host]", "host:port" and "domain"
// ("[ipv6:addr]" too). A port may be a service name.
func parseNexthop(nexthop string, defPort int) (destination, error) {
	d := destination{port: defPort, source: nexthop}
	s := strings.TrimSpace(nexthop)
	if s == "" {
		return d, errors.New("empty nexthop")
	}
	rest := ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return d, fmt.Errorf("bad nexthop %q: missing ']'", nexthop)
		}
		d.host, rest, d.noMX = s[1:end], s[end+1:], true
		if len(d.host) > 5 && strings.EqualFold(d.host[:5], "ipv6:") {
			d.host = d.host[5:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		d.host, rest = s[:i], s[i:]
	} else {
		d.host = s
	}
	if rest != "" {
		if rest[0] != ':' || len(rest) == 1 {
			return d, fmt.Errorf("bad nexthop %q", nexthop)
		}
		svc := rest[1:]
		p, err := strconv.Atoi(svc)
		if err != nil {
			if p, err = net.LookupPort("tcp", svc); err != nil {
				return d, fmt.Errorf("bad nexthop %q: unknown service %q", nexthop, svc)
			}
		}
		if p <= 0 || p > 65535 {
			return d, fmt.Errorf("bad nexthop %q: bad port", nexthop)
		}
		d.port = p
	}
	d.host = strings.TrimSuffix(d.host, ".")
	if d.host == "" {
		return d, fmt.Errorf("bad nexthop %q: empty host", nexthop)
	}
	return d, nil
}

// outcome is one failure or success text with its status code.
type outcome struct {
	dsn, text string
}

func (o outcome) soft() bool { return strings.HasPrefix(o.dsn, "4") }

// delivery is the state of one Deliver call.
type delivery struct {
	d       *transport.Delivery
	start   time.Time
	res     []transport.Result
	pending []int // indexes of recipients without a result yet
}

func (dl *delivery) set(i int, o outcome, relay string, uses int, setupDone time.Time) {
	r := dl.d.Recipients[i]
	now := time.Now()
	setup, xmit := now.Sub(dl.start), time.Duration(0)
	if !setupDone.IsZero() {
		setup, xmit = setupDone.Sub(dl.start), now.Sub(setupDone)
	}
	dl.res[i] = transport.Result{
		RecipientID: r.ID, Status: transport.StatusForDSN(o.dsn), DSN: o.dsn, Text: o.text,
		Relay: relay, ConnUse: uses, ConnSetup: setup, Transmit: xmit,
	}
}

// failPending gives every pending recipient the same outcome.
func (dl *delivery) failPending(o outcome, relay string, uses int, setupDone time.Time) {
	for _, i := range dl.pending {
		dl.set(i, o, relay, uses, setupDone)
	}
	dl.pending = nil
}

// Deliver implements transport.Transport.
func (t *Transport) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	dl := &delivery{d: d, start: time.Now(), res: make([]transport.Result, len(d.Recipients))}
	for i, r := range d.Recipients {
		if strings.ContainsAny(r.Address, "\r\n<>") {
			dl.set(i, outcome{"5.1.3", fmt.Sprintf("bad address syntax: %q", r.Address)}, "none", 0, time.Time{})
			continue
		}
		dl.pending = append(dl.pending, i)
	}
	if len(dl.pending) == 0 {
		return dl.res
	}
	dest, err := parseNexthop(d.Nexthop, t.cfg.Port)
	if err != nil {
		// A configuration error: keep the mail until the admin fixes it.
		dl.failPending(outcome{"4.3.5", err.Error()}, "none", 0, time.Time{})
		return dl.res
	}
	key := strings.ToLower(dest.host) + "|" + strconv.Itoa(dest.port) + "|" + strconv.FormatBool(dest.noMX)
	auth := t.newSASLLookup(d.QueueID, d.Sender, d.Nexthop)

	// A cached session first. If it turns out dead before MAIL FROM was
	// accepted, nothing happened yet: fall through to a fresh connection.
	for {
		s := t.reuse(ctx, key, auth)
		if s == nil {
			break
		}
		s.uses++
		early, ok := t.transact(ctx, s, dl, true, time.Now())
		if early {
			s.close()
			continue
		}
		t.release(s, ok)
		return dl.res
	}

	var targets []target
	if dest.noMX {
		ips, err := t.dns.addrs(ctx, dest.host)
		if err == nil {
			targets = limitTargets(toTargets(dest.host, ips, dest.port), t.cfg.MXAddressLimit)
		}
		if err != nil {
			t.dnsFail(dl, err)
			return dl.res
		}
	} else {
		targets, err = t.dns.mxTargets(ctx, dest.host, dest.port, t.cfg.MXAddressLimit)
		if err != nil {
			t.dnsFail(dl, err)
			return dl.res
		}
	}

	var last outcome
	lastRelay := "none"
	sessions := 0
	for i, tg := range targets {
		if len(dl.pending) == 0 || sessions >= t.cfg.MXSessionLimit {
			break
		}
		final := i == len(targets)-1 || sessions+1 >= t.cfg.MXSessionLimit
		s, o, relay := t.connect(ctx, tg, key, auth)
		if s == nil {
			last, lastRelay = o, relay
			if relay != "none" {
				sessions++
				// Only a temporary refusal sends us to the next host.
				if !o.soft() || final {
					dl.failPending(o, relay, 0, time.Time{})
				}
			}
			continue
		}
		sessions++
		s.uses = 1
		_, ok := t.transact(ctx, s, dl, final, time.Now())
		if s.lastSoft.dsn != "" {
			last, lastRelay = s.lastSoft, s.namaddrport
		}
		t.release(s, ok)
	}
	if len(dl.pending) > 0 {
		if last.dsn == "" {
			last = outcome{"4.4.1", "no route to " + dest.host}
		}
		dl.failPending(last, lastRelay, 0, time.Time{})
	}
	return dl.res
}

// reuse takes a cached session for key that may carry this delivery: with
// SMTP AUTH, one whose credentials are the ones this mail would use. The
// choice is made outside the pool's lock, since it may look up tables.
func (t *Transport) reuse(ctx context.Context, key string, auth *saslLookup) *session {
	for {
		var pick *session
		for _, s := range t.pool.candidates(key) {
			if auth.reusable(ctx, s) {
				pick = s
				break
			}
		}
		if pick == nil {
			return nil
		}
		if t.pool.take(pick) {
			return pick
		}
		// Another delivery took it meanwhile, or it timed out: look again.
	}
}

func (t *Transport) warnf(format string, args ...any) {
	if t.cfg.Warnf != nil {
		t.cfg.Warnf(format, args...)
	}
}

func (t *Transport) dnsFail(dl *delivery, err error) {
	var de interface{ dsn() string }
	if errors.As(err, &de) {
		dl.failPending(outcome{de.dsn(), err.Error()}, "none", 0, time.Time{})
		return
	}
	dl.failPending(outcome{"4.4.3", err.Error()}, "none", 0, time.Time{})
}

// session is one established SMTP connection.
type session struct {
	key         string
	c           *gosmtp.Client // greeting, EHLO and the extensions
	p           *proto         // everything after EHLO
	tc          *trackConn
	host        string      // the server's name: an MX host, the nexthop's host
	namaddr     string      // "host[ip]"
	namaddrport string      // "host[ip]:port"
	tls         bool        // after STARTTLS
	authOffered bool        // the server offered AUTH (and the client may use it)
	creds       credentials // what AUTH succeeded with; zero: no AUTH
	uses        int
	dirty       bool    // a transaction was started and not finished: RSET before reuse
	lastSoft    outcome // last temporary failure kept for the next host
	cfg         *Config
	idleTimer   *time.Timer
}

func (s *session) close() { _ = s.c.Close() }

// quit says goodbye politely, without waiting long for it.
func (s *session) quit() {
	_, _ = s.p.cmd(2*time.Second, "QUIT")
	_ = s.c.Close()
}

// connect dials tg and runs greeting, EHLO, (opportunistic) STARTTLS and
// AUTH. On failure it returns the outcome and the relay to log: "none" when
// no connection was made, host[ip]:port when the server refused to talk.
func (t *Transport) connect(ctx context.Context, tg target, key string, auth *saslLookup) (*session, outcome, string) {
	level := t.cfg.TLSLevel
	s, o, relay, tlsFailed := t.connectOnce(ctx, tg, key, level, auth)
	if tlsFailed && level == TLSMay {
		// Like Postfix at security level "may": a failed handshake is
		// retried in plaintext.
		s, o, relay, _ = t.connectOnce(ctx, tg, key, TLSNone, auth)
	}
	return s, o, relay
}

// The smtp_tls_security_level values this client implements.
const (
	TLSNone    = "none"
	TLSMay     = "may"
	TLSEncrypt = "encrypt"
)

func (t *Transport) connectOnce(ctx context.Context, tg target, key string, level string, auth *saslLookup) (*session, outcome, string, bool) {
	addr := net.JoinHostPort(tg.ip.String(), strconv.Itoa(tg.port))
	namaddr := fmt.Sprintf("%s[%s]", tg.name, tg.ip)
	namaddrport := fmt.Sprintf("%s:%d", namaddr, tg.port)
	dialer := net.Dialer{Timeout: t.cfg.ConnectTimeout}
	if tg.ip.To4() != nil && t.cfg.BindAddress != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: t.cfg.BindAddress}
	} else if tg.ip.To4() == nil && t.cfg.BindAddress6 != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: t.cfg.BindAddress6}
	}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, outcome{"4.4.1", fmt.Sprintf("connect to %s:%d: %s", namaddr, tg.port, client.DialErrText(err))}, "none", false
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	tc := &trackConn{Conn: raw, xfer: t.cfg.DataXferTimeout}
	s := &session{key: key, tc: tc, host: tg.name, namaddr: namaddr, namaddrport: namaddrport, cfg: &t.cfg}
	refused := func(e *gosmtp.SMTPError, greeting bool) outcome {
		dsn := replyDSN(e.Code, e.EnhancedCode)
		if greeting && dsn[0] == '5' {
			// smtp_skip_5xx_greeting=yes: a 5xx banner is not a verdict
			// on the mail, try later or elsewhere.
			dsn = "4" + dsn[1:]
		}
		return outcome{dsn, fmt.Sprintf("host %s refused to talk to me: %s", namaddr, formatReply(e.Code, e.EnhancedCode, e.Message))}
	}
	ioFail := func(err error, where string) outcome {
		verb := "lost connection with"
		if isTimeout(err) {
			return outcome{"4.4.2", fmt.Sprintf("conversation with %s timed out while %s", namaddr, where)}
		}
		return outcome{"4.4.2", fmt.Sprintf("%s %s while %s", verb, namaddr, where)}
	}

	var conn net.Conn = tc
	if level == TLSMay || level == TLSEncrypt {
		c, o, ok, tlsFailed := t.starttls(tc, tg, level == TLSEncrypt, refused, ioFail)
		if !ok {
			raw.Close()
			return nil, o, namaddrport, tlsFailed
		}
		conn = c
		if rc, ok := c.(*replayConn); ok {
			_, s.tls = rc.Conn.(*tls.Conn)
		}
	}
	s.c = gosmtp.NewClient(conn)
	s.c.CommandTimeout = t.cfg.HeloTimeout
	if err := s.c.Hello(t.cfg.HeloName); err != nil {
		raw.Close()
		greeting := tc.nwritten.Load() == 0
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			return nil, refused(se, greeting), namaddrport, false
		}
		where := "performing the EHLO handshake"
		if greeting {
			where = "receiving the initial server greeting"
		}
		return nil, ioFail(err, where), namaddrport, false
	}
	s.p = newProto(conn)
	if o, ok := t.authenticate(ctx, s, auth); !ok {
		return nil, o, namaddrport, false
	}
	return s, outcome{}, namaddrport, false
}

// starttls reads the greeting, sends EHLO and, when the server offers it,
// STARTTLS and the TLS handshake. It returns the connection go-smtp should
// use, which replays the greeting so go-smtp can start (and EHLO again).
// ok=false ends the attempt; tlsFailed asks for a plaintext retry (level
// may). With required set (level encrypt) the session ends, as in Postfix's
// smtp_helo, when the server does not offer STARTTLS or refuses it.
func (t *Transport) starttls(tc *trackConn, tg target, required bool,
	refused func(*gosmtp.SMTPError, bool) outcome, ioFail func(error, string) outcome,
) (conn net.Conn, o outcome, ok, tlsFailed bool) {
	_ = tc.SetDeadline(time.Now().Add(t.cfg.HeloTimeout))
	defer tc.SetDeadline(time.Time{})
	br := bufio.NewReader(tc)
	tp := textproto.NewReader(br)

	code, msg, err := tp.ReadResponse(0)
	if err != nil && code == 0 {
		return nil, ioFail(err, "receiving the initial server greeting"), false, false
	}
	if code/100 != 2 {
		return nil, refused(toSMTPError(code, msg), true), false, false
	}
	greeting := fmt.Sprintf("%03d %s\r\n", code, strings.ReplaceAll(msg, "\n", " "))
	plain := &replayConn{Conn: tc, r: io.MultiReader(strings.NewReader(greeting), br)}

	if _, err := fmt.Fprintf(tc, "EHLO %s\r\n", t.cfg.HeloName); err != nil {
		return nil, ioFail(err, "performing the EHLO handshake"), false, false
	}
	code, msg, err = tp.ReadResponse(0)
	if err != nil && code == 0 {
		return nil, ioFail(err, "performing the EHLO handshake"), false, false
	}
	offered := false
	for _, l := range strings.Split(msg, "\n") {
		if f := strings.Fields(l); code/100 == 2 && len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			offered = true
		}
	}
	namaddr := fmt.Sprintf("%s[%s]", tg.name, tg.ip)
	switch {
	case !offered && required:
		_, _ = io.WriteString(tc, "QUIT\r\n")
		return nil, outcome{"4.7.4", "TLS is required, but was not offered by host " + namaddr}, false, false
	case !offered:
		// Let go-smtp repeat EHLO (and fall back to HELO if it must).
		return plain, outcome{}, true, false
	}
	if _, err := io.WriteString(tc, "STARTTLS\r\n"); err != nil {
		return nil, ioFail(err, "receiving the STARTTLS response"), false, false
	}
	code, msg, err = tp.ReadResponse(0)
	if err != nil && code == 0 {
		return nil, ioFail(err, "receiving the STARTTLS response"), false, false
	}
	if code/100 != 2 {
		if required {
			_, _ = io.WriteString(tc, "QUIT\r\n")
			e := toSMTPError(code, msg)
			return nil, outcome{replyDSN(e.Code, e.EnhancedCode), fmt.Sprintf("TLS is required, but host %s refused to start TLS: %s",
				namaddr, formatReply(e.Code, e.EnhancedCode, e.Message))}, false, false
		}
		return plain, outcome{}, true, false
	}
	cfg := &tls.Config{InsecureSkipVerify: true} // levels may and encrypt: encryption without authentication
	if net.ParseIP(tg.name) == nil {
		cfg.ServerName = tg.name
	}
	tlsConn := tls.Client(tc, cfg)
	if err := tlsConn.Handshake(); err != nil {
		return nil, outcome{"4.7.5", "Cannot start TLS: handshake failure"}, false, true
	}
	// After STARTTLS the server sends no greeting: the replayed one lets
	// go-smtp start, and its EHLO is the one RFC 3207 asks for.
	return &replayConn{Conn: tlsConn, r: io.MultiReader(strings.NewReader(greeting), tlsConn)}, outcome{}, true, false
}

// release puts a healthy session back in the cache, or closes it.
func (t *Transport) release(s *session, healthy bool) {
	if !healthy {
		s.close()
		return
	}
	if s.dirty {
		if re, err := s.p.cmd(s.cfg.RsetTimeout, "RSET"); err != nil || re.Code/100 != 2 {
			s.close()
			return
		}
		s.dirty = false
	}
	t.pool.put(s)
}

// transact runs one mail transaction for dl's pending recipients. With
// final=false, recipients that fail temporarily stay pending for the next
// host. early=true means a reused session was found dead before MAIL FROM
// was accepted: nothing was recorded and the caller should reconnect.
// healthy says whether the session may be cached.
func (t *Transport) transact(ctx context.Context, s *session, dl *delivery, final bool, setupDone time.Time) (early, healthy bool) {
	stop := context.AfterFunc(ctx, func() { s.tc.Close() })
	defer stop()
	d := dl.d
	s.lastSoft = outcome{}

	var kept []int
	record := func(i int, o outcome) {
		if o.soft() && !final {
			kept = append(kept, i)
			s.lastSoft = o
			return
		}
		dl.set(i, o, s.namaddrport, s.uses, setupDone)
	}
	recordAll := func(idx []int, o outcome) {
		for _, i := range idx {
			record(i, o)
		}
	}
	said := func(e *gosmtp.SMTPError, cmd string) outcome {
		text := fmt.Sprintf("host %s said: %s (in reply to %s command)", s.namaddr, formatReply(e.Code, e.EnhancedCode, e.Message), cmd)
		if c := e.Code / 100; c != 4 && c != 5 {
			return outcome{"5.5.0", "Protocol error: " + text}
		}
		return outcome{replyDSN(e.Code, e.EnhancedCode), text}
	}
	ioFail := func(err error, where string) outcome {
		if isTimeout(err) {
			return outcome{"4.4.2", fmt.Sprintf("conversation with %s timed out while %s", s.namaddr, where)}
		}
		return outcome{"4.4.2", fmt.Sprintf("lost connection with %s while %s", s.namaddr, where)}
	}
	finish := func() {
		dl.pending = kept
	}
	pending := dl.pending

	// Checks Postfix makes before MAIL FROM, from the EHLO reply.
	if limit, ok := s.c.MaxMessageSize(); ok && limit > 0 && d.Size > int64(limit) {
		recordAll(pending, outcome{"5.3.4", fmt.Sprintf("message size %d exceeds size limit %d of server %s", d.Size, limit, s.namaddr)})
		finish()
		return false, true
	}
	utf8, _ := s.c.Extension("SMTPUTF8")
	if d.SMTPUTF8 && !utf8 && client.NeedsUTF8(d) {
		recordAll(pending, outcome{"5.6.7", fmt.Sprintf("SMTPUTF8 is required, but was not offered by host %s", s.namaddr)})
		finish()
		return false, true
	}

	// Open the content before MAIL, so that a local read error does not
	// leave the session in the middle of DATA.
	body, err := d.Open(ctx)
	if err != nil {
		recordAll(pending, outcome{"4.3.0", fmt.Sprintf("local data error while talking to %s", s.namaddr)})
		finish()
		return false, true
	}
	defer body.Close()

	if strings.ContainsAny(d.Sender, "\r\n<>") {
		recordAll(pending, outcome{"5.1.7", fmt.Sprintf("bad sender address syntax: %q", d.Sender)})
		finish()
		return false, true
	}
	p := s.p
	has := func(kw string) bool { ok, _ := s.c.Extension(kw); return ok }
	mail := client.MailCommand(has, d, d.SMTPUTF8 && utf8)
	rcpts := make([]string, len(pending))
	for n, i := range pending {
		rcpts[n] = client.RcptCommand(has, d.Recipients[i])
	}
	// With PIPELINING, MAIL, the RCPTs and DATA go in one write and the
	// replies are read after it, as Postfix's smtp(8) does; without it,
	// each command waits for the reply before it.
	pipelined, _ := s.c.Extension("PIPELINING")
	var written <-chan error
	if pipelined {
		// A probe's group ends with RSET instead, as Postfix's does: a
		// group must end with a command that waits for its replies.
		end := "DATA"
		if d.VerifyOnly {
			end = "RSET"
		}
		written = p.sendAsync(append(append([]string{mail}, rcpts...), end)...)
	} else if err := p.send(mail); err != nil {
		if s.uses > 1 {
			return true, false
		}
		recordAll(pending, ioFail(err, "sending MAIL FROM"))
		finish()
		return false, false
	}
	// A write error shows as a read error too, since the connection is
	// gone; the reads name the stage.
	broken := func(o outcome, idx ...[]int) (bool, bool) {
		for _, l := range idx {
			recordAll(l, o)
		}
		finish()
		return false, false
	}

	re, err := p.reply(s.cfg.MailTimeout)
	if err != nil || re.Code == 421 && s.uses > 1 {
		if s.uses > 1 {
			// The cached session went stale (servers say 421 before
			// they drop an idle client): nothing was sent, reconnect.
			return true, false
		}
		return broken(ioFail(err, "sending MAIL FROM"), pending)
	}
	s.dirty = true
	if re.Code/100 != 2 {
		// With pipelining the RCPT and DATA replies that follow are
		// refusals of the missing transaction: read and drop them.
		recordAll(pending, said(re, "MAIL FROM"))
		finish()
		if re.Code == 421 {
			return false, false
		}
		if pipelined {
			var last *gosmtp.SMTPError
			for range len(rcpts) + 1 {
				if last, err = p.reply(s.cfg.RcptTimeout); err != nil {
					return false, false
				}
			}
			if err := <-written; err != nil {
				return false, false
			}
			if d.VerifyOnly {
				s.dirty = false // the RSET ended it
			} else if last.Code == 354 {
				// A server that took DATA without a transaction
				// waits for a body: end it empty (RFC 2920).
				if err := p.send("."); err != nil {
					return false, false
				}
				if _, err := p.reply(s.cfg.DataDoneTimeout); err != nil {
					return false, false
				}
			}
		}
		return false, true
	}

	var accepted []int
	for n, i := range pending {
		if !pipelined {
			if err := p.send(rcpts[n]); err != nil {
				return broken(ioFail(err, "sending RCPT TO"), accepted, pending[n:])
			}
		}
		re, err := p.reply(s.cfg.RcptTimeout)
		if err != nil {
			return broken(ioFail(err, "sending RCPT TO"), accepted, pending[n:])
		}
		if re.Code/100 == 2 {
			accepted = append(accepted, i)
			if d.VerifyOnly {
				// A probe ends at RCPT TO (smtp_address_verify_target).
				text, dsn := successText(re.Code, p.last)
				dl.set(i, outcome{dsn, text}, s.namaddrport, s.uses, setupDone)
			}
			continue
		}
		record(i, said(re, "RCPT TO"))
		if re.Code == 421 {
			return broken(ioFail(io.EOF, "sending RCPT TO"), accepted, pending[n+1:])
		}
	}
	if d.VerifyOnly {
		finish()
		if pipelined {
			// The RSET that ended the group.
			re, err := p.reply(s.cfg.RsetTimeout)
			if err == nil {
				err = <-written
			}
			if err != nil || re.Code/100 != 2 {
				return false, false
			}
			s.dirty = false
		}
		return false, true // without pipelining release sends RSET
	}
	if len(accepted) == 0 && !pipelined {
		finish()
		return false, true // release sends RSET
	}

	if !pipelined {
		if err := p.send("DATA"); err != nil {
			return broken(ioFail(err, "sending DATA command"), accepted)
		}
	}
	re, err = p.reply(s.cfg.DataInitTimeout)
	if err == nil && written != nil {
		// The server read DATA before it answered; a write error now
		// would be a server answering early.
		err = <-written
	}
	if err != nil {
		return broken(ioFail(err, "sending DATA command"), accepted)
	}
	if re.Code != 354 {
		if len(accepted) > 0 {
			recordAll(accepted, said(re, "DATA"))
		}
		finish()
		return false, re.Code != 421
	}
	if len(accepted) == 0 {
		// Every recipient was refused, yet DATA was accepted: RFC 2920
		// says to send an empty message, which goes nowhere.
		if err := p.send("."); err != nil {
			return broken(outcome{})
		}
		if _, err := p.reply(s.cfg.DataDoneTimeout); err != nil {
			return broken(outcome{})
		}
		s.dirty = false
		finish()
		return false, true
	}

	w := p.dataWriter()
	src := &client.Source{R: body}
	if _, err := io.Copy(w, src); err != nil {
		if src.Err != nil {
			// Our own content failed: the transaction cannot be
			// finished cleanly, so the connection goes too.
			recordAll(accepted, outcome{"4.3.0", fmt.Sprintf("local data error while talking to %s", s.namaddr)})
		} else {
			recordAll(accepted, ioFail(err, "sending message body"))
		}
		finish()
		return false, false
	}
	if ctx.Err() != nil {
		// Shutting down: withhold the final dot so that nothing is
		// delivered that we would report as deferred.
		recordAll(accepted, ioFail(ctx.Err(), "sending message body"))
		finish()
		return false, false
	}
	if err := w.Close(); err == nil {
		err = p.w.Flush()
	}
	if err != nil {
		return broken(ioFail(err, "sending message body"), accepted)
	}
	re, err = p.reply(s.cfg.DataDoneTimeout)
	if err != nil {
		return broken(ioFail(err, "sending end of data -- message may be sent more than once"), accepted)
	}
	s.dirty = false
	if re.Code/100 != 2 {
		recordAll(accepted, said(re, "end of DATA"))
		finish()
		return false, re.Code != 421
	}
	text, dsn := successText(re.Code, p.last)
	for _, i := range accepted {
		dl.set(i, outcome{dsn, text}, s.namaddrport, s.uses, setupDone)
	}
	finish()
	return false, true
}
