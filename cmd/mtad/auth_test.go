package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"sqlmta/internal/peers"
	"sqlmta/internal/testcert"
)

// TestSubmissionWithDovecotAuth is a hosting provider's submission service:
// master.cf's submission entry with Debian's usual -o overrides (TLS
// required, AUTH through Dovecot's auth socket, relaying only for
// authenticated clients, senders checked against their owners in a managed
// SQL table). An authenticated user relays mail as her own address, not as
// someone else's, and an unauthenticated client relays nothing.
func TestSubmissionWithDovecotAuth(t *testing.T) {
	mtactl := filepath.Join(tools(t), "mtactl")
	databases(t, func(t *testing.T, url string) {
		dc := peers.StartDovecot(t, peers.DovecotOptions{Passwords: map[string]string{"ann@hosted.test": "secret"}})
		sink := peers.StartSink(t, peers.SinkOptions{})
		dir := t.TempDir()
		certFile, keyFile := testcert.Files(t, dir, "mx.test.example")
		logins := filepath.Join(dir, "sender_logins")
		write(t, logins, "ann@hosted.test ann@hosted.test\n@shared.test ann@hosted.test\nbob@hosted.test bob@hosted.test\n")
		d := startDaemon(t, url,
			fmt.Sprintf("relayhost = [127.0.0.1]:%d", sink.Port()),
			"mynetworks = 192.0.2.0/24",
			"smtpd_tls_cert_file = "+certFile,
			"smtpd_tls_key_file = "+keyFile,
			"smtpd_sasl_type = dovecot",
			"smtpd_sasl_path = "+dc.AuthSocket(),
			"smtpd_sasl_authenticated_header = yes",
			"smtpd_sender_login_maps = hash:"+logins)
		if out, err := exec.Command(mtactl, "-c", d.dir, "map", "import", "hash:"+logins).CombinedOutput(); err != nil {
			t.Fatalf("map import: %v\n%s", err, out)
		}
		submission := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
		d.stop()
		write(t, filepath.Join(d.dir, "master.cf"), d.addr+" inet n - n - - smtpd\n"+
			submission+" inet n - y - - smtpd\n"+
			"  -o syslog_name=postfix/submission\n"+
			"  -o smtpd_tls_security_level=encrypt\n"+
			"  -o smtpd_sasl_auth_enable=yes\n"+
			"  -o smtpd_tls_auth_only=yes\n"+
			"  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"+
			"  -o smtpd_sender_restrictions=reject_sender_login_mismatch\n"+
			"  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n")
		d.start()

		submit := func(user, pass, from string) error {
			c, err := gosmtp.DialStartTLS(submission, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Hello("laptop.example.org"); err != nil {
				return err
			}
			if user != "" {
				if err := c.Auth(gosasl.NewPlainClient("", user, pass)); err != nil {
					return err
				}
			}
			return c.SendMail(from, []string{"friend@remote.example"}, strings.NewReader("Subject: from "+from+"\r\n\r\nhi\r\n"))
		}
		if err := submit("ann@hosted.test", "secret", "ann@hosted.test"); err != nil {
			t.Fatalf("ann as herself: %v", err)
		}
		if err := submit("ann@hosted.test", "secret", "info@shared.test"); err != nil {
			t.Fatalf("ann as info@shared.test, which she owns: %v", err)
		}
		for _, tc := range []struct{ user, pass, from, want string }{
			{"ann@hosted.test", "secret", "bob@hosted.test", "553 5.7.1 <bob@hosted.test>: Sender address rejected: not owned by user ann@hosted.test"},
			{"ann@hosted.test", "wrong", "ann@hosted.test", "535 5.7.8 Error: authentication failed: (reason unavailable)"},
			{"", "", "someone@example.org", "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"},
		} {
			err := submit(tc.user, tc.pass, tc.from)
			var se *gosmtp.SMTPError
			f := strings.SplitN(tc.want, " ", 3)
			if !errors.As(err, &se) || strconv.Itoa(se.Code) != f[0] || fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]) != f[1] || se.Message != f[2] {
				t.Errorf("%s/%s as %s: %v, want %s", tc.user, tc.pass, tc.from, err, tc.want)
			}
		}
		peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() >= 2 }, "two messages at the sink")
		time.Sleep(500 * time.Millisecond)
		if n := sink.Count(); n != 2 {
			t.Errorf("the sink got %d messages, want 2", n)
		}
		b, _ := os.ReadFile(sink.DumpPath())
		dump := string(b)
		re := regexp.MustCompile(`Received: from laptop\.example\.org \(localhost \[127\.0\.0\.1\]\)\r?\n\t\(Authenticated sender: ann@hosted\.test\)\r?\n\tby mx\.test\.example \(Postfix\) with ESMTPSA id`)
		if len(re.FindAllString(dump, -1)) != 2 {
			t.Errorf("the relayed messages lack %s:\n%s", re, dump)
		}
		d.waitLog(t,
			`postfix/submission/smtpd\[\d+\]: [0-9A-F]+: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=ann@hosted\.test`,
			`postfix/submission/smtpd\[\d+\]: warning: localhost\[127\.0\.0\.1\]: SASL PLAIN authentication failed: \(reason unavailable\), sasl_username=ann@hosted\.test`)
	})
}
