package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
)

// TestAccessRedirectBccMatchPostfix sends the same transactions through a
// real Postfix 3.7 and through mtad with the same access tables, each
// relaying to its own smtp-sink, and compares the envelope recipients that
// arrive and the bcc/redirect log lines. Postfix 3.7 keeps every BCC
// action (access(5) still says only the last one), lets the last REDIRECT
// win, and redirects BCC recipients too. One difference is kept on
// purpose: Postfix delivers a BCC that several RCPTs trigger once per
// RCPT, mtad once.
func TestAccessRedirectBccMatchPostfix(t *testing.T) {
	restrictions := []string{
		"smtpd_client_restrictions = check_client_access inline:{ {127.0.0.1=BCC one@t.example} }",
		"smtpd_sender_restrictions = check_sender_access inline:{ {s@t.example=BCC two@t.example}, {r@t.example=REDIRECT red1@t.example} }",
		"smtpd_recipient_restrictions = check_recipient_access inline:{ {x@t.example=REDIRECT red2@t.example}, " +
			"{y@t.example=BCC three@t.example} }, permit_mynetworks, reject",
	}
	theirSink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: theirSink.Addr(), ExtraMainCf: strings.Join(restrictions, "\n")})
	ourSink := peers.StartSink(t, peers.SinkOptions{})
	d := startDaemon(t, testdb.SQLiteURL(t), append(restrictions, fmt.Sprintf("relayhost = [127.0.0.1]:%d", ourSink.Port()))...)

	cases := []struct {
		name, from string
		to         []string
	}{
		{"two-bcc", "s@t.example", []string{"a@t.example"}},
		{"three-bcc", "s@t.example", []string{"y@t.example"}},
		{"two-redirects", "r@t.example", []string{"x@t.example"}},
		{"redirect-and-bcc", "r@t.example", []string{"b@t.example", "c@t.example"}},
		{"bcc-per-recipient", "q@t.example", []string{"y@t.example", "z@t.example"}},
	}
	for _, tc := range cases {
		data := "X-Case: " + tc.name + "\r\nSubject: " + tc.name + "\r\n\r\nbody"
		queueMessage(t, pf.Addr(), tc.from, tc.to, data)
		queueMessage(t, d.addr, tc.from, tc.to, data)
	}
	for _, tc := range cases {
		var theirs, ours []string
		peers.WaitFor(t, 60*time.Second, func() bool {
			theirs, ours = theirSink.RecipientsOf("X-Case: "+tc.name), ourSink.RecipientsOf("X-Case: "+tc.name)
			return len(theirs) > 0 && len(ours) > 0
		}, "both sinks to receive "+tc.name)
		// Postfix 3.7 sends a copy per RCPT that triggered the same BCC
		// (one@ twice in bcc-per-recipient); mtad sends one. The sets
		// must agree.
		slices.Sort(theirs)
		slices.Sort(ours)
		theirs = slices.Compact(theirs)
		if !slices.Equal(ours, theirs) {
			t.Errorf("%s: recipients Postfix %q, mtad %q", tc.name, theirs, ours)
		}
	}
	// The action lines, without the process and the helo name.
	action := regexp.MustCompile(`NOQUEUE: ((?:bcc|redirect): RCPT from localhost\[127\.0\.0\.1\]: .*); from=<[^>]*> to=<[^>]*> proto=ESMTP`)
	lines := func(log string) []string {
		var out []string
		for _, m := range action.FindAllStringSubmatch(log, -1) {
			out = append(out, m[1])
		}
		return out
	}
	if want, got := lines(pf.Maillog()), lines(d.maillog()); !slices.Equal(got, want) {
		t.Errorf("action log:\nPostfix: %q\nmtad:    %q", want, got)
	}
}
