package cleanup

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sqlmta/mtad/envelope"
	"sqlmta/mtad/queueid"
	"sqlmta/mtad/reply"
	"sqlmta/store"
)

const headerChecks = `
/^Subject:.*reject-me/       REJECT
/^Subject:.*reject-text/     REJECT 5.7.0 no thanks
/^Subject:.*defer-me/        REJECT 4.7.2 later
/^Subject:.*discard-me/      DISCARD spam
/^Subject:.*hold-me/         HOLD held for review
/^Subject: folded.\tsecond line/ REJECT folded match
/^X-Drop:/                   IGNORE
/^X-Old:(.*)/                REPLACE X-New:$1
/^X-Mark:/                   PREPEND X-Marked: yes
/^X-Warn:/                   WARN watch this
/^X-Redirect:/               REDIRECT other@example.com
/^X-Filter:/                 FILTER smtp:[127.0.0.1]:10025
/^X-Unknown:/                FROB
/^Received:.*by mail\.example\.com/ WARN own received seen
`

func TestHeaderChecks(t *testing.T) {
	f := newFixture(t)
	rx := f.file("regexp", "header_checks", headerChecks)
	pcre := f.file("pcre", "header_checks.pcre", `/^X-Pcre: \d+$/ REJECT pcre says no`+"\n")
	c := f.cleanup(func(cfg *Config) { cfg.HeaderChecks = []string{pcre, rx} })
	const from = "from client.example[192.0.2.1]; from=<s@t.example> to=<r@t.example> proto=ESMTP helo=<client.example>"
	cases := []struct {
		name, headers string
		reply         string // "" when accepted
		stored        bool
		in, notIn     []string // in the stored content
		log           string
	}{
		{name: "reject", headers: "Subject: please reject-me\r\n", reply: "550 5.7.1 message content rejected",
			log: ": reject: header Subject: please reject-me " + from + ": 5.7.1 message content rejected"},
		{name: "reject with text and status", headers: "Subject: reject-text\r\n", reply: "550 5.7.0 no thanks"},
		{name: "reject 4.x.x defers", headers: "Subject: defer-me\r\n", reply: "451 4.7.2 later"},
		{name: "pcre table first", headers: "X-Pcre: 42\r\nSubject: reject-me\r\n", reply: "550 5.7.1 pcre says no"},
		{name: "folded header matched as one", headers: "Subject: folded\r\n\tsecond line\r\n", reply: "550 5.7.1 folded match",
			log: ": reject: header Subject: folded??second line " + from + ": 5.7.1 folded match"},
		{name: "discard", headers: "Subject: discard-me\r\n", log: ": discard: header Subject: discard-me " + from + ": spam"},
		{name: "hold is logged", headers: "Subject: hold-me\r\n", stored: true, in: []string{"Subject: hold-me\r\n"},
			log: ": hold: header Subject: hold-me " + from + ": held for review"},
		{name: "ignore, replace, prepend", headers: "X-Drop: x\r\nX-Old: value\r\nX-Mark: m\r\n", stored: true,
			in: []string{"X-New: value\r\nX-Marked: yes\r\nX-Mark: m\r\n"}, notIn: []string{"X-Drop", "X-Old"},
			log: ": replace: header X-Old: value " + from + ": X-New: value"},
		{name: "warn", headers: "X-Warn: w\r\n", stored: true, log: ": warning: header X-Warn: w " + from + ": watch this"},
		{name: "redirect logged", headers: "X-Redirect: r\r\n", stored: true, log: ": redirect: header X-Redirect: r " + from + ": other@example.com"},
		{name: "filter logged", headers: "X-Filter: f\r\n", stored: true, log: ": filter: header X-Filter: f " + from + ": smtp:[127.0.0.1]:10025"},
		{name: "unknown action", headers: "X-Unknown: u\r\n", stored: true, log: "warning: unknown command in header_checks map: FROB"},
		{name: "own Received header is checked", headers: "Subject: s\r\n", stored: true, log: ": warning: header Received: from client.example"},
		{name: "after reject nothing more is inspected", headers: "Subject: reject-me\r\nX-Warn: w\r\n", reply: "550 5.7.1 message content rejected",
			log: "-X-Warn"},
	}
	for _, tc := range cases {
		checkContent(t, f, c, tc.name, tc.headers+"\r\nbody\r\n",
			contentWant{reply: tc.reply, stored: tc.stored, in: tc.in, notIn: tc.notIn, log: tc.log})
	}

	t.Run("lookup error", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) { cfg.HeaderChecks = []string{"fail:checks"} })
		_, err := f.submit(c, "s@t.example", []string{"r@t.example"}, plainMessage)
		if r := reply.As(err); r == nil || r.String() != "451 4.3.0 Error: queue file write error" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("ignored Message-Id is regenerated", func(t *testing.T) {
		c := f.cleanup(func(cfg *Config) {
			cfg.AlwaysAddMissing = true
			cfg.HeaderChecks = []string{f.file("regexp", "drop-mid", "/^Message-Id:/ IGNORE\n")}
		})
		m, err := f.submit(c, "s@t.example", []string{"r@t.example"}, "Message-Id: <old@x>\r\n\r\nbody\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if got := stored(t, f.st, m.QueueID); strings.Contains(got, "<old@x>") || !strings.Contains(got, "Message-Id: <") {
			t.Errorf("content:\n%s", got)
		}
	})
}

func TestDSNPrepend(t *testing.T) {
	for in, want := range map[string]string{
		"text":             "5.7.1 text",
		"5.7.0 text":       "5.7.0 text",
		"4.2.1  spaced":    "4.2.1 spaced",
		"5.7 not a status": "5.7.1 5.7 not a status",
		"6.1.1 bad class":  "5.7.1 6.1.1 bad class",
	} {
		if got := dsnPrepend("5.7.1", in); got != want {
			t.Errorf("dsnPrepend(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSmtpdActions(t *testing.T) {
	f := newFixture(t)
	c := f.cleanup(nil)
	env := &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", ClientAddr: "192.0.2.1", Protocol: "ESMTP",
		Recipients: []envelope.Recipient{{Address: "r@t.example"}}, Prepend: []string{"X-Access: one", "X-Access: two"}}
	if err := c.Submit(context.Background(), env, strings.NewReader(plainMessage)); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, f.st, env.QueueID); !strings.HasPrefix(got, "X-Access: one\r\nX-Access: two\r\nReceived: ") {
		t.Errorf("PREPEND headers not first:\n%s", got)
	}
	env = &envelope.Envelope{QueueID: queueid.New(), Sender: "s@t.example", Discard: true,
		Recipients: []envelope.Recipient{{Address: "r@t.example"}}}
	if err := c.Submit(context.Background(), env, strings.NewReader(plainMessage)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.MessageGet(context.Background(), env.QueueID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DISCARD stored the message: %v", err)
	}
}

// contentWant is what must come of one message through cleanup's checks.
type contentWant struct {
	reply     string // "" when accepted
	stored    bool
	in, notIn []string // in the stored content
	log       string   // in the log; "-text": not in the log
	hold      bool     // the recipients are on hold
}

// checkContent submits content from s@t.example to r@t.example and checks
// the outcome against want, as a subtest.
func checkContent(t *testing.T, f *fixture, c *Cleanup, name, content string, want contentWant) {
	t.Run(name, func(t *testing.T) {
		f.log.Reset()
		m, err := f.submit(c, "s@t.example", []string{"r@t.example"}, content)
		if want.reply != "" {
			if r := reply.As(err); r == nil || r.String() != want.reply {
				t.Fatalf("got %v, want %s", err, want.reply)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if (m != nil) != want.stored {
			t.Fatalf("stored = %v, want %v", m != nil, want.stored)
		}
		if m != nil {
			got := stored(t, f.st, m.QueueID)
			for _, s := range want.in {
				if !strings.Contains(got, s) {
					t.Errorf("content lacks %q:\n%q", s, got)
				}
			}
			for _, s := range want.notIn {
				if strings.Contains(got, s) {
					t.Errorf("content has %q:\n%q", s, got)
				}
			}
			if want.hold && m.Recipients[0].State != store.StateHold {
				t.Errorf("recipient %s, want hold", m.Recipients[0].State)
			}
		}
		if neg, ok := strings.CutPrefix(want.log, "-"); ok {
			if strings.Contains(f.log.String(), neg) {
				t.Errorf("log has %q:\n%s", neg, f.log.String())
			}
		} else if !strings.Contains(f.log.String(), want.log) {
			t.Errorf("log lacks %q:\n%s", want.log, f.log.String())
		}
	})
}
