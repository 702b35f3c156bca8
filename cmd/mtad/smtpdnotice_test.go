package main

import (
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// TestSMTPErrorNoticeToPostmaster has smtpd refuse a client with
// notify_classes = policy and finds the transcript Postfix would send in
// the postmaster's Maildir, having gone through cleanup, the SQL queue and
// delivery like any other mail.
func TestSMTPErrorNoticeToPostmaster(t *testing.T) {
	d := startDaemon(t, testdb.SQLiteURL(t),
		"notify_classes = policy",
		"error_notice_recipient = postmaster@localhost",
		"smtpd_client_restrictions = reject")
	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	step := func(cmd, want string) {
		t.Helper()
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		got, err := tp.ReadLine()
		if err != nil || got != want {
			t.Fatalf("%q: got %q (%v), want %q", cmd, got, err, want)
		}
	}
	step("", "220 mx.test.example ESMTP Postfix")
	step("HELO client.example.org", "250 mx.test.example")
	step("MAIL FROM:<a@example.org>", "250 2.1.0 Ok")
	reject := "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
	step("RCPT TO:<bob@localhost>", reject)
	step("QUIT", "221 2.0.0 Bye")

	newDir := filepath.Join(d.dir, "mail", "postmaster", "Maildir", "new")
	var files []os.DirEntry
	peers.WaitFor(t, 30*time.Second, func() bool {
		files, _ = os.ReadDir(newDir)
		return len(files) > 0
	}, "a notice in "+newDir)
	if len(files) != 1 {
		t.Fatalf("%d notices, want 1", len(files))
	}
	b, err := os.ReadFile(filepath.Join(newDir, files[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	msg := string(b)
	for _, re := range []string{
		`(?m)^Return-Path: <double-bounce@mx\.test\.example>$`,
		`(?m)^Delivered-To: postmaster@localhost$`,
		`(?m)^Received: by mx\.test\.example \(Postfix\)\n\tid [0-9A-F]+; `,
		`(?m)^From: MAILER-DAEMON@mx\.test\.example \(Mail Delivery System\)$`,
		`(?m)^To: postmaster@localhost \(Postmaster\)$`,
		`(?m)^Subject: Postfix SMTP server: errors from localhost\[127\.0\.0\.1\]$`,
		`(?m)^Message-Id: <`,
		`\n\nTranscript of session follows\.\n\n Out: 220 mx\.test\.example ESMTP Postfix\n In:  HELO client\.example\.org\n Out: 250 mx\.test\.example\n` +
			` In:  MAIL FROM:<a@example\.org>\n Out: 250 2\.1\.0 Ok\n In:  RCPT TO:<bob@localhost>\n Out: ` + regexp.QuoteMeta(reject) + `\n` +
			` In:  QUIT\n Out: 221 2\.0\.0 Bye\n\n\nFor other details, see the local mail logfile\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(msg) {
			t.Errorf("notice lacks %s:\n%s", re, msg)
		}
	}
	if strings.Contains(msg, "X-Original-To: bob") {
		t.Errorf("the refused recipient got mail")
	}
	d.waitLog(t,
		`postfix/smtpd\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: `+regexp.QuoteMeta(reject)+`; from=<a@example\.org> to=<bob@localhost> proto=SMTP helo=<client\.example\.org>`,
		`postfix/qmgr\[\d+\]: [0-9A-F]+: from=<double-bounce@mx\.test\.example>, size=\d+, nrcpt=1 \(queue active\)`,
		`postfix/virtual\[\d+\]: [0-9A-F]+: to=<postmaster@localhost>, relay=virtual, .*status=sent \(delivered to maildir\)`,
	)
}
