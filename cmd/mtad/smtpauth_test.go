package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

// TestRelayWithSMTPAuth relays through a smarthost that requires SMTP AUTH
// — a real Postfix checking passwords with a real Dovecot, relaying into
// smtp-sink — with the main.cf lines of every "relay through your ISP"
// tutorial and the password table imported with mtactl, as postmap would
// build it.
func TestRelayWithSMTPAuth(t *testing.T) {
	mtactl := filepath.Join(tools(t), "mtactl")
	dc := peers.StartDovecot(t, peers.DovecotOptions{Passwords: map[string]string{"relay@isp.example": "s3cret"}})
	sink := peers.StartSink(t, peers.SinkOptions{})
	smarthost := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost: "[" + strings.Replace(sink.Addr(), ":", "]:", 1),
		ExtraMainCf: "mynetworks = 127.0.0.2/32\nmyhostname = smarthost.test\n" +
			"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:" + dc.AuthAddr() + "\n" +
			"smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
	})
	relayhost := fmt.Sprintf("[127.0.0.1]:%d", smarthost.Port())
	databases(t, func(t *testing.T, url string) {
		pw := filepath.Join(t.TempDir(), "sasl_passwd")
		write(t, pw, relayhost+" relay@isp.example:s3cret\n")
		d := startDaemon(t, url,
			"relayhost = "+relayhost,
			"smtp_sasl_auth_enable = yes",
			"smtp_sasl_password_maps = hash:"+pw,
			"smtp_sasl_security_options = noanonymous")
		if out, err := exec.Command(mtactl, "-c", d.dir, "map", "import", "hash:"+pw).CombinedOutput(); err != nil {
			t.Fatalf("map import: %v\n%s", err, out)
		}
		before := sink.Count()
		id := fmt.Sprintf("<%d.auth@example.org>", time.Now().UnixNano())
		if err := sendMail(d.addr, "bob@example.org", []string{"friend@remote.example"},
			strings.NewReader("Message-Id: "+id+"\r\nSubject: via the smarthost\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t, fmt.Sprintf(`postfix/smtp\[\d+\]: [0-9A-F]+: to=<friend@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)`, smarthost.Port()))
		peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() > before }, "the message at the sink")
		if ids := sink.MessageIDs(); ids[len(ids)-1] != id {
			t.Errorf("sink's last message is %s, want %s", ids[len(ids)-1], id)
		}
		m := regexp.MustCompile(`status=sent \(250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)`).FindStringSubmatch(d.maillog())
		if m == nil || !strings.Contains(smarthost.Maillog(), m[1]+": client=localhost[127.0.0.1], sasl_method=CRAM-MD5, sasl_username=relay@isp.example") {
			t.Errorf("the smarthost did not log an authenticated client for the message:\n%s", smarthost.Maillog())
		}
		if strings.Contains(d.maillog(), "s3cret") {
			t.Errorf("the password is in the maillog:\n%s", d.maillog())
		}
	})
}
