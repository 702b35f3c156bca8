package smtpd

import (
	"strconv"
	"strings"
	"testing"

	"sqlmta/internal/peers"
	"sqlmta/mtad/sasl"
)

// TestAuthServerDown: with the Dovecot auth server unreachable the session
// goes on without AUTH in EHLO (port 25 keeps taking mail), and an AUTH
// anyway answers 454, a temporary failure.
func TestAuthServerDown(t *testing.T) {
	client, err := sasl.New("inet:127.0.0.1:"+strconv.Itoa(peers.FreePort(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ts := start(t, func(c *Config) { c.SASL = SASLConfig{Client: client, Service: "smtp"} })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.test", "SIZE 10240000")
	c.cmd("AUTH PLAIN AGFubgBzZWNyZXQ=", "454 4.7.0 Temporary authentication failure: Can't connect to authentication server")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<b@local.test>", "250 2.1.5 Ok")
	ts.log.wait(t, "warning: SASL: Connect to Dovecot auth socket 'inet:127.0.0.1:")
	ts.log.wait(t, "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: Can't connect to authentication server, sasl_username=(unavailable)")
}

// TestAuthResponseLimit: a response over smtpd_sasl_response_limit is
// refused with Postfix's 500 and the exchange ends.
func TestAuthResponseLimit(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Passwords: map[string]string{"ann@example.org": "secret"}})
	client, err := sasl.New(dc.AuthSocket(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ts := start(t, func(c *Config) {
		c.SASL = SASLConfig{Client: client, Service: "smtp", ResponseLimit: 100, SecurityOptions: []string{"noanonymous"}}
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.send("EHLO client.test")
	for l := ""; !strings.HasPrefix(l, "250 "); {
		l, _ = c.tp.ReadLine()
		if strings.HasPrefix(l, "250-AUTH") && l != "250-AUTH PLAIN LOGIN CRAM-MD5" {
			t.Errorf("EHLO says %q", l)
		}
	}
	c.cmd("AUTH PLAIN", "334 ")
	c.cmd(strings.Repeat("A", 200), "500 5.5.6 SASL response limit exceeded")
	c.cmd("AUTH PLAIN", "334 ")
	c.cmd(b64("\x00ann@example.org\x00secret"), "235 2.7.0 Authentication successful")
	ts.log.wait(t, "warning: localhost[127.0.0.1]: request longer than 100: AAAA")
}

// TestAuthRateLimit: smtpd_client_auth_rate_limit refuses AUTH commands
// over the limit with Postfix's 450, and logs which client went over.
func TestAuthRateLimit(t *testing.T) {
	client, err := sasl.New("inet:127.0.0.1:"+strconv.Itoa(peers.FreePort(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ts := start(t, func(c *Config) {
		c.SASL = SASLConfig{Client: client, Service: "smtp"}
		c.Anvil = AnvilConfig{AuthRate: 1}
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("AUTH PLAIN AGFubgBzZWNyZXQ=", "454 4.7.0 Temporary authentication failure: Can't connect to authentication server")
	c.cmd("AUTH PLAIN AGFubgBzZWNyZXQ=", "450 4.7.1 Error: too many AUTH commands from 127.0.0.1")
	ts.log.wait(t, "warning: AUTH command rate limit exceeded: 2 from localhost[127.0.0.1] for service smtp")
}
