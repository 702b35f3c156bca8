package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// TestAddressVerificationMatchesPostfix: reject_unverified_recipient on a
// real Postfix 3.7 and on mtad, both probing the same next hop (a Postfix
// that refuses bad@ and relays the rest into a sink). The replies to RCPT
// TO are compared: with address_verify_poll_count = 1 the first answer is
// "in progress"; once the probes are back a deliverable address passes and
// an undeliverable one gets the 450 "unverified address" with the next
// hop's words, from the cache. No probe is delivered.
func TestAddressVerificationMatchesPostfix(t *testing.T) {
	sink := peers.StartSink(t, peers.SinkOptions{})
	target := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: sink.Addr(), ExtraMainCf: "smtpd_recipient_restrictions = " +
		"check_recipient_access inline:{ {bad@t.example=REJECT} }, permit_mynetworks, reject\n"})
	restrictions := []string{
		"smtpd_recipient_restrictions = reject_unverified_recipient, permit_mynetworks, reject_unauth_destination",
		"address_verify_poll_count = 1",
	}
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: target.Addr(), ExtraMainCf: strings.Join(restrictions, "\n")})
	d := startDaemon(t, testdb.SQLiteURL(t), append(restrictions, fmt.Sprintf("relayhost = [127.0.0.1]:%d", target.Port()))...)

	rcpt := func(addr, to string) string {
		s := dialSMTP(t, addr)
		s.cmd("EHLO client.example.org")
		if got := s.cmd("MAIL FROM:<s@sender.example>"); got != "250 2.1.0 Ok" {
			t.Fatalf("MAIL FROM: %q", got)
		}
		got := s.cmd("RCPT TO:<" + to + ">")
		s.cmd("QUIT")
		return got
	}
	compare := func(to string) {
		t.Helper()
		want, got := rcpt(pf.Addr(), to), rcpt(d.addr, to)
		if got != want {
			t.Errorf("RCPT TO:<%s>:\nPostfix: %q\nmtad:    %q", to, want, got)
		}
	}
	compare("good@t.example")
	compare("bad@t.example")
	d.waitLog(t, `: to=<good@t\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=deliverable \(250 2\.1\.5 Ok\)`,
		`: to=<bad@t\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=undeliverable \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 554 5\.7\.1`)
	peers.WaitFor(t, 30*time.Second, func() bool {
		return strings.Count(pf.Maillog(), "status=deliverable") == 1 && strings.Count(pf.Maillog(), "status=undeliverable") == 1
	}, "Postfix's probes")
	compare("good@t.example")
	compare("bad@t.example")
	time.Sleep(time.Second)
	if n := sink.Count(); n != 0 {
		t.Errorf("the sink got %d messages: a probe was delivered", n)
	}
}
