package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// TestTransportMapsToDovecot routes one hosted domain to a real Dovecot by
// transport_maps and two others to the discard and error transports: SMTP
// in, through the SQL queue, into Dovecot's Maildir, with Postfix's log
// lines; the recipient Dovecot does not know bounces with Dovecot's text.
func TestTransportMapsToDovecot(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@hosted.example"}})
		dir := t.TempDir()
		tmap := filepath.Join(dir, "transport")
		write(t, tmap, fmt.Sprintf("hosted.example lmtp:inet:%s\nquiet.example discard:\n.gone.example error:5.1.1 gone away\n", dc.Addr()))
		d := startDaemon(t, url,
			"virtual_mailbox_domains = localhost, hosted.example",
			"transport_maps = texthash:"+tmap,
		)
		body := "Subject: to dovecot\r\nMessage-ID: <lmtp-e2e@example.org>\r\n\r\nHello Dovecot.\r\n"
		to := []string{"ann@hosted.example", "nobody@hosted.example", "x@quiet.example", "y@sub.gone.example"}
		if err := sendMail(d.addr, "bob@localhost", to, strings.NewReader(body)); err != nil {
			t.Fatalf("send: %v", err)
		}
		var msgs []string
		peers.WaitFor(t, 30*time.Second, func() bool {
			msgs = dc.Messages("ann@hosted.example")
			return len(msgs) == 1
		}, "one message in ann's Dovecot mailbox")
		for _, re := range []string{`(?m)^Message-ID: <lmtp-e2e@example\.org>\r?$`, `(?m)^Return-Path: <bob@localhost>\r?$`, `Hello Dovecot\.`} {
			if !regexp.MustCompile(re).MatchString(msgs[0]) {
				t.Errorf("delivered message lacks %s:\n%s", re, msgs[0])
			}
		}
		relay := regexp.QuoteMeta(fmt.Sprintf("relay=127.0.0.1[127.0.0.1]:%d", dc.Port()))
		d.waitLog(t,
			`postfix/lmtp\[\d+\]: [0-9A-F]+: to=<ann@hosted\.example>, `+relay+`, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 <ann@hosted\.example> \S+ Saved\)`,
			`postfix/lmtp\[\d+\]: [0-9A-F]+: to=<nobody@hosted\.example>, `+relay+`, delay=[\d.]+, delays=[\d./]+, dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 <nobody@hosted\.example> User doesn't exist: nobody@hosted\.example \(in reply to RCPT TO command\)\)`,
			`postfix/discard\[\d+\]: [0-9A-F]+: to=<x@quiet\.example>, relay=none, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(quiet\.example\)`,
			`postfix/error\[\d+\]: [0-9A-F]+: to=<y@sub\.gone\.example>, relay=none, delay=[\d.]+, delays=[\d./]+, dsn=5\.1\.1, status=bounced \(gone away\)`,
			`postfix/bounce\[\d+\]: [0-9A-F]+: sender non-delivery notification: [0-9A-F]+`,
		)
	})
}

// TestVirtualTransportLMTPSocket is the hosting provider's set-up:
// virtual_transport = lmtp:unix:… hands every hosted mailbox to Dovecot
// over its UNIX socket; a mailbox over quota is deferred, not bounced.
func TestVirtualTransportLMTPSocket(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@hosted.example"}, FullUsers: []string{"full@hosted.example"}})
	d := startDaemon(t, testdb.SQLiteURL(t),
		"virtual_mailbox_domains = hosted.example",
		"virtual_transport = lmtp:unix:"+dc.Socket(),
	)
	if err := sendMail(d.addr, "bob@example.org", []string{"ann@hosted.example", "full@hosted.example"},
		strings.NewReader("Subject: socket\r\n\r\nover the socket\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return len(dc.Messages("ann@hosted.example")) == 1 }, "one message for ann")
	relay := regexp.QuoteMeta("relay=mx.test.example[" + dc.Socket() + "]")
	d.waitLog(t,
		`postfix/lmtp\[\d+\]: [0-9A-F]+: to=<ann@hosted\.example>, `+relay+`, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 <ann@hosted\.example> \S+ Saved\)`,
		`postfix/lmtp\[\d+\]: [0-9A-F]+: to=<full@hosted\.example>, `+relay+`, delay=[\d.]+, delays=[\d./]+, dsn=4\.2\.2, status=deferred \(host mx\.test\.example\[[^]]+\] said: 452 4\.2\.2 <full@hosted\.example> Quota exceeded \(mailbox for user is full\) \(in reply to end of DATA command\)\)`,
	)
}

// TestMailboxTransportLMTP: mailbox_transport hands local mailboxes
// (mydestination) to Dovecot instead of writing them itself.
func TestMailboxTransportLMTP(t *testing.T) {
	dc := peers.StartDovecot(t, peers.DovecotOptions{Users: []string{"ann@localhost"}})
	d := startDaemon(t, testdb.SQLiteURL(t),
		"mydestination = localhost",
		"virtual_mailbox_domains =",
		"local_recipient_maps =", // Dovecot knows the users, not the passwd file
		"mailbox_transport = lmtp:unix:"+dc.Socket(),
	)
	if err := sendMail(d.addr, "bob@example.org", []string{"ann@localhost"}, strings.NewReader("Subject: local\r\n\r\nto a local mailbox\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return len(dc.Messages("ann@localhost")) == 1 }, "one message for ann@localhost")
	d.waitLog(t, `: to=<ann@localhost>, relay=`+regexp.QuoteMeta("mx.test.example["+dc.Socket()+"]")+`, .*status=sent \(250 2\.0\.0 <ann@localhost> \S+ Saved\)`)
}
