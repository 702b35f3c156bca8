package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// TestPickupRejectBounces submits with sendmail a message that header_checks
// rejects: as in Postfix (pickup asks cleanup to bounce), the sender gets a
// non-delivery notice with the reject text and the message's headers, the
// recipients get nothing, and the maildrop file is gone.
func TestPickupRejectBounces(t *testing.T) {
	dir := t.TempDir()
	checks := filepath.Join(dir, "header_checks")
	write(t, checks, "/^Subject: spam/ REJECT no spam please\n")
	d := startDaemon(t, testdb.SQLiteURL(t), "header_checks = regexp:"+checks)

	msg := "From: alice@localhost\nSubject: spam here\n\nbody text\n"
	if out, err := d.sendmailCmd(t, msg, "-f", "alice@localhost", "bob@localhost", "carol@localhost").CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v %s", err, out)
	}
	notice := d.waitMail(t, "alice", "Undelivered Mail Returned to Sender")
	for _, want := range []string{
		"<bob@localhost>: no spam please", "<carol@localhost>: no spam please",
		"Status: 5.7.1", "Diagnostic-Code: X-Postfix; no spam please",
		"Content-Type: text/rfc822-headers", "Subject: spam here",
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice lacks %q:\n%s", want, notice)
		}
	}
	if strings.Contains(notice, "body text") {
		t.Errorf("notice returns the body, Postfix returns the headers only:\n%s", notice)
	}
	d.waitLog(t,
		`postfix/cleanup\[\d+\]: [0-9A-F]+: reject: header Subject: spam here from local; from=<alice@localhost> to=<carol@localhost>: 5\.7\.1 no spam please`,
		`postfix/cleanup\[\d+\]: [0-9A-F]+: to=<carol@localhost>, relay=none, delay=[0-9.]+, delays=[0-9.]+/0/0/0, dsn=5\.7\.1, status=bounced \(no spam please\)`,
		`postfix/bounce\[\d+\]: [0-9A-F]+: sender non-delivery notification: [0-9A-F]+`)
	peers.WaitFor(t, 10*time.Second, func() bool { return len(d.maildropFiles(t)) == 0 }, "an empty maildrop")
	if d.hasMail("bob", "spam here") || d.hasMail("carol", "spam here") {
		t.Error("a recipient got the rejected message")
	}
}
