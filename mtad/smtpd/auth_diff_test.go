package smtpd

import (
	"crypto/tls"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/matchlist"
	"sqlmta/mtad/sasl"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestDifferentialAuth runs AUTH dialogues against a real Postfix 3.7 and
// against smtpd, both asking the same real Dovecot (smtpd_sasl_type =
// dovecot): mechanisms, PLAIN, LOGIN, failures, aborts, syntax, relaying
// after AUTH, the sender-login-mismatch restrictions, and
// smtpd_tls_auth_only with STARTTLS. The transcripts must be the same, and
// the Received header of authenticated mail must be Postfix's.
func TestDifferentialAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postfix and Dovecot")
	}
	dc := peers.StartDovecot(t, peers.DovecotOptions{Passwords: map[string]string{"ann@example.org": "secret", "bob@example.org": "hunter2"}})
	dir, certFile, keyFile, cert := peerCert(t)
	logins := filepath.Join(dir, "logins")
	os.WriteFile(logins, []byte("ann@example.org ann@example.org\nshared@example.org ann@example.org, bob@example.org\n"), 0o644)
	sink := peers.StartSink(t, peers.SinkOptions{})
	sender := []string{"reject_sender_login_mismatch"}
	common := "mydestination = local.test\nmynetworks = 127.0.0.2/32\nmyhostname = mx.test\n" +
		"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:" + dc.AuthAddr() + "\n" +
		"smtpd_sasl_authenticated_header = yes\n" +
		"smtpd_sender_login_maps = texthash:" + logins + "\nsmtpd_sender_restrictions = " + strings.Join(sender, " ") + "\n" +
		"smtpd_tls_cert_file = " + certFile + "\nsmtpd_tls_key_file = " + keyFile + "\nsmtpd_tls_security_level = may\n"
	client, err := sasl.New("inet:"+dc.AuthAddr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	filter, _ := sasl.ParseMechanismFilter([]string{"!external", "static:rest"})
	mod := func(authOnly bool) func(*Config) {
		return func(c *Config) {
			c.MyNetworks, _ = matchlist.ParseNetworks([]string{"127.0.0.2/32"})
			c.RelayRestrictions = nil // the default: permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
			c.SenderRestrictions = sender
			c.SenderLoginMaps = []string{"texthash:" + logins}
			c.OpenMap = fileMaps(nil)
			c.TLS.Server = &tls.Config{Certificates: []tls.Certificate{cert}}
			c.TLS.AuthOnly = authOnly
			c.SASL = SASLConfig{Client: client, Service: "smtp", SecurityOptions: []string{"noanonymous"},
				TLSSecurityOptions: []string{"noanonymous"}, MechanismFilter: filter, AuthenticatedHeader: true}
		}
	}
	relayhost := "[" + strings.Replace(sink.Addr(), ":", "]:", 1)
	ann := "AUTH PLAIN " + b64("\x00ann@example.org\x00secret") + "\r\n"
	compare := func(t *testing.T, pfAddr, ourAddr string, cases [][]tlsStep) {
		t.Helper()
		for _, steps := range cases {
			want := tlsTranscript(t, pfAddr, steps)
			got := tlsTranscript(t, ourAddr, steps)
			if normQueued(want) != normQueued(got) {
				t.Errorf("%v:\npostfix:\n%s\nsmtpd:\n%s", steps, want, got)
			}
		}
	}

	t.Run("plain", func(t *testing.T) {
		pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: relayhost, ExtraMainCf: common})
		ts := start(t, mod(false))
		ehlo := tlsStep{"EHLO client.test\r\n", 1, false}
		cases := [][]tlsStep{
			{ehlo, {ann, 1, false}, {ann, 1, false}, {"MAIL FROM:<ann@example.org> AUTH=<>\r\nRCPT TO:<x@remote.example>\r\n", 2, false},
				{"DATA\r\nSubject: authenticated\r\n\r\nbody\r\n.\r\n", 2, false}},
			{ehlo, {"AUTH PLAIN " + b64("\x00ann@example.org\x00wrong") + "\r\n", 1, false},
				{"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\n", 2, false}},
			{ehlo, {"AUTH LOGIN\r\n", 1, false}, {b64("bob@example.org") + "\r\n", 1, false}, {b64("hunter2") + "\r\n", 1, false},
				{"MAIL FROM:<shared@example.org>\r\nRCPT TO:<x@remote.example>\r\nRSET\r\n", 3, false},
				{"MAIL FROM:<ann@example.org>\r\nRCPT TO:<x@remote.example>\r\n", 2, false}},
			{ehlo, {"AUTH LOGIN\r\n", 1, false}, {"*\r\n", 1, false}, {"AUTH PLAIN\r\n", 1, false}, {b64("\x00ann@example.org\x00secret") + "\r\n", 1, false}},
			{ehlo, {"AUTH XYZ\r\n", 1, false}, {"AUTH\r\n", 1, false}, {"AUTH PLAIN a b\r\n", 1, false}, {"AUTH PLAIN !!!!\r\n", 1, false},
				{"MAIL FROM:<ann@example.org>\r\n", 1, false}, {ann, 1, false}, {"RCPT TO:<x@local.test>\r\n", 1, false}},
			{{"AUTH PLAIN " + b64("\x00ann@example.org\x00secret") + "\r\n", 1, false}, {"MAIL FROM:<a@b.example> AUTH=<a@b.example> AUTH=<>\r\n", 1, false}},
			{ehlo, {"MAIL FROM:<a@b.example> AUTH=<a@b.example> AUTH=<>\r\n", 1, false}},
		}
		compare(t, pf.Addr(), ts.addr, cases)
		ts.log.wait(t, "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=ann@example.org")
		ts.log.wait(t, "warning: localhost[127.0.0.1]: SASL LOGIN authentication aborted")
		ts.log.wait(t, ": client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=ann@example.org")
		peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() >= 1 }, "the message at the sink")
		dump, _ := os.ReadFile(sink.DumpPath())
		re := regexp.MustCompile(`Received: from client\.test \(localhost \[127\.0\.0\.1\]\)\r?\n\t\(Authenticated sender: ann@example\.org\)\r?\n\tby mx\.test \(Postfix\) with ESMTPA id`)
		if !re.Match(dump) {
			t.Errorf("Postfix's Received header does not match %s:\n%s", re, dump)
		}
		ts.rec.mu.Lock()
		envs := ts.rec.envs
		ts.rec.mu.Unlock()
		if len(envs) != 1 || envs[0].SASLUser != "ann@example.org" || !envs[0].SASLHeader {
			t.Errorf("smtpd submitted %+v, want one message from ann@example.org with the header", envs)
		}
	})

	t.Run("tls_auth_only", func(t *testing.T) {
		pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9", ExtraMainCf: common + "smtpd_tls_auth_only = yes\n"})
		ts := start(t, mod(true))
		cases := [][]tlsStep{
			{{"EHLO client.test\r\n", 1, false}, {ann, 1, false}, {"STARTTLS\r\n", 1, true}, {"EHLO client.test\r\n", 1, false}, {ann, 1, false},
				{"MAIL FROM:<ann@example.org>\r\nRCPT TO:<x@remote.example>\r\n", 2, false}},
			{{"EHLO client.test\r\n", 1, false}, {"STARTTLS\r\n", 1, true}, {"EHLO client.test\r\n", 1, false}, {"AUTH LOGIN " + b64("ann@example.org") + "\r\n", 1, false},
				{b64("secret") + "\r\n", 1, false}, {"MAIL FROM:<bob@example.org>\r\nRCPT TO:<x@remote.example>\r\n", 2, false}},
		}
		compare(t, pf.Addr(), ts.addr, cases)
	})
}
