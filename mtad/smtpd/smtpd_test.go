package smtpd

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/reply"
)

// clientName returns the name the server logged for 127.0.0.1 (Postfix
// shows "localhost" when /etc/hosts says so, else "unknown").
func clientName(t *testing.T, ts *testServer) string {
	t.Helper()
	ts.log.wait(t, "connect from ")
	m := regexp.MustCompile(`connect from (\S+)\[127\.0\.0\.1\]`).FindStringSubmatch(ts.log.String())
	if m == nil {
		t.Fatalf("no connect line in log:\n%s", ts.log.String())
	}
	return m[1]
}

func TestPostfixReplies(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.MessageSizeLimit = 1000
		c.HardErrorLimit = 100
		nets, _ := matchlist.ParseNetworks([]string{"10.0.0.0/8"}) // not us
		c.MyNetworks = nets
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("RCPT TO:<a@local.test>", "503 5.5.1 Error: need MAIL command")
	c.cmd("DATA", "503 5.5.1 Error: need RCPT command")
	c.cmd("HELO", "501 Syntax: HELO hostname")
	c.cmd("EHLO", "501 Syntax: EHLO hostname")
	c.cmd("HELO client.test", "250 mx.test")
	c.ehlo("client.test", "SIZE 1000")
	c.cmd("XYZZY", "500 5.5.2 Error: command not recognized")
	c.cmd("", "500 5.5.2 Error: bad syntax")
	c.cmd("MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>")
	c.cmd("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>")
	c.cmd("MAIL FROM:<a b@c>", "501 5.1.7 Bad sender address syntax")
	c.cmd("MAIL FROM:<s@x.test> FOO=1", "555 5.5.4 Unsupported option: FOO=1")
	c.cmd("MAIL FROM:<s@x.test> SIZE=abc", "501 5.5.4 Bad message size syntax")
	c.cmd("MAIL FROM:<s@x.test> SIZE=1001", "552 5.3.4 Message size exceeds fixed limit")
	c.cmd("MAIL FROM:<s@x.test> RET=SOME", "501 5.5.4 Bad RET parameter syntax")
	c.cmd("MAIL FROM:<s@x.test> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax")
	c.cmd("MAIL FROM:<s@x.test> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=id+2B1", "250 2.1.0 Ok")
	c.cmd("MAIL FROM:<s@x.test>", "503 5.5.1 Error: nested MAIL command")
	c.cmd("RCPT FROM:<a@local.test>", "501 5.5.4 Syntax: RCPT TO:<address>")
	c.cmd("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax")
	c.cmd("RCPT TO:<a@local.test> XX=1", "555 5.5.4 Unsupported option: XX=1")
	c.cmd("RCPT TO:<a@local.test> NOTIFY=NEVER,DELAY", "501 5.5.4 Error: Bad NOTIFY parameter syntax")
	c.cmd("RCPT TO:<a@local.test> ORCPT=bogus", "501 5.5.4 Error: Bad ORCPT parameter syntax")
	c.cmd("RCPT TO:<x@remote.example>", "454 4.7.1 <x@remote.example>: Relay access denied")
	c.cmd("RCPT TO:<a%b@local.test>", "454 4.7.1 <a%b@local.test>: Relay access denied")
	c.cmd("VRFY <x@remote.example>", "454 4.7.1 <x@remote.example>: Relay access denied")
	c.cmd("VRFY bob", "252 2.0.0 bob")
	c.cmd("VRFY", "501 5.5.4 Syntax: VRFY address")
	c.cmd("DATA", "554 5.5.1 Error: no valid recipients")
	c.cmd("RCPT TO:<postmaster>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<a@LOCAL.test.> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bx@local.test", "250 2.1.5 Ok")
	c.cmd("DATA x", "501 5.5.4 Syntax: DATA")
	c.cmd("RSET x", "501 5.5.4 Syntax: RSET")
	c.cmd("RSET", "250 2.0.0 Ok")
	c.cmd("NOOP x", "250 2.0.0 Ok")
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("HELO again.test", "250 mx.test") // HELO/EHLO reset the transaction
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("VRFY <a@local.test>", "252 2.0.0 <a@local.test>")
	c.cmd("VRFY a b", "501 5.1.3 Bad recipient address syntax")
	c.cmd("1abc", "221 2.7.0 Error: I can break rules, too. Goodbye.")
	c.expectEOF()
	name := clientName(t, ts)
	ts.log.wait(t, "disconnect from "+name+"[127.0.0.1] helo=2/3 ehlo=1/2 mail=3/12 rcpt=2/10 data=0/3 rset=1/2 noop=1 vrfy=2/5 unknown=0/2 commands=12/40")
	ts.log.wait(t, "NOQUEUE: reject: RCPT from "+name+"[127.0.0.1]: 454 4.7.1 <x@remote.example>: Relay access denied; from=<s@x.test> to=<x@remote.example> proto=ESMTP helo=<client.test>")
	ts.log.wait(t, "NOQUEUE: reject: MAIL from "+name+"[127.0.0.1]: 552 5.3.4 Message size exceeds fixed limit; from=<s@x.test> proto=ESMTP helo=<client.test>")
	ts.log.wait(t, "NOQUEUE: reject: VRFY from "+name+"[127.0.0.1]: 454 4.7.1 <x@remote.example>: Relay access denied; from=<s@x.test> to=<x@remote.example> proto=ESMTP helo=<client.test>")
	if ts.rec.count() != 0 {
		t.Error("something was submitted")
	}
	// QUIT and ETRN in a fresh session.
	c = ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("ETRN local.test", "458 Unable to queue messages")
	c.cmd("QUIT", "221 2.0.0 Bye")
	c.expectEOF()
	ts.log.wait(t, "disconnect from "+name+"[127.0.0.1] etrn=0/1 quit=1 commands=1/2")
}

func TestHeloRequiredAndForbiddenCommands(t *testing.T) {
	ts := start(t, func(c *Config) { c.HeloRequired = true })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("MAIL FROM:<a@b.test>", "503 5.5.1 Error: send HELO/EHLO first")
	c.cmd("Subject: hello", "221 2.7.0 Error: I can break rules, too. Goodbye.")
	c.expectEOF()
	ts.log.wait(t, "warning: non-SMTP command from")

	c = ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("GET / HTTP/1.0", "221 2.7.0 Error: I can break rules, too. Goodbye.")
	c.expectEOF()
}

func TestGoSMTPClientSendMail(t *testing.T) {
	ts := start(t, nil)
	body := "Subject: test\r\n\r\nline one\r\n.leading dot\r\n"
	if err := sendMail(ts.addr, "alice@x.test", []string{"bob@local.test", "carol@local.test"}, body); err != nil {
		t.Fatal(err)
	}
	if ts.rec.count() != 1 {
		t.Fatalf("submitted %d messages", ts.rec.count())
	}
	env, msg := ts.rec.envs[0], ts.rec.msgs[0]
	if msg != body {
		t.Errorf("content %q, want %q", msg, body)
	}
	if env.Sender != "alice@x.test" || len(env.Recipients) != 2 || env.Recipients[1].Address != "carol@local.test" ||
		env.Protocol != "ESMTP" || env.ClientAddr != "127.0.0.1" || env.Helo != "localhost" || env.QueueID == "" ||
		env.Arrival.IsZero() {
		t.Errorf("envelope %+v", env)
	}
	name := clientName(t, ts)
	if env.ClientName != name {
		t.Errorf("ClientName %q, logged %q", env.ClientName, name)
	}
	ts.log.wait(t, env.QueueID+": client="+name+"[127.0.0.1]")
	ts.log.wait(t, "disconnect from "+name+"[127.0.0.1] ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6")
}

// sendMail sends one message with go-smtp's client (its SendMail helper
// insists on STARTTLS, which smtpd does not offer yet).
func sendMail(addr, from string, to []string, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

func TestPipelinedTransactionInOneWrite(t *testing.T) {
	ts := start(t, func(c *Config) { c.MyNetworks = nil })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.send("EHLO client.test\r\nMAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@local.test> NOTIFY=FAILURE ORCPT=rfc822;B@local.test\r\n" +
		"RCPT TO:<nobody@elsewhere.test>\r\nRCPT TO:<c@local.test>\r\nDATA")
	c.ehloReply("SIZE 10240000")
	c.expect("250 2.1.0 Ok")
	c.expect("250 2.1.5 Ok")
	c.expect("454 4.7.1 <nobody@elsewhere.test>: Relay access denied")
	c.expect("250 2.1.5 Ok")
	c.expect("354 End data with <CR><LF>.<CR><LF>")
	c.send("Subject: pipelined\r\n\r\n..dot\nbare LF line\r\n.\r\nQUIT")
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.tp.ReadLine()
	if err != nil || !strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("end of data: %q %v", l, err)
	}
	c.expect("221 2.0.0 Bye")
	env, msg := ts.rec.envs[0], ts.rec.msgs[0]
	if want := "Subject: pipelined\r\n\r\n.dot\r\nbare LF line\r\n"; msg != want {
		t.Errorf("content %q, want %q", msg, want)
	}
	if l != "250 2.0.0 Ok: queued as "+env.QueueID {
		t.Errorf("reply %q, queue id %q", l, env.QueueID)
	}
	if len(env.Recipients) != 2 || env.Recipients[0].Notify != "FAILURE" || env.Recipients[0].ORCPT != "rfc822;B@local.test" ||
		env.Recipients[0].Orig != "b@local.test" || env.BodyType != "8BITMIME" || !env.SMTPUTF8 {
		t.Errorf("envelope %+v", env)
	}
	// The reject came after the first accepted recipient, so it carries the queue ID.
	ts.log.wait(t, env.QueueID+": reject: RCPT from ")
}

func TestRejectUnauthDestination(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.RelayRestrictions = []string{"permit_mynetworks", "reject_unauth_destination"}
		c.RecipientRestrictions = []string{"permit_auth_destination", "reject"}
		c.MyNetworks = nil
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("MAIL FROM:<>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<x@remote.example>", "554 5.7.1 <x@remote.example>: Relay access denied")
	c.cmd("RCPT TO:<a@b@local.test>", "554 5.7.1 <a@b@local.test>: Relay access denied")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<localuser>", "250 2.1.5 Ok")
	name := clientName(t, ts)
	ts.log.wait(t, "NOQUEUE: reject: RCPT from "+name+"[127.0.0.1]: 554 5.7.1 <x@remote.example>: Relay access denied; from=<> to=<x@remote.example> proto=SMTP helo=<client.test>")
}

func TestRestrictionReplies(t *testing.T) {
	for _, tc := range []struct{ restriction, want string }{
		{"reject", "554 5.7.1 <a@local.test>: Recipient address rejected: Access denied"},
		{"defer", "450 4.3.2 <a@local.test>: Recipient address rejected: Try again later"},
	} {
		ts := start(t, func(c *Config) { c.RecipientRestrictions = []string{tc.restriction} })
		c := ts.dial(t)
		c.expect("220 mx.test ESMTP Postfix")
		c.cmd("HELO client.test", "250 mx.test")
		c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
		c.cmd("RCPT TO:<a@local.test>", tc.want)
		c.cmd("RCPT TO:<postmaster>", "250 2.1.5 Ok") // bare postmaster skips every check
	}
}

func TestSizeLimitAfterDot(t *testing.T) {
	ts := start(t, func(c *Config) { c.MessageSizeLimit = 100 })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	for i := 0; i < 20; i++ {
		c.send("0123456789 0123456789")
	}
	c.cmd(".", "552 5.3.4 Error: message file too big")
	c.cmd("NOOP", "250 2.0.0 Ok")
	if ts.rec.count() != 0 {
		t.Error("oversized message was submitted")
	}
	// Exactly at the limit is fine: 98 bytes + CRLF... = 100.
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	c.send(strings.Repeat("x", 98))
	c.send(".")
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, _ := c.tp.ReadLine(); !strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("at the limit: %q", l)
	}
}

func TestLargeMessageSpillsAndKeepsLongLines(t *testing.T) {
	ts := start(t, func(c *Config) { c.SpoolMemory = 1000; c.SpoolDir = t.TempDir() })
	long := strings.Repeat("y", 200000) // far beyond any buffer: kept whole
	body := "Subject: big\r\n\r\n" + long + "\r\n" + strings.Repeat("line\r\n", 5000)
	if err := sendMail(ts.addr, "a@x.test", []string{"b@local.test"}, body); err != nil {
		t.Fatal(err)
	}
	if ts.rec.msgs[0] != body {
		t.Fatalf("content differs: got %d bytes, want %d", len(ts.rec.msgs[0]), len(body))
	}
}

func TestTooManyRecipients(t *testing.T) {
	ts := start(t, func(c *Config) { c.RecipientLimit = 2 })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("EHLO client.test", "250-mx.test")
	for c.tp.ReadLine(); ; {
		if l, _ := c.tp.ReadLine(); strings.HasPrefix(l, "250 ") {
			break
		}
	}
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<b@local.test>", "250 2.1.5 Ok")
	c.cmd("RCPT TO:<c@local.test>", "452 4.5.3 Error: too many recipients")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	c.send("hi")
	c.send(".")
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, _ := c.tp.ReadLine(); !strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("got %q", l)
	}
	if n := len(ts.rec.envs[0].Recipients); n != 2 {
		t.Errorf("%d recipients submitted", n)
	}
}

func TestErrorLimitDisconnects(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.SoftErrorLimit = 2
		c.HardErrorLimit = 3
		c.ErrorSleep = time.Millisecond
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("BOGUS1", "500 5.5.2 Error: command not recognized")
	c.cmd("RCPT TO:<a@b>", "503 5.5.1 Error: need MAIL command")
	c.cmd("BOGUS3", "500 5.5.2 Error: command not recognized")
	c.expect("421 4.7.0 mx.test Error: too many errors")
	c.expectEOF()
	name := clientName(t, ts)
	ts.log.wait(t, "too many errors after UNKNOWN from "+name+"[127.0.0.1]")
	ts.log.wait(t, "disconnect from "+name+"[127.0.0.1] rcpt=0/1 unknown=0/2 commands=0/3")
}

func TestTimeout(t *testing.T) {
	ts := start(t, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.expect("421 4.4.2 mx.test Error: timeout exceeded")
	c.expectEOF()
	ts.log.wait(t, "timeout after CONNECT from ")
	ts.log.wait(t, "[127.0.0.1] commands=0/0")
}

func TestSubmitErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("database is down"), "451 4.3.0 Error: queue file write error"},
		{reply.New(550, "5.7.1", "Error: content rejected"), "550 5.7.1 Error: content rejected"},
	} {
		ts := start(t, nil)
		ts.rec.err = tc.err
		c := ts.dial(t)
		c.expect("220 mx.test ESMTP Postfix")
		c.cmd("HELO client.test", "250 mx.test")
		c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
		c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
		c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
		c.send("hello")
		c.cmd(".", tc.want)
		// The transaction is over: a new one can start.
		c.cmd("RCPT TO:<a@local.test>", "503 5.5.1 Error: need MAIL command")
		if ts.rec.count() != 0 {
			t.Error("message recorded despite error")
		}
	}
}

func TestLostConnectionLogged(t *testing.T) {
	ts := start(t, nil)
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	c.send("partial")
	c.conn.Close()
	ts.log.wait(t, "lost connection after DATA from ")
	ts.log.wait(t, "helo=1 mail=1 rcpt=1 data=0/1 commands=3/4")
	if ts.rec.count() != 0 {
		t.Error("partial message submitted")
	}
}

func TestNewValidatesRestrictions(t *testing.T) {
	cfg := baseConfig(&recorder{}, &logBuf{})
	cfg.RecipientRestrictions = []string{"reject_bogus", "reject_unauth_destination"}
	if _, err := New(cfg); err == nil || err.Error() != `smtpd_recipient_restrictions: unknown smtpd restriction: "reject_bogus"` {
		t.Errorf("unknown restriction: %v", err)
	}
	cfg.RecipientRestrictions = []string{"check_recipient_access", "hash:/etc/postfix/access", "reject_unauth_destination"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no map opener") {
		t.Errorf("table without opener: %v", err)
	}
	cfg = baseConfig(&recorder{}, &logBuf{})
	cfg.RelayRestrictions = []string{"permit_mynetworks"}
	cfg.RecipientRestrictions = []string{"permit_auth_destination"}
	_, err := New(cfg)
	want := "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains"
	if err == nil || err.Error() != want {
		t.Errorf("no working instance: %v", err)
	}
	cfg.RelayRestrictions = []string{}
	cfg.RecipientRestrictions = []string{"PERMIT_MYNETWORKS", "Reject_Unauth_Destination"}
	if _, err := New(cfg); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestSetConfigAppliesToNewSessions(t *testing.T) {
	ts := start(t, nil)
	old := ts.dial(t)
	old.expect("220 mx.test ESMTP Postfix")
	cfg := baseConfig(ts.rec, ts.log)
	cfg.Banner = "mx.test ESMTP reloaded"
	if err := ts.srv.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.RecipientRestrictions = []string{"nonsense"}
	if err := ts.srv.SetConfig(bad); err == nil {
		t.Error("invalid config accepted")
	}
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP reloaded")
	old.cmd("NOOP", "250 2.0.0 Ok")
}

func TestShutdownFinishesDataThenCloses(t *testing.T) {
	ts := start(t, nil)
	idle := ts.dial(t)
	idle.expect("220 mx.test ESMTP Postfix")
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("MAIL FROM:<s@x.test>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<a@local.test>", "250 2.1.5 Ok")
	c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
	c.send("first part")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace period: force at once
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	idle.expectEOF()
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
	c.send("second part")
	c.send(".")
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, _ := c.tp.ReadLine(); !strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("in-flight DATA: %q", l)
	}
	c.expectEOF()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v", err)
	}
	if ts.rec.msgs[0] != "first part\r\nsecond part\r\n" {
		t.Errorf("content %q", ts.rec.msgs[0])
	}
}

func TestSwaks(t *testing.T) {
	path, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks is required in CI (apt-get install -y swaks)")
		}
		t.Skip("swaks not installed")
	}
	ts := start(t, nil)
	host, port, _ := net.SplitHostPort(ts.addr)
	out, err := exec.Command(path, "--server", host, "--port", port, "--helo", "swaks.test",
		"--from", "sender@x.test", "--to", "rcpt@local.test", "--header", "Subject: from swaks",
		"--body", "hello from swaks").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if ts.rec.count() != 1 {
		t.Fatalf("submitted %d\n%s", ts.rec.count(), out)
	}
	env, msg := ts.rec.envs[0], ts.rec.msgs[0]
	if !strings.Contains(string(out), "<-  250 2.0.0 Ok: queued as "+env.QueueID) {
		t.Errorf("swaks transcript lacks the queue id:\n%s", out)
	}
	if env.Helo != "swaks.test" || env.Sender != "sender@x.test" || env.Recipients[0].Address != "rcpt@local.test" ||
		!strings.Contains(msg, "Subject: from swaks\r\n") || !strings.Contains(msg, "hello from swaks\r\n") {
		t.Errorf("env %+v msg %q", env, msg)
	}
}
