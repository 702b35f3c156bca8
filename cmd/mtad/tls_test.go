package main

import (
	"crypto/tls"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"sqlmta/internal/peers"
	"sqlmta/internal/testcert"
	"sqlmta/internal/testdb"
)

// TestSmtpdTLS runs mtad with Debian's usual TLS lines in main.cf and a
// "submissions" service in master.cf (port 465 style, -o
// smtpd_tls_wrappermode=yes): mail sent after STARTTLS and over the
// wrapper port arrives with "with ESMTPS" in its Received header, and a
// renewed certificate is served after SIGHUP.
func TestSmtpdTLS(t *testing.T) {
	certDir := t.TempDir()
	certFile, keyFile := testcert.Files(t, certDir, "mx.test.example")
	d := startDaemon(t, testdb.SQLiteURL(t),
		"smtpd_tls_security_level = may",
		"smtpd_tls_cert_file = "+certFile,
		"smtpd_tls_key_file = "+keyFile,
		"smtpd_tls_loglevel = 1")
	wrapper := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	d.stop()
	write(t, filepath.Join(d.dir, "master.cf"), d.addr+" inet n - n - - smtpd\n"+
		wrapper+" inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt\n")
	d.start()

	// STARTTLS on the plain port (go-smtp fails when it is not announced).
	c, err := gosmtp.DialStartTLS(d.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Hello("client.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("bob@example.org", []string{"alice@localhost"}, strings.NewReader("Subject: starttls\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("send after STARTTLS: %v", err)
	}
	c.Quit()

	// The wrapper port.
	wc, err := gosmtp.DialTLS(wrapper, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.Hello("client.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := wc.SendMail("bob@example.org", []string{"alice@localhost"}, strings.NewReader("Subject: wrapper\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("send over the wrapper port: %v", err)
	}
	wc.Quit()

	for _, subject := range []string{"starttls", "wrapper"} {
		msg := d.waitMail(t, "alice", "Subject: "+subject)
		re := `(?m)^Received: from client\.example\.org \(localhost \[127\.0\.0\.1\]\)\n\tby mx\.test\.example \(Postfix\) with ESMTPS id [0-9A-F]+\n`
		if !regexp.MustCompile(re).MatchString(msg) {
			t.Errorf("%s: Received header does not match %s:\n%s", subject, re, msg)
		}
	}
	d.waitLog(t, `postfix/smtpd\[\d+\]: Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: TLSv1\.3 with cipher`)

	// A renewed certificate counts after SIGHUP.
	first := serverCert(t, d.addr)
	testcert.Files(t, certDir, "mx.test.example")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return serverCert(t, d.addr) != first }, "the renewed certificate after SIGHUP")
}

// serverCert returns the serial number of the certificate mtad presents
// after STARTTLS.
func serverCert(t *testing.T, addr string) string {
	t.Helper()
	c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatalf("no TLS after STARTTLS")
	}
	return st.PeerCertificates[0].SerialNumber.String()
}

// TestSmtpdTLSEncryptNeedsCertificate: level encrypt without a certificate
// stops start-up with a message naming the parameters.
func TestSmtpdTLSEncryptNeedsCertificate(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.cf"), strings.Join([]string{
		"compatibility_level = 3.6",
		"myhostname = mx.test.example",
		"data_directory = " + filepath.Join(dir, "data"),
		"queue_directory = " + filepath.Join(dir, "spool"),
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"database_url = " + testdb.SQLiteURL(t),
		"smtpd_tls_security_level = encrypt",
	}, "\n")+"\n")
	write(t, filepath.Join(dir, "master.cf"), fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd\n", peers.FreePort(t)))
	out, err := exec.Command(mtadBin, "-c", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs smtpd_tls_cert_file or smtpd_tls_chain_files") {
		t.Errorf("mtad with encrypt and no certificate: %v\n%s", err, out)
	}
}
