package smtpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/transport/client"
)

// PolicyDefaults are the smtpd_policy_service_* parameters; a
// check_policy_service { server, name=value, … } item overrides them for
// its server (Postfix 3.0 and later).
type PolicyDefaults struct {
	Timeout       time.Duration // smtpd_policy_service_timeout, 100s
	MaxIdle       time.Duration // smtpd_policy_service_max_idle, 300s
	MaxTTL        time.Duration // smtpd_policy_service_max_ttl, 1000s
	TryLimit      int           // smtpd_policy_service_try_limit, 2
	RetryDelay    time.Duration // smtpd_policy_service_retry_delay, 1s
	RequestLimit  int           // smtpd_policy_service_request_limit, 0 = none
	DefaultAction string        // smtpd_policy_service_default_action
	Context       string        // smtpd_policy_service_policy_context
	// CompatibilityLevel and MailVersion are sent with every request.
	CompatibilityLevel string
	MailVersion        string
}

func (d *PolicyDefaults) setDefaults() {
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.Timeout, 100*time.Second)
	def(&d.MaxIdle, 300*time.Second)
	def(&d.MaxTTL, 1000*time.Second)
	def(&d.RetryDelay, time.Second)
	if d.TryLimit <= 0 {
		d.TryLimit = 2
	}
	if d.DefaultAction == "" {
		d.DefaultAction = "451 4.3.5 Server configuration problem"
	}
}

// policyClient speaks Postfix's policy delegation protocol to one server
// (SMTPD_POLICY_README): name=value lines and an empty line out, one
// action=… line and an empty line back. Connections are kept and shared by
// the sessions, as Postfix's attr_clnt keeps them per smtpd process.
type policyClient struct {
	name          string // as written in the restriction list, for the log
	network, addr string
	PolicyDefaults

	mu   sync.Mutex
	idle []*policyConn
}

type policyConn struct {
	c        net.Conn
	r        *bufio.Reader
	born     time.Time
	requests int
	timer    *time.Timer // closes it after MaxIdle unused
}

// parsePolicyService reads a check_policy_service argument: "inet:host:port",
// "unix:/path", "host:port", or (from a { } item) the server followed by
// name=value overrides.
func parsePolicyService(arg string, d PolicyDefaults) (*policyClient, error) {
	items, err := config.ParseList(arg)
	if err != nil || len(items) == 0 {
		return nil, fmt.Errorf("check_policy_service: bad argument %q", arg)
	}
	p := &policyClient{name: items[0], PolicyDefaults: d}
	server := items[0]
	switch {
	case strings.HasPrefix(server, "inet:"):
		p.network, p.addr = "tcp", strings.TrimPrefix(server, "inet:")
	case strings.HasPrefix(server, "unix:"):
		p.network, p.addr = "unix", strings.TrimPrefix(server, "unix:")
	case strings.Contains(server, ":"):
		p.network, p.addr = "tcp", server
	default:
		return nil, fmt.Errorf("check_policy_service: unsupported server %q (want inet:host:port or unix:/path)", server)
	}
	if p.network == "tcp" {
		if _, _, err := net.SplitHostPort(p.addr); err != nil {
			return nil, fmt.Errorf("check_policy_service %s: %v", server, err)
		}
	}
	for _, item := range items[1:] {
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("check_policy_service %s: bad attribute %q: need name=value", server, item)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		var err error
		dur := func(v string) (time.Duration, error) {
			d, ok := config.ParseDuration(v, 's')
			if !ok {
				return 0, fmt.Errorf("bad time value %q", v)
			}
			return d, nil
		}
		switch name {
		case "timeout":
			p.Timeout, err = dur(value)
		case "max_idle":
			p.MaxIdle, err = dur(value)
		case "max_ttl":
			p.MaxTTL, err = dur(value)
		case "retry_delay":
			p.RetryDelay, err = dur(value)
		case "try_limit":
			p.TryLimit, err = strconv.Atoi(value)
		case "request_limit":
			p.RequestLimit, err = strconv.Atoi(value)
		case "default_action":
			p.DefaultAction = value
		case "policy_context":
			p.Context = value
		default:
			return nil, fmt.Errorf("check_policy_service %s: unknown attribute %q", server, name)
		}
		if err != nil {
			return nil, fmt.Errorf("check_policy_service %s: %s: %v", server, name, err)
		}
	}
	p.PolicyDefaults.setDefaults()
	return p, nil
}

// get returns a pooled connection that may still be used, or dials one.
func (p *policyClient) get(ctx context.Context) (*policyConn, error) {
	now := time.Now()
	p.mu.Lock()
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if pc.timer.Stop() && now.Sub(pc.born) < p.MaxTTL {
			p.mu.Unlock()
			return pc, nil
		}
		pc.c.Close()
	}
	p.mu.Unlock()
	d := net.Dialer{Timeout: p.Timeout}
	c, err := d.DialContext(ctx, p.network, p.addr)
	if err != nil {
		return nil, &dialError{err}
	}
	return &policyConn{c: c, r: bufio.NewReader(c), born: now}, nil
}

// put keeps a connection for the next request, within the request limit.
func (p *policyClient) put(pc *policyConn) {
	if p.RequestLimit > 0 && pc.requests >= p.RequestLimit {
		pc.c.Close()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.timer = time.AfterFunc(p.MaxIdle, func() {
		p.mu.Lock()
		for i, x := range p.idle {
			if x == pc {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		pc.c.Close()
	})
	p.idle = append(p.idle, pc)
}

// query sends one request and returns the action, trying TryLimit times;
// each failed try is logged through warn as Postfix's attr_clnt logs it.
func (p *policyClient) query(ctx context.Context, attrs [][2]string, warn func(format string, args ...any)) (string, error) {
	var b strings.Builder
	for _, a := range attrs {
		b.WriteString(a[0])
		b.WriteByte('=')
		b.WriteString(a[1])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	req := b.String()
	var err error
	for try := 0; try < p.TryLimit; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(p.RetryDelay):
			}
		}
		var action string
		if action, err = p.once(ctx, req); err == nil {
			return action, nil
		}
		var de *dialError
		if errors.As(err, &de) {
			warn("warning: connect to %s: %s", p.addr, client.DialErrText(de.err))
		}
		warn("warning: problem talking to server %s: %s", p.addr, client.DialErrText(err))
	}
	return "", err
}

// dialError marks a failure to connect, which Postfix logs on its own.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func (p *policyClient) once(ctx context.Context, req string) (string, error) {
	pc, err := p.get(ctx)
	if err != nil {
		return "", err
	}
	_ = pc.c.SetDeadline(time.Now().Add(p.Timeout))
	if _, err := pc.c.Write([]byte(req)); err != nil {
		pc.c.Close()
		return "", err
	}
	pc.requests++
	action, found := "", false
	for {
		line, err := pc.r.ReadString('\n')
		if err != nil {
			pc.c.Close()
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "action="); ok && !found {
			action, found = v, true
		}
	}
	_ = pc.c.SetDeadline(time.Time{})
	if !found {
		pc.c.Close()
		return "", errors.New("server response has no action attribute")
	}
	p.put(pc)
	return action, nil
}

// checkPolicy is check_policy_service: the server's action is applied as
// an access table's value would be; when the server cannot be reached, the
// default action is.
func (s *session) checkPolicy(server, replyName, replyClass string) int {
	p := s.cfg.policies[server]
	if p == nil {
		s.logf("warning: check_policy_service %s: not configured", server)
		return s.serverError()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.TryLimit)*(p.Timeout+p.RetryDelay))
	defer cancel()
	action, err := p.query(ctx, s.policyRequest(p), s.logf)
	if err != nil {
		return s.checkTableResult(server, p.DefaultAction, "policy query", replyName, replyClass)
	}
	return s.checkTableResult(server, action, "policy query", replyName, replyClass)
}

// policyRequest is the attribute list Postfix 3.7's smtpd sends.
func (s *session) policyRequest(p *policyClient) [][2]string {
	state := s.where
	if state == "" {
		state = "CONNECT"
	}
	if state == "BDAT" && s.chk.haveRcpt {
		state = "RCPT"
	}
	clientPort, serverAddr, serverPort := "", "", ""
	if a, ok := s.conn.RemoteAddr().(*net.TCPAddr); ok {
		clientPort = strconv.Itoa(a.Port)
	}
	if a, ok := s.conn.LocalAddr().(*net.TCPAddr); ok {
		serverAddr, serverPort = a.IP.String(), strconv.Itoa(a.Port)
	}
	rcpt := ""
	switch {
	case s.chk.haveRcpt:
		rcpt = s.chk.rcpt
	case len(s.rcpts) == 1:
		rcpt = s.rcpts[0].Address
	}
	sender := ""
	if s.inTx {
		sender = s.sender
	}
	if s.instance == "" {
		s.instance = fmt.Sprintf("%x.%x.%x.%x", os.Getpid(), time.Now().Unix(), time.Now().Nanosecond(), policyInstances.Add(1))
	}
	return [][2]string{
		{"request", "smtpd_access_policy"},
		{"protocol_state", state},
		{"protocol_name", s.protocol},
		{"helo_name", s.helo},
		{"queue_id", s.queueID},
		{"sender", sender},
		{"recipient", rcpt},
		{"recipient_count", strconv.Itoa(len(s.rcpts))},
		{"client_address", s.addr},
		{"client_name", s.name},
		{"reverse_client_name", s.reverseName},
		{"instance", s.instance},
		{"sasl_method", s.auth.method},
		{"sasl_username", s.auth.user},
		{"sasl_sender", s.auth.sender},
		{"size", strconv.FormatInt(s.msgSizeArg, 10)},
		{"ccert_subject", ""},
		{"ccert_issuer", ""},
		{"ccert_fingerprint", ""},
		{"ccert_pubkey_fingerprint", ""},
		{"encryption_protocol", ""},
		{"encryption_cipher", ""},
		{"encryption_keysize", "0"},
		{"etrn_domain", s.chk.etrn},
		{"stress", ""},
		{"policy_context", p.Context},
		{"server_address", serverAddr},
		{"server_port", serverPort},
		{"client_port", clientPort},
		{"compatibility_level", p.CompatibilityLevel},
		{"mail_version", p.MailVersion},
	}
}

// policyInstances numbers the mail transactions a policy server sees.
var policyInstances atomic.Uint64
