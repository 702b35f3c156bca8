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

// TestDelayWarningThenForcedExpiry relays to a next hop that refuses
// connections, with delay_warning_time = 1s: the sender (a local Maildir)
// gets exactly one "delayed mail" warning however often the message is
// retried; after postsuper -e the message is returned with Postfix's
// "message is administratively expired".
func TestDelayWarningThenForcedExpiry(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		dead := peers.FreePort(t)
		d := startDaemon(t, url, fmt.Sprintf("relayhost = [127.0.0.1]:%d", dead),
			"delay_warning_time = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 1s")
		body := "Subject: slow one\r\nMessage-Id: <slow.1@example.org>\r\n\r\nthe original body\r\n"
		if err := sendMail(d.addr, "sender@localhost", []string{"far@example.net"}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		idRe := regexp.MustCompile(`([0-9A-F]+): to=<far@example\.net>.*status=deferred`)
		var id string
		peers.WaitFor(t, 30*time.Second, func() bool {
			m := idRe.FindAllStringSubmatch(d.maillog(), -1)
			if len(m) > 0 {
				id = m[0][1]
			}
			return len(m) >= 3
		}, "three deferrals")
		newDir := filepath.Join(d.dir, "mail", "sender", "Maildir", "new")
		files := func() []string {
			es, _ := os.ReadDir(newDir)
			var out []string
			for _, e := range es {
				b, _ := os.ReadFile(filepath.Join(newDir, e.Name()))
				out = append(out, string(b))
			}
			return out
		}
		peers.WaitFor(t, 30*time.Second, func() bool { return len(files()) >= 1 }, "a delay warning in "+newDir)
		got := files()
		if len(got) != 1 {
			t.Fatalf("%d messages for the sender after three attempts, want one warning", len(got))
		}
		for _, re := range []string{
			`(?m)^Return-Path: <>$`,
			`(?m)^Subject: Delayed Mail \(still being retried\)$`,
			`(?m)^# THIS IS A WARNING ONLY\.  YOU DO NOT NEED TO RESEND YOUR MESSAGE\. #$`,
			`(?m)^<far@example\.net>: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection`,
			`(?m)^Action: delayed$`,
			`(?m)^Status: 4\.\d\.\d+$`,
			`(?m)^Will-Retry-Until: `,
			`(?m)^Content-Type: text/rfc822-headers$`,
			`(?m)^Subject: slow one$`,
		} {
			if !regexp.MustCompile(re).MatchString(got[0]) {
				t.Errorf("warning lacks %s:\n%s", re, got[0])
			}
		}
		if strings.Contains(got[0], "the original body") {
			t.Errorf("a delay warning returned the body")
		}
		d.waitLog(t, `postfix/bounce\[\d+\]: `+id+`: sender delay notification: [0-9A-F]+`)

		// postsuper -e: returned at the next attempt, never delivered.
		st, err := open.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if exp, _, err := st.(store.AdminStore).Admin().MessagesExpire(context.Background(), []string{id}, false); err != nil || len(exp) != 1 {
			t.Fatalf("MessagesExpire(%s) = %v, %v", id, exp, err)
		}
		peers.WaitFor(t, 30*time.Second, func() bool { return len(files()) >= 2 }, "the returned message in "+newDir)
		d.waitLog(t,
			`postfix/error\[\d+\]: `+id+`: to=<far@example\.net>, relay=none, delay=[\d.]+, delays=[\d./]+, dsn=4\.7\.0, status=deferred \(message is administratively expired\)`,
			`postfix/qmgr\[\d+\]: `+id+`: from=<sender@localhost>, status=expired, returned to sender`,
			`postfix/bounce\[\d+\]: `+id+`: sender non-delivery notification: [0-9A-F]+`,
			`postfix/qmgr\[\d+\]: `+id+`: removed`)
		var bounce string
		for _, f := range files() {
			if strings.Contains(f, "Subject: Undelivered Mail Returned to Sender") {
				bounce = f
			}
		}
		for _, re := range []string{
			`(?m)^<far@example\.net>: message is administratively expired$`,
			`(?m)^Action: failed$`,
			`(?m)^Status: 4\.7\.0$`,
			`(?m)^Diagnostic-Code: X-Postfix; message is administratively expired$`,
			`(?m)^the original body$`,
		} {
			if !regexp.MustCompile(re).MatchString(bounce) {
				t.Errorf("returned message lacks %s:\n%s", re, bounce)
			}
		}
		if n := len(files()); n != 2 {
			t.Errorf("sender has %d messages, want the warning and the return", n)
		}
	})
}
