package smtpd

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
)

// TestDifferentialClientLimits runs Postfix's anvil limits on a real
// Postfix 3.7 and on smtpd with the same settings: a third simultaneous
// connection over smtpd_client_connection_count_limit = 2 is turned away
// with 421, a fourth RCPT over smtpd_client_recipient_rate_limit = 3 and a
// third MAIL over smtpd_client_message_rate_limit = 2 are refused, and a
// client in smtpd_client_event_limit_exceptions is not limited. The client
// is 127.0.0.3: the peer's start-up probe came from 127.0.0.1 and is in
// Postfix's counts.
func TestDifferentialClientLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: "mydestination = local.test\nmynetworks = 127.0.0.2/32\nmyhostname = mx.test\n" +
		"smtpd_client_connection_count_limit = 2\nsmtpd_client_message_rate_limit = 2\nsmtpd_client_recipient_rate_limit = 3\n"})
	exceptions, _ := matchlist.ParseNetworks([]string{"127.0.0.2/32"})
	ts := start(t, func(c *Config) {
		c.MyNetworks = exceptions
		c.Anvil = AnvilConfig{ConnectionCount: 2, MessageRate: 2, RecipientRate: 3, Exceptions: exceptions}
	})
	greet := func(addr, src string) net.Conn {
		t.Helper()
		c := dialSrc(t, src, addr).conn
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
			t.Fatalf("greeting %q, %v", l, err)
		}
		return c
	}
	for _, addr := range []string{pf.Addr(), ts.addr} {
		var held []net.Conn
		for i := 0; i < 2; i++ {
			held = append(held, greet(addr, "127.0.0.3"))
		}
		third := transcriptFrom(t, addr, "127.0.0.3", "")
		exempt := transcriptFrom(t, addr, "127.0.0.2", "")
		for _, c := range held {
			c.Close()
		}
		if addr == pf.Addr() {
			t.Logf("postfix: third connection %q, exempt %q", third, exempt)
		}
		want3 := "421 4.7.0 HOST Error: too many connections from 127.0.0.3\r\n"
		if third != want3 || !strings.HasPrefix(exempt, "220 HOST ESMTP") {
			t.Errorf("%s: third connection %q (want %q), exempt client %q", addr, third, want3, exempt)
		}
	}
	// The held connections' ends reach Postfix's anvil a moment later.
	time.Sleep(time.Second)
	cases := []string{
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<root@local.test>\r\nRCPT TO:<root@local.test>\r\nRCPT TO:<root@local.test>\r\nRCPT TO:<root@local.test>\r\nRCPT TO:bad\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:bad\r\n",
	}
	for _, raw := range cases {
		want := transcriptFrom(t, pf.Addr(), "127.0.0.3", raw)
		got := transcriptFrom(t, ts.addr, "127.0.0.3", raw)
		if want != got {
			t.Errorf("%q:\npostfix:\n%s\nsmtpd:\n%s", raw, want, got)
		}
	}
	for _, w := range []string{"Connection concurrency limit exceeded: 3", "Recipient address rate limit exceeded: 4", "Message delivery request rate limit exceeded: 3"} {
		ts.log.wait(t, "warning: "+w+" from ")
	}
	if !strings.Contains(ts.log.String(), "[127.0.0.3] for service smtp") {
		t.Errorf("the warnings do not name the client and service:\n%s", ts.log.String())
	}
}

// transcriptFrom is transcript from the loopback address src.
func transcriptFrom(t *testing.T, addr, src, raw string) string {
	t.Helper()
	c := dialSrc(t, src, addr)
	defer c.conn.Close()
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.conn.Write([]byte(raw + "QUIT\r\n"))
	var b strings.Builder
	r := bufio.NewReader(c.conn)
	for {
		l, err := r.ReadString('\n')
		b.WriteString(l)
		if err != nil {
			break
		}
	}
	out := strings.ReplaceAll(b.String(), "mx.test", "HOST")
	if i := strings.Index(out, "\r\n"); raw != "" && i >= 0 {
		out = out[i+2:] // the greeting
	}
	return out
}
