package smtpd

import (
	"crypto/tls"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/testcert"
)

// TestWrapperMode: with smtpd_tls_wrappermode the greeting comes over TLS,
// STARTTLS is neither announced nor accepted, and mail gets through.
func TestWrapperMode(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.TLS.Server = testcert.Server(t, "mx.test")
		c.TLS.WrapperMode = true
		c.TLS.LogLevel = 1
	})
	conn, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.test", "SIZE 10240000")
	c.cmd("STARTTLS", "554 5.5.1 Error: TLS already active")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<b@local.test>", "250 2.1.5 Ok")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	c.send("Subject: x\r\n\r\nbody\r\n.")
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.tp.ReadLine(); err != nil || !strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("end of data: %q, %v", l, err)
	}
	c.cmd("QUIT", "221 2.0.0 Bye")
	ts.log.wait(t, "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_")
	ts.rec.mu.Lock()
	defer ts.rec.mu.Unlock()
	if len(ts.rec.envs) != 1 || !ts.rec.envs[0].TLS {
		t.Errorf("want one message marked TLS, got %+v", ts.rec.envs)
	}
}

// TestStarttlsHandshakeFailure: a client that answers 220 with plain text
// loses the connection, and the log says where.
func TestStarttlsHandshakeFailure(t *testing.T) {
	ts := start(t, func(c *Config) { c.TLS.Server = testcert.Server(t, "mx.test") })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("EHLO client.test", "250-mx.test")
	for l := ""; !strings.HasPrefix(l, "250 "); {
		l, _ = c.tp.ReadLine()
	}
	c.cmd("STARTTLS", "220 2.0.0 Ready to start TLS")
	c.send("EHLO client.test")
	c.expectEOF()
	ts.log.wait(t, "SSL_accept error from localhost[127.0.0.1]: ")
	ts.log.wait(t, "lost connection after STARTTLS from localhost[127.0.0.1]")
	ts.log.wait(t, "disconnect from localhost[127.0.0.1] ehlo=1 starttls=0/1 commands=1/2")
}

// TestStarttlsNotOffered: no certificate, no STARTTLS.
func TestStarttlsNotOffered(t *testing.T) {
	ts := start(t, nil)
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.ehlo("client.test", "SIZE 10240000")
	c.cmd("STARTTLS", "502 5.5.1 Error: command not implemented")
}
