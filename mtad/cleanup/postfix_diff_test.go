package cleanup

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/reply"
)

// TestDifferentialPostfix sends the same messages through a real Postfix
// 3.7 (same header_checks and virtual_alias_maps, relaying to smtp-sink)
// and through this cleanup, and compares the DATA replies and the final
// envelope recipients.
func TestDifferentialPostfix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	f := newFixture(t)
	checks := f.file("regexp", "hc", `
/^Subject:.*reject-me/    REJECT
/^Subject:.*reject-text/  REJECT 5.7.0 no thanks
/^Subject:.*defer-me/     REJECT 4.7.2 later
/^Subject: folded\s+second/ REJECT folded
`)
	virtual := f.file("texthash", "va", `
list@v.example    a@v.example, b@t.example, list@v.example
a@v.example       a2@t.example
loop1@v.example   loop2@v.example
loop2@v.example   loop1@v.example
dup@v.example     x@t.example, X@t.example
vx@v.example      vy@t.example
@w.example        @t.example
`)
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: sink.Addr(), ExtraMainCf: strings.Join([]string{
		"header_checks = " + checks,
		"virtual_alias_maps = " + virtual,
		"recipient_delimiter = +",
	}, "\n")})
	c := f.cleanup(func(cfg *Config) {
		cfg.HeaderChecks = []string{checks}
		cfg.VirtualAliasMaps = []string{virtual}
		cfg.RecipientDelimiter = "+"
	})
	cases := []struct {
		name, rcpt, headers string
	}{
		{"reject", "r@t.example", "Subject: reject-me\r\n"},
		{"reject text", "r@t.example", "Subject: reject-text\r\n"},
		{"reject 4xx", "r@t.example", "Subject: defer-me\r\n"},
		{"folded", "r@t.example", "Subject: folded\r\n second\r\n"},
		{"list", "list@v.example", "Subject: list\r\n"},
		{"loop", "loop1@v.example", "Subject: loop\r\n"},
		{"dup", "dup@v.example", "Subject: dup\r\n"},
		{"extension", "vx+tag@v.example", "Subject: ext\r\n"},
		{"at-domain", "joe+x@w.example", "Subject: atdomain\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.headers + "X-Case: " + tc.name + "\r\n\r\nbody\r\n"
			pfReply := sendSMTP(t, pf.Addr(), "s@t.example", tc.rcpt, body)
			m, err := f.submit(c, "s@t.example", []string{tc.rcpt}, body)
			ours := "250"
			if r := reply.As(err); r != nil {
				ours = r.String()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("Postfix %q, cleanup %q", pfReply, ours)
			if pfReply != ours {
				t.Fatalf("Postfix replied %q, cleanup %q", pfReply, ours)
			}
			if ours != "250" {
				return
			}
			var want []string
			peers.WaitFor(t, 30*time.Second, func() bool {
				want = sink.RecipientsOf("X-Case: " + tc.name)
				return want != nil
			}, "the sink to receive "+tc.name)
			got := addrs(m)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("recipients: Postfix %q, cleanup %q", want, got)
			}
		})
	}
}

// sendSMTP sends one message and returns the DATA reply: "250", or the
// error reply line.
func sendSMTP(t *testing.T, addr, from, to, body string) string {
	t.Helper()
	cl, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Mail(from); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rcpt(to); err != nil {
		t.Fatal(err)
	}
	w, err := cl.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	err = w.Close()
	var te *textproto.Error
	if errors.As(err, &te) {
		return strconv.Itoa(te.Code) + " " + te.Msg
	} else if err != nil {
		t.Fatal(err)
	}
	cl.Quit()
	return "250"
}
