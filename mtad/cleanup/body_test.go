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
		// The header matches a body_checks rule: a case that is stored
		// shows that headers are not body lines.
		checkContent(t, f, c, tc.name, "Subject: in body\r\n\r\n"+tc.body,
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
	var msgs []diffCase
	for _, tc := range cases {
		msgs = append(msgs, diffCase{tc.name, "X-Case: " + tc.name + "\r\nSubject: " + tc.name + "\r\n\r\n" + tc.body})
	}
	compareWithPostfix(t, f, c, pf.Addr(), sink, msgs)
}

// multipart is a message with a text part, an attachment and an attached
// message, for the MIME-aware checks.
const multipart = "Subject: mime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
	"preamble\r\n" +
	"--b1\r\nContent-Type: text/plain\r\n\r\nhello in part one\r\n" +
	"--b1\r\nContent-Type: application/octet-stream;\r\n\tname=\"tool.exe\"\r\nContent-Disposition: attachment\r\n\r\nTVqQAAMAAAAEAAAA\r\n" +
	"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested subject\r\nFrom: x@y\r\n\r\nnested body\r\n" +
	"--b1--\r\nepilogue\r\n"

// TestMimeChecks: with MIME processing on, part headers go to
// mime_header_checks (folded fields whole), an attached message's headers
// to nested_header_checks, and body_checks see neither.
func TestMimeChecks(t *testing.T) {
	f := newFixture(t)
	mimeRx := f.file("regexp", "mime", `/^Content-Type:.*name="?[^"]*\.exe/ REJECT executable attachment`+"\n"+
		`/^Content-Type: text\/plain/ REPLACE Content-Type: text/plain; charset=us-ascii`+"\n")
	nestedRx := f.file("regexp", "nested", `/^Subject: nested subject/ WARN nested seen`+"\n")
	bodyRx := f.file("regexp", "body", `/^Content-Type/ REJECT body_checks saw a header`+"\n"+`/^nested body/ WARN body seen`+"\n")
	only := func(cfg *Config, mime, nested, body string) {
		cfg.MimeHeaderChecks, cfg.NestedHeaderChecks, cfg.BodyChecks = nil, nil, nil
		if mime != "" {
			cfg.MimeHeaderChecks = []string{mime}
		}
		if nested != "" {
			cfg.NestedHeaderChecks = []string{nested}
		}
		if body != "" {
			cfg.BodyChecks = []string{body}
		}
	}
	c := f.cleanup(func(cfg *Config) { only(cfg, mimeRx, "", "") })
	checkContent(t, f, c, "attachment rejected", multipart, contentWant{reply: "550 5.7.1 executable attachment",
		log: ": reject: header Content-Type: application/octet-stream;??name=\"tool.exe\" from client.example[192.0.2.1]"})
	c = f.cleanup(func(cfg *Config) { only(cfg, "", nestedRx, bodyRx) })
	checkContent(t, f, c, "nested headers and body lines", multipart, contentWant{stored: true,
		log: ": warning: header Subject: nested subject from "})
	checkContent(t, f, c, "body_checks see the attached message's body", multipart, contentWant{stored: true,
		log: ": warning: body nested body from "})
	c = f.cleanup(func(cfg *Config) {
		only(cfg, f.file("regexp", "replace", `/^Content-Type: text\/plain$/ REPLACE Content-Type: text/plain; charset=us-ascii`+"\n"), "", "")
	})
	checkContent(t, f, c, "part header replaced", multipart, contentWant{stored: true,
		in: []string{"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello in part one\r\n"}})
	c = f.cleanup(func(cfg *Config) { only(cfg, mimeRx, "", bodyRx); cfg.DisableMimeInput = true })
	checkContent(t, f, c, "disable_mime_input_processing", multipart, contentWant{reply: "550 5.7.1 body_checks saw a header"})
}

// TestDifferentialPostfixMimeChecks: Postfix's defaults apply header_checks
// to MIME part headers and to attached messages' headers too
// (mime_header_checks = nested_header_checks = $header_checks), which is
// how an executable-attachment rule in header_checks works. The same
// messages through a real Postfix 3.7 and this cleanup get the same
// replies and bodies.
func TestDifferentialPostfixMimeChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	f := newFixture(t)
	hc := f.file("regexp", "hc", `/^Content-(Type|Disposition):.*name="?[^"]*\.exe/ REJECT executable attachment`+"\n"+
		`/^Subject: nested reject/ REJECT nested message refused`+"\n"+
		`/^Content-Type: text\/plain$/ REPLACE Content-Type: text/plain; charset=us-ascii`+"\n")
	bc := f.file("regexp", "bc", `/^Content-Type/ REJECT body_checks saw a MIME header`+"\n"+`/^drop me/ IGNORE`+"\n")
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: sink.Addr(), ExtraMainCf: "header_checks = " + hc + "\nbody_checks = " + bc + "\n"})
	c := f.cleanup(func(cfg *Config) {
		cfg.HeaderChecks, cfg.MimeHeaderChecks, cfg.NestedHeaderChecks = []string{hc}, []string{hc}, []string{hc}
		cfg.BodyChecks = []string{bc}
	})
	part := func(ctype, body string) string { return "--b1\r\nContent-Type: " + ctype + "\r\n\r\n" + body }
	msg := func(name string, parts ...string) string {
		return "X-Case: " + name + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			strings.Join(parts, "") + "--b1--\r\n"
	}
	cases := []diffCase{
		{"exe", msg("exe", part("text/plain", "hi\r\n"), part("application/octet-stream; name=\"x.exe\"", "TVqQ\r\n"))},
		{"nested", msg("nested", part("message/rfc822", "Subject: nested reject\r\n\r\nbody\r\n"))},
		{"clean", msg("clean", part("text/plain", "hi\r\ndrop me\r\nbye\r\n"), part("message/rfc822", "Subject: fine\r\n\r\nbody\r\n"))},
	}
	compareWithPostfix(t, f, c, pf.Addr(), sink, cases)
}

// diffCase is one message for compareWithPostfix; its X-Case header is name.
type diffCase struct{ name, content string }

// compareWithPostfix sends each message through the Postfix at addr (which
// relays to sink) and through c, and compares the end-of-data replies and,
// for accepted mail, the bodies that come out.
func compareWithPostfix(t *testing.T, f *fixture, c *Cleanup, addr string, sink *peers.Sink, cases []diffCase) {
	t.Helper()
	for _, tc := range cases {
		theirs := sendSMTP(t, addr, "s@t.example", "r@t.example", tc.content)
		m, err := f.submit(c, "s@t.example", []string{"r@t.example"}, tc.content)
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
		var got string
		peers.WaitFor(t, 30*time.Second, func() bool { got = sinkMessage(t, sink.DumpPath(), tc.name); return got != "" }, "the sink to get "+tc.name)
		_, want, _ := strings.Cut(got, "\n\n")
		_, ourBody, _ := strings.Cut(strings.ReplaceAll(stored(t, f.st, m.QueueID), "\r\n", "\n"), "\n\n")
		if strings.TrimRight(ourBody, "\n") != strings.TrimRight(want, "\n") {
			t.Errorf("%s body:\nPostfix: %q\ncleanup: %q", tc.name, want, ourBody)
		}
	}
}

// BenchmarkContentChecks measures what the content checks cost a message
// (the MIME scan and the spool before Enqueue): the same 40 KB multipart
// message through cleanup into SQLite, without checks and with a
// header_checks table in main.cf's default places (header, MIME and nested
// headers) and body_checks.
func BenchmarkContentChecks(b *testing.B) {
	line := strings.Repeat("0123456789abcdefghij", 3) + "\r\n"
	content := "Subject: bench\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat(line, 300) +
		"--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n\r\n" + strings.Repeat(line, 300) + "--b1--\r\n"
	f := newFixture(b)
	hc := f.file("regexp", "hc", `/^Content-(Type|Disposition):.*name="?[^"]*\.(exe|scr|bat)/ REJECT executable`+"\n"+
		`/^Subject: .*viagra/ REJECT spam`+"\n")
	bc := f.file("regexp", "bc", `/^<script/ REJECT script`+"\n"+`/casino bonus/ REJECT spam`+"\n")
	for _, bench := range []struct {
		name string
		edit func(*Config)
	}{
		{"none", nil},
		{"header_checks", func(cfg *Config) {
			cfg.HeaderChecks, cfg.MimeHeaderChecks, cfg.NestedHeaderChecks = []string{hc}, []string{hc}, []string{hc}
		}},
		{"header_and_body_checks", func(cfg *Config) {
			cfg.HeaderChecks, cfg.MimeHeaderChecks, cfg.NestedHeaderChecks = []string{hc}, []string{hc}, []string{hc}
			cfg.BodyChecks = []string{bc}
		}},
	} {
		c := f.cleanup(bench.edit)
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				env := &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", Recipients: rcpts("r@t.example"),
					ClientName: "client.example", ClientAddr: "192.0.2.1", Protocol: "ESMTP"}
				if err := c.Submit(context.Background(), env, strings.NewReader(content)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
