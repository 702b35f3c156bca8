package smtpd

import (
	"errors"
	"net"
	"strings"
	"testing"

	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
)

// noticeBody is the text after a message's header block.
func noticeBody(msg string) string {
	_, body, _ := strings.Cut(msg, "\r\n\r\n")
	return body
}

// notices returns the messages r received whose transcript contains s.
func (r *recorder) notices(s string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for i, m := range r.msgs {
		if strings.Contains(m, s) {
			out = append(out, i)
		}
	}
	return out
}

func (r *recorder) get(i int) (sender string, rcpts []string, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rc := range r.envs[i].Recipients {
		rcpts = append(rcpts, rc.Address)
	}
	return r.envs[i].Sender, rcpts, r.msgs[i]
}

// outside is a mynetworks that does not hold the test client, so that a
// relay attempt is refused.
func outside(t *testing.T) *matchlist.Networks {
	n, err := matchlist.ParseNetworks([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPolicyNotice checks the whole notice a policy rejection produces with
// notify_classes = policy: envelope, headers and transcript.
func TestPolicyNotice(t *testing.T) {
	notices := &recorder{}
	ts := start(t, func(c *Config) {
		c.MyNetworks = outside(t)
		c.NotifyClasses = []string{"policy"}
		c.Notify = notices
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO client.test", "250 mx.test")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	c.cmd("RCPT TO:<x@remote.example>", "454 4.7.1 <x@remote.example>: Relay access denied")
	c.cmd("QUIT", "221 2.0.0 Bye")
	name := clientName(t, ts)
	ts.log.wait(t, "disconnect from ")
	if n := notices.count(); n != 1 {
		t.Fatalf("%d notices, want 1", n)
	}
	sender, rcpts, msg := notices.get(0)
	if sender != "double-bounce@mx.test" || strings.Join(rcpts, ",") != "postmaster" {
		t.Errorf("envelope from=<%s> to=%v, want double-bounce@mx.test and postmaster", sender, rcpts)
	}
	want := strings.Join([]string{
		"From: MAILER-DAEMON (Mail Delivery System)",
		"To: postmaster (Postmaster)",
		"Subject: Postfix SMTP server: errors from " + name + "[127.0.0.1]",
		"",
		"Transcript of session follows.",
		"",
		" Out: 220 mx.test ESMTP Postfix",
		" In:  HELO client.test",
		" Out: 250 mx.test",
		" In:  MAIL FROM:<a@example.org>",
		" Out: 250 2.1.0 Ok",
		" In:  RCPT TO:<x@remote.example>",
		" Out: 454 4.7.1 <x@remote.example>: Relay access denied",
		" In:  QUIT",
		" Out: 221 2.0.0 Bye",
		"",
		"",
		"For other details, see the local mail logfile",
		"",
	}, "\r\n")
	if msg != want {
		t.Errorf("notice:\n%s\nwant:\n%s", msg, want)
	}
	if n := ts.rec.count(); n != 0 {
		t.Errorf("%d messages went to the mail Submitter, want the notice on Notify only", n)
	}
}

// TestNoticeClasses checks which errors mail the postmaster under
// Postfix's default notify_classes (resource, software) and under others,
// and that a session without such errors sends nothing.
func TestNoticeClasses(t *testing.T) {
	def := []string{"resource", "software"}
	cases := []struct {
		name    string
		classes []string
		submit  error // what the mail Submitter answers
		script  [][2]string
		notices int
		reason  string
	}{
		{"policy under default", def, nil, [][2]string{
			{"HELO c", "250 mx.test"}, {"MAIL FROM:<a@example.org>", "250 2.1.0 Ok"},
			{"RCPT TO:<x@remote.example>", "454 4.7.1 <x@remote.example>: Relay access denied"}}, 0, ""},
		{"protocol under default", def, nil, [][2]string{{"RCPT TO:<x@local.test>", "503 5.5.1 Error: need MAIL command"}, {"FOO", "500 5.5.2 Error: command not recognized"}}, 0, ""},
		{"protocol", []string{"protocol"}, nil, [][2]string{{"RCPT TO:<x@local.test>", "503 5.5.1 Error: need MAIL command"}}, 1, ""},
		{"protocol, unknown command", []string{"protocol"}, nil, [][2]string{{"FOO", "500 5.5.2 Error: command not recognized"}}, 1, ""},
		{"policy is not protocol", []string{"protocol"}, nil, [][2]string{
			{"HELO c", "250 mx.test"}, {"MAIL FROM:<a@example.org>", "250 2.1.0 Ok"},
			{"RCPT TO:<x@remote.example>", "454 4.7.1 <x@remote.example>: Relay access denied"}}, 0, ""},
		{"queue write error", def, errors.New("disk on fire"), [][2]string{
			{"HELO c", "250 mx.test"}, {"MAIL FROM:<a@example.org>", "250 2.1.0 Ok"},
			{"RCPT TO:<x@local.test>", "250 2.1.5 Ok"}, {"DATA", "354 End data with <CR><LF>.<CR><LF>"},
			{"Subject: x\r\n\r\nbody\r\n.", "451 4.3.0 Error: queue file write error"}}, 1, ""},
		{"clean session", []string{"bounce", "2bounce", "delay", "policy", "protocol", "resource", "software", "data"}, nil, [][2]string{
			{"EHLO c", ""}, {"MAIL FROM:<a@example.org>", "250 2.1.0 Ok"}, {"RCPT TO:<x@local.test>", "250 2.1.5 Ok"},
			{"RSET", "250 2.0.0 Ok"}, {"NOOP", "250 2.0.0 Ok"}}, 0, ""},
		{"too many errors", []string{"protocol"}, nil, [][2]string{
			{"FOO", "500 5.5.2 Error: command not recognized"}, {"FOO", "500 5.5.2 Error: command not recognized"},
			{"FOO", "500 5.5.2 Error: command not recognized"}}, 1, "too many errors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			notices := &recorder{}
			ts := start(t, func(c *Config) {
				c.MyNetworks = outside(t)
				c.NotifyClasses = tc.classes
				c.Notify = notices
				c.HardErrorLimit = 3
			})
			ts.rec.err = tc.submit
			c := ts.dial(t)
			c.expect("220 mx.test ESMTP Postfix")
			for _, step := range tc.script {
				if strings.HasPrefix(step[0], "EHLO") {
					c.ehlo(step[0][5:], "SIZE 10240000")
					continue
				}
				c.cmd(step[0], step[1])
			}
			if tc.reason != "" {
				c.expect("421 4.7.0 mx.test Error: too many errors")
				c.expectEOF()
			} else {
				c.cmd("QUIT", "221 2.0.0 Bye")
			}
			ts.log.wait(t, "disconnect from ")
			if n := notices.count(); n != tc.notices {
				t.Fatalf("%d notices, want %d", n, tc.notices)
			}
			if n := ts.rec.count(); n != 0 {
				t.Errorf("%d messages on the mail Submitter", n)
			}
			if tc.notices == 0 {
				return
			}
			_, _, msg := notices.get(0)
			body := noticeBody(msg)
			for _, step := range tc.script {
				if strings.Contains(step[0], "\r\n") {
					continue // message content is not in the transcript
				}
				if !strings.Contains(body, " In:  "+step[0]+"\r\n") {
					t.Errorf("notice lacks the command %q:\n%s", step[0], body)
				}
			}
			if tc.reason != "" && !strings.Contains(body, "\r\nSession aborted, reason: "+tc.reason+"\r\n") {
				t.Errorf("notice lacks the reason:\n%s", body)
			}
		})
	}
}

// TestNoticeHistoryFlush checks smtpd_history_flush_threshold: at RSET
// (as at HELO, EHLO and the end of a message) a history longer than the
// threshold goes to the postmaster if it holds an error, and starts anew,
// so that a long session never keeps more than a bounded transcript.
func TestNoticeHistoryFlush(t *testing.T) {
	notices := &recorder{}
	ts := start(t, func(c *Config) {
		c.NotifyClasses = []string{"protocol"}
		c.Notify = notices
		c.HistoryFlushLimit = 3
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO c", "250 mx.test") // 2 lines before the reset: kept
	c.cmd("NOOP", "250 2.0.0 Ok")
	c.cmd("RSET", "250 2.0.0 Ok") // 5 lines, no error: dropped
	c.cmd("RCPT TO:<x@local.test>", "503 5.5.1 Error: need MAIL command")
	c.cmd("RSET", "250 2.0.0 Ok") // 4 lines with an error: sent
	c.cmd("NOOP", "250 2.0.0 Ok")
	c.cmd("QUIT", "221 2.0.0 Bye") // no error since: nothing more
	ts.log.wait(t, "disconnect from ")
	if n := notices.count(); n != 1 {
		t.Fatalf("%d notices, want 1", n)
	}
	_, _, msg := notices.get(0)
	want := "Transcript of session follows.\r\n\r\n Out: 250 2.0.0 Ok\r\n In:  RCPT TO:<x@local.test>\r\n Out: 503 5.5.1 Error: need MAIL command\r\n In:  RSET\r\n\r\n\r\nFor other details, see the local mail logfile\r\n"
	if got := noticeBody(msg); got != want {
		t.Errorf("notice body:\n%q\nwant:\n%q", got, want)
	}
}

func TestLineWrap(t *testing.T) {
	wrap := func(s string) []string {
		var out []string
		lineWrap(s, 20, 4, func(text string, indent int) { out = append(out, strings.Repeat(" ", indent)+text) })
		return out
	}
	cases := map[string][]string{
		"short":                                 {"short"},
		"":                                      {""},
		"aaaa bbbb cccc dddd eeee ffff":         {"aaaa bbbb cccc dddd", "    eeee ffff"},
		"aaaa bbbb cccc dddd eeeee":             {"aaaa bbbb cccc dddd", "    eeeee"},
		"averyveryverylongwordthatdoesnotfit x": {"averyveryverylongwordthatdoesnotfit", "    x"},
		"x averyveryverylongwordthatdoesnotfit": {"x", "    averyveryverylongwordthatdoesnotfit"},
		"aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii": {"aaaa bbbb cccc dddd", "    eeee ffff gggg", "    hhhh iiii"},
		"trailing   ": {"trailing"},
	}
	for in, want := range cases {
		if got := wrap(in); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("lineWrap(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotifyClassesUnknown(t *testing.T) {
	cfg := baseConfig(&recorder{}, &logBuf{})
	cfg.NotifyClasses = []string{"resource, sofware"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `unknown notify_classes value "sofware"`) {
		t.Errorf("New with a misspelt class: %v", err)
	}
}

// TestDifferentialNotice has a real Postfix 3.7 with notify_classes =
// policy mail its notice for the same session smtpd has, and compares the
// two: envelope sender, subject and the whole transcript, long lines
// wrapped included.
func TestDifferentialNotice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	// Postfix relays its notice to sink; sink must not call itself mx.test,
	// or Postfix would see a mail loop.
	sink := start(t, func(c *Config) { c.Hostname, c.Banner = "sink.test", "sink.test ESMTP" })
	_, port, _ := net.SplitHostPort(sink.addr)
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:" + port,
		ExtraMainCf: "mydestination = local.test\nmynetworks = 192.0.2.0/24\nmyhostname = mx.test\nnotify_classes = policy\nerror_notice_recipient = pm@remote.example\n"})
	notices := &recorder{}
	ts := start(t, func(c *Config) {
		c.MyNetworks = outside(t)
		c.NotifyClasses = []string{"policy"}
		c.ErrorNoticeRecipient = "pm@remote.example"
		c.Notify = notices
	})
	long := strings.Repeat("x", 70)
	raw := "EHLO client.test\r\n" +
		"NOOP a long argument of many words, enough to make the line wrap twice at seventy-eight columns, as Postfix wraps it\r\n" +
		"NOOP x\x01y\xff\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<" + long + "@remote.example>\r\n"
	want := transcript(t, pf.Addr(), "mx.test", raw)
	got := transcript(t, ts.addr, "mx.test", raw)
	if want != got {
		t.Fatalf("replies differ:\npostfix:\n%s\nsmtpd:\n%s", want, got)
	}
	waitFor(t, "Postfix's notice", func() bool { return len(sink.rec.notices("EHLO client.test")) == 1 })
	waitFor(t, "smtpd's notice", func() bool { return notices.count() == 1 })
	pfSender, pfRcpts, pfMsg := sink.rec.get(sink.rec.notices("EHLO client.test")[0])
	sender, rcpts, msg := notices.get(0)
	if pfSender != sender || strings.Join(pfRcpts, ",") != strings.Join(rcpts, ",") {
		t.Errorf("envelope: postfix from=<%s> to=%v, smtpd from=<%s> to=%v", pfSender, pfRcpts, sender, rcpts)
	}
	subject := func(m string) string {
		for _, l := range strings.Split(m, "\r\n") {
			if strings.HasPrefix(l, "Subject: ") {
				return l
			}
		}
		return ""
	}
	if subject(pfMsg) != subject(msg) {
		t.Errorf("subject: postfix %q, smtpd %q", subject(pfMsg), subject(msg))
	}
	if noticeBody(pfMsg) != noticeBody(msg) {
		t.Errorf("transcript:\npostfix:\n%s\nsmtpd:\n%s", noticeBody(pfMsg), noticeBody(msg))
	}
	t.Logf("notice:\n%s", msg)
}

// TestUnknownRecipientIsBounceClass: Postfix's smtpd_check.c gives an
// unknown or relocated recipient the bounce class, not policy, and
// improper pipelining the protocol class; notify_classes follows.
func TestUnknownRecipientIsBounceClass(t *testing.T) {
	lines := rcptTables(t)
	for _, tc := range []struct {
		classes []string
		cmds    [][2]string
		want    int
	}{
		{[]string{"policy"}, [][2]string{{"RCPT TO:<zed@local.test>", "550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown in local recipient table"}}, 0},
		{[]string{"bounce"}, [][2]string{{"RCPT TO:<zed@local.test>", "550 5.1.1 <zed@local.test>: Recipient address rejected: User unknown in local recipient table"}}, 1},
		{[]string{"policy"}, [][2]string{{"RCPT TO:<moved@local.test>", "550 5.1.6 <moved@local.test>: Recipient address rejected: User has moved to new@elsewhere.example"}}, 0},
		{[]string{"bounce"}, [][2]string{{"RCPT TO:<moved@local.test>", "550 5.1.6 <moved@local.test>: Recipient address rejected: User has moved to new@elsewhere.example"}}, 1},
		{[]string{"bounce"}, [][2]string{{"RCPT TO:<nobody@alias.test>", "550 5.1.1 <nobody@alias.test>: Recipient address rejected: User unknown in virtual alias table"}}, 1},
	} {
		notices := &recorder{}
		validate := withValidation(t, lines)
		ts := start(t, func(c *Config) {
			validate(c)
			c.NotifyClasses = tc.classes
			c.Notify = notices
		})
		c := ts.dial(t)
		c.expect("220 mx.test ESMTP Postfix")
		c.cmd("HELO client.example", "250 mx.test")
		c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
		for _, step := range tc.cmds {
			c.cmd(step[0], step[1])
		}
		c.cmd("QUIT", "221 2.0.0 Bye")
		ts.log.wait(t, "disconnect from ")
		if n := notices.count(); n != tc.want {
			t.Errorf("notify_classes %v, %s: %d notices, want %d", tc.classes, tc.cmds[0][0], n, tc.want)
		}
	}
}

// TestNoticeHidesAuthResponse: a transcript mailed to the postmaster never
// carries the password an AUTH PLAIN line holds.
func TestNoticeHidesAuthResponse(t *testing.T) {
	notices := &recorder{}
	ts := start(t, func(c *Config) {
		c.NotifyClasses = []string{"protocol"}
		c.Notify = notices
	})
	c := ts.dial(t)
	c.expect("220 mx.test ESMTP Postfix")
	c.cmd("HELO c", "250 mx.test")
	c.cmd("AUTH PLAIN AGFubgBzZWNyZXQ=", "503 5.5.1 Error: authentication not enabled")
	c.cmd("QUIT", "221 2.0.0 Bye")
	ts.log.wait(t, "disconnect from ")
	waitFor(t, "the notice", func() bool { return notices.count() == 1 })
	_, _, msg := notices.get(0)
	if body := noticeBody(msg); strings.Contains(body, "AGFubgBzZWNyZXQ=") || !strings.Contains(body, "In:  AUTH PLAIN ********") {
		t.Errorf("notice body:\n%s", body)
	}
}
