package cleanup

import (
	"context"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/envelope"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
)

const bodyChecks = `
/^reject me$/           REJECT
/^reject later/         REJECT 4.7.2 later
/^discard me/           DISCARD spam
/^hold me/              HOLD review
/^drop this line/       IGNORE
/^old (.*)/             REPLACE new $1
/^mark this/            PREPEND [marked]
/^warn me/              WARN watch
/^redirect me/          REDIRECT other@example.com
/^pass the rest/        PASS
/^Subject: in body/     REJECT header text in the body
`

func TestBodyChecks(t *testing.T) {
	f := newFixture(t)
	rx := f.file("regexp", "body_checks", bodyChecks)
	c := f.cleanup(func(cfg *Config) { cfg.BodyChecks = []string{rx} })
	const from = "from client.example[192.0.2.1]; from=<s@t.example> to=<r@t.example> proto=ESMTP helo=<client.example>"
	cases := []struct {
		name, body string
		reply      string // "" when accepted
		stored     bool
		in, notIn  []string
		log        string
		hold       bool
	}{
		{name: "reject", body: "hello\r\nreject me\r\n", reply: "550 5.7.1 message content rejected",
			log: ": reject: body reject me " + from + ": 5.7.1 message content rejected"},
		{name: "reject 4.x.x defers", body: "reject later\r\n", reply: "451 4.7.2 later"},
		{name: "discard", body: "discard me\r\n", log: ": discard: body discard me " + from + ": spam"},
		{name: "hold", body: "hold me\r\n", stored: true, hold: true, log: ": hold: body hold me " + from + ": review"},
		{name: "ignore, replace, prepend", body: "a\r\ndrop this line\r\nold value\r\nmark this\r\nz\r\n", stored: true,
			in: []string{"\r\n\r\na\r\nnew value\r\n[marked]\r\nmark this\r\nz\r\n"}, notIn: []string{"drop this line", "old value"},
			log: ": replace: body old value " + from + ": new value"},
		{name: "warn", body: "warn me\r\n", stored: true, log: ": warning: body warn me " + from + ": watch"},
		{name: "pass ends the inspection", body: "pass the rest\r\nreject me\r\n", stored: true, in: []string{"reject me\r\n"}},
		{name: "headers are not body", body: "x\r\n", stored: true},
		{name: "a header-like body line is body", body: "Subject: in body\r\n", reply: "550 5.7.1 header text in the body"},
	}
	for _, tc := range cases {
		checkContent(t, f, c, tc.name, "Subject: reject me\r\n\r\n"+tc.body,
			contentWant{reply: tc.reply, stored: tc.stored, in: tc.in, notIn: tc.notIn, log: tc.log, hold: tc.hold})
	}

	t.Run("only the first body_checks_size_limit bytes", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) { cfg.BodyChecks = []string{rx}; cfg.BodyChecksSizeLimit = 100 })
		body := strings.Repeat("filler line of some length\r\n", 10) + "reject me\r\n"
		if _, err := f.submit(c, "s@t.example", []string{"r@t.example"}, "Subject: s\r\n\r\n"+body); err != nil {
			t.Errorf("a line past the limit was inspected: %v", err)
		}
	})
	t.Run("no_header_body_checks", func(t *testing.T) {
		svc := c.Service("", nil).WithOverrides([]string{"no_header_body_checks"})
		env := &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", Recipients: rcpts("r@t.example")}
		if err := svc.Submit(context.Background(), env, strings.NewReader("Subject: s\r\n\r\nreject me\r\n")); err != nil {
			t.Errorf("body checked despite no_header_body_checks: %v", err)
		}
	})
	t.Run("lookup error", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) { cfg.BodyChecks = []string{"fail:checks"} })
		_, err := f.submit(c, "s@t.example", []string{"r@t.example"}, plainMessage)
		if r := reply.As(err); r == nil || r.String() != "451 4.3.0 Error: queue file write error" {
			t.Errorf("got %v", err)
		}
	})
}

// TestDifferentialPostfixBodyChecks sends the same messages through a real
// Postfix 3.7 and through this cleanup with the same body_checks table,
// and compares the end-of-data replies and the bodies that come out.
func TestDifferentialPostfixBodyChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	f := newFixture(t)
	rx := f.file("regexp", "bc", `
/^reject me$/       REJECT
/^reject text/      REJECT 5.7.0 no thanks
/^reject later/     REJECT 4.7.2 later
/^drop this line/   IGNORE
/^old (.*)/         REPLACE new $1
/^mark this/        PREPEND [marked]
`)
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: sink.Addr(), ExtraMainCf: "body_checks = " + rx + "\n"})
	c := f.cleanup(func(cfg *Config) { cfg.BodyChecks = []string{rx} })
	cases := []struct{ name, body string }{
		{"reject", "hello\r\nreject me\r\n"},
		{"reject-text", "reject text please\r\n"},
		{"reject-later", "reject later\r\n"},
		{"edits", "a\r\ndrop this line\r\nold value\r\nmark this\r\nz\r\n"},
		{"clean", "nothing to see\r\n"},
	}
	for _, tc := range cases {
		content := "X-Case: " + tc.name + "\r\nSubject: " + tc.name + "\r\n\r\n" + tc.body
		theirs := sendSMTP(t, pf.Addr(), "s@t.example", "r@t.example", content)
		m, err := f.submit(c, "s@t.example", []string{"r@t.example"}, content)
		ours := "250"
		if r := reply.As(err); r != nil {
			ours = r.String()
		} else if err != nil {
			t.Fatal(err)
		}
		if ours != theirs {
			t.Errorf("%s: Postfix %q, cleanup %q", tc.name, theirs, ours)
			continue
		}
		if m == nil {
			continue
		}
		var msg string
		peers.WaitFor(t, 30*time.Second, func() bool { msg = sinkMessage(t, sink.DumpPath(), tc.name); return msg != "" }, "the sink to get "+tc.name)
		_, want, _ := strings.Cut(msg, "\n\n")
		_, got, _ := strings.Cut(strings.ReplaceAll(stored(t, f.st, m.QueueID), "\r\n", "\n"), "\n\n")
		if strings.TrimRight(got, "\n") != strings.TrimRight(want, "\n") {
			t.Errorf("%s body:\nPostfix: %q\ncleanup: %q", tc.name, want, got)
		}
	}
}
