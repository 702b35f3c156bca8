package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/config"
	"sqlmta/internal/peers"
)

// policyServer is a scripted policy server: it records each request's
// attributes and the connection it came on, and answers with answer(attrs)
// ("" for a reply without an action line).
type policyServer struct {
	addr   string
	answer func(map[string]string) string

	mu       sync.Mutex
	requests []map[string]string
	conns    int
}

func startPolicyServer(t *testing.T, answer func(map[string]string) string) *policyServer {
	t.Helper()
	ps := &policyServer{answer: answer}
	ps.addr = fmt.Sprintf("127.0.0.1:%d", peers.ServeTCP(t, func(c net.Conn) {
		ps.mu.Lock()
		ps.conns++
		ps.mu.Unlock()
		ps.serve(c)
	}))
	return ps
}

func (ps *policyServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	attrs := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		if line != "" {
			k, v, _ := strings.Cut(line, "=")
			attrs[k] = v
			continue
		}
		ps.mu.Lock()
		ps.requests = append(ps.requests, attrs)
		ps.mu.Unlock()
		reply := "\n"
		if a := ps.answer(attrs); a != "" {
			reply = "action=" + a + "\n\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
		attrs = map[string]string{}
	}
}

func (ps *policyServer) seen() ([]map[string]string, int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]map[string]string(nil), ps.requests...), ps.conns
}

// TestPolicyServiceRequests checks what the server is told and that its
// action is applied as an access table's: one connection for the session's
// requests, the same instance within a transaction and a new one after it,
// recipient_count before each recipient.
func TestPolicyServiceRequests(t *testing.T) {
	ps := startPolicyServer(t, func(a map[string]string) string {
		switch a["recipient"] {
		case "bad@local.test":
			return "REJECT no thanks"
		case "soft@local.test":
			return "DEFER_IF_PERMIT 4.2.0 come back later"
		}
		return "DUNNO"
	})
	ts := start(t, func(c *Config) {
		c.RecipientRestrictions = []string{"check_policy_service", "inet:" + ps.addr}
		c.Policy = PolicyDefaults{CompatibilityLevel: "3.6", MailVersion: "3.7.11", Context: "edge"}
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.example", "SIZE 10240000")
	c.cmd("MAIL FROM:<a@example.org> SIZE=300", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<one@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<bad@local.test>", "554 5.7.1 <bad@local.test>: Recipient address rejected: no thanks")
	c.cmd("RCPT TO:<soft@local.test>", "450 4.2.0 <soft@local.test>: Recipient address rejected: come back later")
	c.cmd("RCPT TO:<two@local.test>", "250 2.1.5 Ok")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<b@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<three@local.test>", "250 2.1.5 Ok")
	c.cmd("QUIT", "221 2.0.0 Bye")

	reqs, conns := ps.seen()
	if len(reqs) != 5 || conns != 1 {
		t.Fatalf("%d requests on %d connections, want 5 on 1", len(reqs), conns)
	}
	first := reqs[0]
	for k, want := range map[string]string{
		"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
		"helo_name": "client.example", "sender": "a@example.org", "recipient": "one@local.test",
		"recipient_count": "0", "client_address": "127.0.0.1", "size": "300", "policy_context": "edge",
		"server_address": "127.0.0.1", "compatibility_level": "3.6", "mail_version": "3.7.11",
	} {
		if first[k] != want {
			t.Errorf("first request %s=%q, want %q", k, first[k], want)
		}
	}
	for _, k := range []string{"queue_id", "client_name", "reverse_client_name", "instance", "client_port", "server_port", "etrn_domain"} {
		if _, ok := first[k]; !ok {
			t.Errorf("first request lacks %s", k)
		}
	}
	if reqs[3]["recipient_count"] != "1" || reqs[3]["recipient"] != "two@local.test" {
		t.Errorf("fourth request: recipient %q, count %q; want two@local.test, 1", reqs[3]["recipient"], reqs[3]["recipient_count"])
	}
	if reqs[1]["instance"] != first["instance"] || reqs[4]["instance"] == first["instance"] || first["instance"] == "" {
		t.Errorf("instances %q %q %q: want the same within a transaction, a new one after RSET",
			first["instance"], reqs[1]["instance"], reqs[4]["instance"])
	}
}

// TestPolicyServiceOptions: the { server, name=value } form, an answer
// without an action (the default action applies) and request_limit.
func TestPolicyServiceOptions(t *testing.T) {
	ps := startPolicyServer(t, func(a map[string]string) string {
		if a["recipient"] == "mute@local.test" {
			return ""
		}
		return "OK"
	})
	items := config.SplitList("check_policy_service { inet:" + ps.addr + ", request_limit=1, try_limit=1, " +
		"{ default_action = 450 4.7.1 policy server said nothing } }")
	ts := start(t, func(c *Config) {
		c.RecipientRestrictions = items
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.example", "250 mx.test")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<one@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<mute@local.test>", "450 4.7.1 <mute@local.test>: Recipient address rejected: policy server said nothing")
	c.cmd("RCPT TO:<two@local.test>", "250 2.1.5 Ok")
	c.cmd("QUIT", "221 2.0.0 Bye")
	if reqs, conns := ps.seen(); len(reqs) != 3 || conns != 3 {
		t.Errorf("%d requests on %d connections, want 3 on 3 (request_limit=1)", len(reqs), conns)
	}
	if !strings.Contains(ts.log.String(), "warning: problem talking to server "+ps.addr+": Server response has no action attribute") {
		t.Errorf("log:\n%s", ts.log.String())
	}
}

func TestPolicyServiceBadConfig(t *testing.T) {
	for _, list := range [][]string{
		{"check_policy_service"},
		{"check_policy_service", "nowhere"},
		{"check_policy_service", "inet:127.0.0.1:1, colour=blue"},
		{"check_policy_service", "inet:127.0.0.1:1, timeout=soon"},
		{"sleep", "x"},
	} {
		cfg := baseConfig(&recorder{}, &logBuf{})
		cfg.RecipientRestrictions = list
		if _, err := compile(cfg); err == nil {
			t.Errorf("%q accepted", list)
		}
	}
}

// TestSleepRestriction: sleep pauses and goes on to the next restriction.
func TestSleepRestriction(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.RecipientRestrictions = []string{"sleep", "1", "reject"}
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.example", "250 mx.test")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	start := time.Now()
	c.cmd("RCPT TO:<one@local.test>", "554 5.7.1 <one@local.test>: Recipient address rejected: Access denied")
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("RCPT answered after %v, before the one second sleep", d)
	}
}
