package smtpd

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"os"
	"sqlmta/internal/testcert"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

// peerCert writes mx.test's certificate and key into a new directory a
// Postfix peer can read, and returns the directory, the files and the
// certificate loaded for smtpd.
func peerCert(t *testing.T) (dir, certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	dir = t.TempDir()
	os.Chmod(dir, 0o755)
	certFile, keyFile = testcert.Files(t, dir, "mx.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return dir, certFile, keyFile, cert
}

// tlsStep is one write in a TLS transcript: the text, how many replies it
// gets (a multi-line reply counts once), and whether a TLS handshake
// follows those replies.
type tlsStep struct {
	send      string
	replies   int
	handshake bool
}

// tlsTranscript plays steps against addr, then QUIT, and returns every
// reply line, the host name replaced; "TLS" marks each handshake.
func tlsTranscript(t *testing.T, addr string, steps []tlsStep) string {
	t.Helper()
	return tlsTranscriptWith(t, addr, nil, steps)
}

// tlsTranscriptWith is tlsTranscript with a client certificate, sent
// whatever CAs the server names.
func tlsTranscriptWith(t *testing.T, addr string, cert *tls.Certificate, steps []tlsStep) string {
	t.Helper()
	var conn net.Conn
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { conn.Close() }()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	var out strings.Builder
	readReply := func() bool {
		for {
			l, err := br.ReadString('\n')
			out.WriteString(l)
			if err != nil {
				return false
			}
			if len(l) < 4 || l[3] != '-' {
				return true
			}
		}
	}
	readReply() // greeting
	for _, st := range steps {
		if _, err := io.WriteString(conn, st.send); err != nil {
			t.Fatalf("%q: %v", st.send, err)
		}
		for i := 0; i < st.replies; i++ {
			if !readReply() {
				return strings.ReplaceAll(out.String(), "mx.test", "HOST")
			}
		}
		if st.handshake {
			cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"}
			if cert != nil {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			tc := tls.Client(conn, cfg)
			if err := tc.Handshake(); err != nil {
				out.WriteString("TLS failed\n")
				return strings.ReplaceAll(out.String(), "mx.test", "HOST")
			}
			out.WriteString("TLS\n")
			conn, br = tc, bufio.NewReader(tc)
		}
	}
	io.WriteString(conn, "QUIT\r\n")
	rest, _ := io.ReadAll(br)
	out.Write(rest)
	return strings.ReplaceAll(out.String(), "mx.test", "HOST")
}

// TestDifferentialStarttls runs STARTTLS dialogues against a real Postfix
// 3.7 and against smtpd with the same certificate: at
// smtpd_tls_security_level = may (with reject_plaintext_session in the
// relay restrictions) and at encrypt. The transcripts must be the same.
func TestDifferentialStarttls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	_, certFile, keyFile, cert := peerCert(t)
	sink := peers.StartSink(t, peers.SinkOptions{})
	common := "mydestination = local.test\nmynetworks = 127.0.0.0/8\nmyhostname = mx.test\n" +
		"smtpd_tls_cert_file = " + certFile + "\nsmtpd_tls_key_file = " + keyFile + "\n"
	relay := []string{"reject_plaintext_session", "permit_mynetworks", "reject_unauth_destination"}

	t.Run("may", func(t *testing.T) {
		pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[" + strings.Replace(sink.Addr(), ":", "]:", 1),
			ExtraMainCf: common + "smtpd_tls_security_level = may\nsmtpd_relay_restrictions = " + strings.Join(relay, " ") + "\n"})
		ts := start(t, func(c *Config) {
			c.TLS.Server = &tls.Config{Certificates: []tls.Certificate{cert}}
			c.RelayRestrictions = relay
		})
		tx := "MAIL FROM:<a@example.org>\r\nRCPT TO:<x@remote.example>\r\n"
		cases := [][]tlsStep{
			{{"EHLO client.test\r\n", 1, false}, {"STARTTLS x\r\n", 1, false}, {"STARTTLS\r\n", 1, true},
				{tx, 2, false}, {"EHLO client.test\r\n", 1, false}, {"STARTTLS\r\n", 1, false}, {tx, 2, false}},
			{{"EHLO client.test\r\n" + tx + "RSET\r\n", 4, false}, {"STARTTLS\r\n", 1, true}, {"EHLO client.test\r\n" + tx, 3, false},
				{"DATA\r\nSubject: tls\r\n\r\nover TLS\r\n.\r\n", 2, false}},
			{{"STARTTLS\r\n", 1, true}, {"HELO client.test\r\n" + tx, 3, false}},
			{{"HELO client.test\r\n", 1, false}, {"STARTTLS\r\n", 1, true}, {"EHLO client.test\r\n", 1, false}},
			// Commands pipelined after STARTTLS are dropped unread.
			{{"EHLO client.test\r\nSTARTTLS\r\nNOOP\r\n", 2, true}, {"NOOP\r\n", 1, false}},
			{{"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n", 2, false}, {"STARTTLS\r\n", 1, true}, {"RCPT TO:<x@remote.example>\r\n", 1, false}},
		}
		for _, steps := range cases {
			want := tlsTranscript(t, pf.Addr(), steps)
			got := tlsTranscript(t, ts.addr, steps)
			if normQueued(want) != normQueued(got) {
				t.Errorf("%v:\npostfix:\n%s\nsmtpd:\n%s", steps, want, got)
			}
		}
		// The message sent over TLS: Postfix's Received header says ESMTPS.
		peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() >= 1 }, "the message at the sink")
		dump, _ := os.ReadFile(sink.DumpPath())
		if !strings.Contains(string(dump), "with ESMTPS id") {
			t.Errorf("Postfix's Received header does not say ESMTPS:\n%s", dump)
		}
		ts.rec.mu.Lock()
		envs := ts.rec.envs
		ts.rec.mu.Unlock()
		if len(envs) != 1 || !envs[0].TLS || envs[0].Protocol != "ESMTP" {
			t.Errorf("smtpd submitted %d messages, want one ESMTP over TLS: %+v", len(envs), envs)
		}
	})

	t.Run("encrypt", func(t *testing.T) {
		pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9",
			ExtraMainCf: common + "smtpd_tls_security_level = encrypt\n"})
		ts := start(t, func(c *Config) {
			c.TLS.Server = &tls.Config{Certificates: []tls.Certificate{cert}}
			c.TLS.Enforce = true
		})
		cases := [][]tlsStep{
			{{"EHLO client.test\r\n", 1, false}, {"MAIL FROM:<a@example.org>\r\n", 1, false}, {"RCPT TO:<x@local.test>\r\n", 1, false},
				{"DATA\r\n", 1, false}, {"BDAT 1 LAST\r\n", 1, false}, {"VRFY x\r\n", 1, false}, {"ETRN local.test\r\n", 1, false},
				{"AUTH PLAIN AGFAYg==\r\n", 1, false}, {"NOOP\r\n", 1, false}, {"RSET\r\n", 1, false}, {"HELP\r\n", 1, false},
				{"STARTTLS\r\n", 1, true}, {"MAIL FROM:<a@example.org>\r\n", 1, false}, {"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n", 2, false}},
		}
		for _, steps := range cases {
			want := tlsTranscript(t, pf.Addr(), steps)
			got := tlsTranscript(t, ts.addr, steps)
			if normQueued(want) != normQueued(got) {
				t.Errorf("%v:\npostfix:\n%s\nsmtpd:\n%s", steps, want, got)
			}
		}
	})
}
