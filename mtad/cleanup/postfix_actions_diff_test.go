package cleanup

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/queueid"
	"sqlmta/store"
)

// TestDifferentialPostfixHeaders sends the same messages from 127.0.0.1
// (a local client: local_header_rewrite_clients = permit_inet_interfaces)
// through a real Postfix 3.7 and through this cleanup with the same
// canonical_maps, masquerade_domains and header_checks, and compares the
// rewritten address headers, the dropped headers, the envelope recipients
// after REDIRECT and BCC, and the hold/redirect/bcc log lines.
func TestDifferentialPostfixHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	f := newFixture(t)
	canon := f.file("texthash", "canon", "old@example.com new@example.com\nbob bobby@other.example\n")
	checks := f.file("regexp", "hc", `
/^Subject: hold-me/         HOLD held for review
/^Subject: redirect-me/     REDIRECT elsewhere@t.example
/^Subject: bcc-me/          BCC copy@t.example
/^Subject: filter-me/       FILTER smtp:[127.0.0.1]:10099
`)
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: sink.Addr(), ExtraMainCf: strings.Join([]string{
		"canonical_maps = " + canon,
		"header_checks = " + checks,
		"myorigin = example.com",
		"mydomain = example.com",
		"masquerade_domains = example.net",
	}, "\n")})
	c := f.cleanup(func(cfg *Config) {
		cfg.CanonicalMaps = []string{canon}
		cfg.HeaderChecks = []string{checks}
		cfg.MasqueradeDomains = []string{"example.net"}
	})
	cases := []struct {
		name, rcpt, headers string
		held                bool
	}{
		{name: "phrase and group", rcpt: "r@t.example", headers: "From: Joe Q. <joe>\r\n" +
			"To: old@example.com, \"Quoted, Name\" <bob>, group: a, b@x.sub.example.net;, (comment) c\r\n"},
		{name: "untouched", rcpt: "r@t.example", headers: "From: Someone <s@t.example>\r\nCC: undisclosed-recipients:;\r\nReply-To: x@host\r\n"},
		{name: "comments and folding", rcpt: "r@t.example", headers: "Sender: bob (Bob) \r\nResent-To: alice,\r\n\tcarol (C),\r\n dave@t.example\r\n" +
			"To: \"john doe\"@example.com, first.last, <route@example.com>\r\n"},
		{name: "long list", rcpt: "r@t.example", headers: "To: aaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbb, ccccccccccccccccccc, dddddddddddddddddd, eeeeeeeeeeeeeeeeeeeeeee, ffffffffffffff\r\n"},
		{name: "dropped", rcpt: "r@t.example", headers: "Bcc: hidden\r\nReturn-Path: <rp@x>\r\nContent-Length: 5\r\nResent-Bcc: rb\r\nX-Other: joe\r\n"},
		{name: "redirect", rcpt: "r@t.example", headers: "Subject: redirect-me\r\n"},
		{name: "bcc", rcpt: "r@t.example", headers: "Subject: bcc-me\r\n"},
		{name: "hold", rcpt: "r@t.example", headers: "Subject: hold-me\r\n", held: true},
	}
	var ourLog []string
	for _, tc := range cases {
		body := tc.headers + "X-Case: " + tc.name + "\r\n\r\nbody\r\n"
		if r := sendSMTP(t, pf.Addr(), "s@t.example", tc.rcpt, body); r != "250" {
			t.Fatalf("%s: Postfix replied %s", tc.name, r)
		}
		f.log.Reset()
		env := &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", ClientName: "localhost", ClientAddr: "127.0.0.1",
			Helo: "client.example", Protocol: "ESMTP", Recipients: []envelope.Recipient{{Address: tc.rcpt, Orig: tc.rcpt}}}
		if err := c.Submit(context.Background(), env, strings.NewReader(body)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ourLog = append(ourLog, f.log.String())
		m, err := f.st.MessageGet(context.Background(), env.QueueID)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name, func(t *testing.T) {
			if tc.held {
				for _, r := range m.Recipients {
					if r.State != store.StateHold {
						t.Errorf("recipient %s is %s, want hold", r.Address, r.State)
					}
				}
				return
			}
			var theirs string
			peers.WaitFor(t, 30*time.Second, func() bool {
				theirs = sinkMessage(t, sink.DumpPath(), tc.name)
				return theirs != ""
			}, "the sink to receive "+tc.name)
			ours := strings.ReplaceAll(stored(t, f.st, env.QueueID), "\r\n", "\n")
			if got, want := addressHeaders(ours), addressHeaders(theirs); got != want {
				t.Errorf("headers:\nPostfix:\n%s\ncleanup:\n%s", want, got)
			}
			want := sink.RecipientsOf("X-Case: " + tc.name)
			got := addrs(m)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("recipients: Postfix %q, cleanup %q", want, got)
			}
		})
	}
	// The action log lines, without the queue ID and process.
	actions := regexp.MustCompile(`cleanup\[\d+\]: \w+: ((hold|redirect|bcc): .*)`)
	var want, got []string
	peers.WaitFor(t, 10*time.Second, func() bool {
		want = nil
		for _, m := range actions.FindAllStringSubmatch(pf.Maillog(), -1) {
			want = append(want, m[1])
		}
		return len(want) == 3
	}, "Postfix to log three actions")
	for _, m := range actions.FindAllStringSubmatch(strings.Join(ourLog, ""), -1) {
		got = append(got, m[1])
	}
	if !slices.Equal(got, want) {
		t.Errorf("action log:\nPostfix: %q\ncleanup: %q", want, got)
	}
}

// sinkMessage returns the header of the message whose X-Case is name in
// smtp-sink's dump, "" while it has not arrived.
func sinkMessage(t *testing.T, dump, name string) string {
	t.Helper()
	b, err := os.ReadFile(dump)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, msg := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "X-Client-Addr: ") {
		if strings.Contains(msg, "X-Case: "+name+"\n") {
			return msg
		}
	}
	return ""
}

// addressHeaders returns, one per line with continuations, the header
// fields that hold addresses or that cleanup drops, in order.
func addressHeaders(msg string) string {
	head, _, _ := strings.Cut(msg, "\n\n")
	var out []string
	keep := false
	for _, l := range strings.Split(head, "\n") {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			if keep {
				out = append(out, l)
			}
			continue
		}
		name, _, _ := strings.Cut(l, ":")
		name = strings.ToLower(name)
		keep = addrHeaders[name] != 0 || name == "content-length" || name == "x-other"
		if keep {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
