package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/store"
	"sqlmta/store/open"
)

// queueMessage sends one message over SMTP and returns its queue ID.
func queueMessage(t *testing.T, addr, from string, to []string, data string) string {
	t.Helper()
	s := dialSMTP(t, addr)
	if got := s.cmd("EHLO client.example.org"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("EHLO: %q", got)
	}
	if got := s.cmd("MAIL FROM:<" + from + ">"); got != "250 2.1.0 Ok" {
		t.Fatalf("MAIL FROM:<%s>: %q", from, got)
	}
	for _, r := range to {
		if got := s.cmd("RCPT TO:<" + r + ">"); got != "250 2.1.5 Ok" {
			t.Fatalf("RCPT TO:<%s>: %q", r, got)
		}
	}
	if got := s.cmd("DATA"); !strings.HasPrefix(got, "354 ") {
		t.Fatalf("DATA: %q", got)
	}
	got := s.cmd(data + "\r\n.")
	m := regexp.MustCompile(`^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("end of DATA: %q", got)
	}
	s.cmd("QUIT")
	return m[1]
}

// maildirFiles returns the messages delivered to user@localhost.
func (d *daemon) maildirFiles(user string) []string {
	dir := filepath.Join(d.dir, "mail", user, "Maildir", "new")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitMail waits until user@localhost has a message containing marker and
// returns it.
func (d *daemon) waitMail(t *testing.T, user, marker string) string {
	t.Helper()
	var found string
	peers.WaitFor(t, 30*time.Second, func() bool {
		for _, m := range d.maildirFiles(user) {
			if strings.Contains(m, marker) {
				found = m
				return true
			}
		}
		return false
	}, user+"@localhost to receive "+marker)
	return found
}

func (d *daemon) hasMail(user, marker string) bool {
	for _, m := range d.maildirFiles(user) {
		if strings.Contains(m, marker) {
			return true
		}
	}
	return false
}

// TestAccessAndHeaderActions drives smtpd's access actions HOLD, REDIRECT,
// BCC and FILTER, header_checks' HOLD and REDIRECT, and header address
// rewriting through the real daemon, on every database.
func TestAccessAndHeaderActions(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		filter := peers.StartSink(t, peers.SinkOptions{})
		access := filepath.Join(dir, "sender_access")
		write(t, access, strings.Join([]string{
			"hold@example.org     HOLD",
			"redir@example.org    REDIRECT carol@localhost",
			"bcc@example.org      BCC dave@localhost",
			fmt.Sprintf("filt@example.org     FILTER smtp:[127.0.0.1]:%d", filter.Port()),
		}, "\n")+"\n")
		checks := filepath.Join(dir, "header_checks")
		write(t, checks, "/^Subject: hdr-hold/ HOLD\n/^Subject: hdr-redirect/ REDIRECT erin@localhost\n")
		d := startDaemon(t, url,
			"smtpd_sender_restrictions = check_sender_access texthash:"+access,
			"header_checks = regexp:"+checks,
		)
		st, err := open.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		hd := st.(store.Holder)

		t.Run("HOLD stays queued until released", func(t *testing.T) {
			id := queueMessage(t, d.addr, "hold@example.org", []string{"alice@localhost"}, "Subject: held\r\n\r\nheld-body")
			d.waitLog(t, id+`: message-id=`, `: hold: RCPT from localhost\[127\.0\.0\.1\]: <hold@example\.org>: Sender address triggers HOLD action`)
			// A later message passes while the held one stays.
			queueMessage(t, d.addr, "plain@example.org", []string{"alice@localhost"}, "Subject: plain\r\n\r\nplain-body")
			d.waitMail(t, "alice", "plain-body")
			if d.hasMail("alice", "held-body") || strings.Contains(d.maillog(), id+": from=") {
				t.Fatalf("held message delivered:\n%s", d.maillog())
			}
			m, err := st.MessageGet(context.Background(), id)
			if err != nil || m.Recipients[0].State != store.StateHold {
				t.Fatalf("held message: %+v, %v", m, err)
			}
			if n, err := hd.MessageRelease(context.Background(), id); err != nil || n != 1 {
				t.Fatalf("MessageRelease = %d, %v", n, err)
			}
			d.waitMail(t, "alice", "held-body")
			d.waitLog(t, id+`: removed`)
		})
		t.Run("REDIRECT replaces the recipients", func(t *testing.T) {
			id := queueMessage(t, d.addr, "redir@example.org", []string{"alice@localhost", "bob@localhost"}, "Subject: r\r\n\r\nredirect-body")
			d.waitMail(t, "carol", "redirect-body")
			d.waitLog(t, id+`: to=<carol@localhost>, orig_to=<alice@localhost>, relay=virtual`, id+`: removed`)
			if d.hasMail("alice", "redirect-body") || d.hasMail("bob", "redirect-body") {
				t.Error("original recipients got the redirected message")
			}
		})
		t.Run("BCC adds a recipient", func(t *testing.T) {
			id := queueMessage(t, d.addr, "bcc@example.org", []string{"alice@localhost"}, "Subject: b\r\n\r\nbcc-body")
			d.waitMail(t, "alice", "bcc-body")
			d.waitMail(t, "dave", "bcc-body")
			d.waitLog(t, id+`: from=<bcc@example\.org>, size=\d+, nrcpt=2 \(queue active\)`)
		})
		t.Run("FILTER sends the message to the filter", func(t *testing.T) {
			id := queueMessage(t, d.addr, "filt@example.org", []string{"alice@localhost"}, "Subject: f\r\n\r\nfilter-body")
			peers.WaitFor(t, 30*time.Second, func() bool { return filter.Count() == 1 }, "the filter to get the message")
			d.waitLog(t, id+`: to=<alice@localhost>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent`, id+`: removed`)
			if d.hasMail("alice", "filter-body") {
				t.Error("filtered message also delivered to its recipient")
			}
		})
		t.Run("header_checks HOLD and REDIRECT", func(t *testing.T) {
			held := queueMessage(t, d.addr, "x@example.org", []string{"alice@localhost"}, "Subject: hdr-hold\r\n\r\nhdr-held-body")
			red := queueMessage(t, d.addr, "x@example.org", []string{"alice@localhost"}, "Subject: hdr-redirect\r\n\r\nhdr-red-body")
			d.waitMail(t, "erin", "hdr-red-body")
			d.waitLog(t, held+`: hold: header Subject: hdr-hold from localhost\[127\.0\.0\.1\]; from=<x@example\.org> to=<alice@localhost> proto=ESMTP helo=<client\.example\.org>`,
				red+`: redirect: header Subject: hdr-redirect from localhost\[127\.0\.0\.1\]; .*: erin@localhost`)
			m, err := st.MessageGet(context.Background(), held)
			if err != nil || m.Recipients[0].State != store.StateHold {
				t.Fatalf("header HOLD: %+v, %v", m, err)
			}
			if d.hasMail("alice", "hdr-") {
				t.Error("alice got a held or redirected message")
			}
		})
		t.Run("header addresses rewritten for a local client", func(t *testing.T) {
			queueMessage(t, d.addr, "x@example.org", []string{"alice@localhost"},
				"From: Joe <joe>\r\nTo: alice@localhost, bob\r\nBcc: secret@localhost\r\nSubject: rw\r\n\r\nrewrite-body")
			msg := d.waitMail(t, "alice", "rewrite-body")
			for _, want := range []string{"\nFrom: Joe <joe@mx.test.example>\n", "\nTo: alice@localhost, bob@mx.test.example\n"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "secret@") {
				t.Errorf("Bcc header kept:\n%s", msg)
			}
		})
	})
}
