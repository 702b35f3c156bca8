package main

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/store"
	"sqlmta/store/open"
)

// TestETRNFlushesDeferredMail defers a message for a relay domain whose next
// hop refuses connections, with an hour of backoff; ETRN for that domain
// makes it due at once, so a second attempt follows within seconds. A domain
// outside fast_flush_domains (default $relay_domains) is refused.
func TestETRNFlushesDeferredMail(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		d := startDaemon(t, url, "relay_domains = relay.test",
			fmt.Sprintf("relayhost = [127.0.0.1]:%d", peers.FreePort(t)),
			"minimal_backoff_time = 1h", "maximal_backoff_time = 2h")
		if err := sendMail(d.addr, "a@example.org", []string{"x@relay.test"}, strings.NewReader("Subject: etrn\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		deferred := regexp.MustCompile(`([0-9A-F]+): to=<x@relay\.test>, relay=none, .*status=deferred`)
		d.waitLog(t, deferred.String())
		// The log line comes before the deferral is written; ETRN before
		// that would find the recipient still active and flush nothing.
		st, err := open.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		id := deferred.FindStringSubmatch(d.maillog())[1]
		peers.WaitFor(t, 30*time.Second, func() bool {
			m, err := st.MessageGet(context.Background(), id)
			return err == nil && m.Recipients[0].State == store.StateDeferred
		}, "the deferral written")

		conn, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		tp := textproto.NewConn(conn)
		for _, step := range []struct{ cmd, want string }{
			{"", "220 "},
			{"HELO client.example", "250 mx.test.example"},
			{"ETRN other.test", "459 <other.test>: service unavailable"},
			{"ETRN relay.test", "250 Queuing started"},
			{"QUIT", "221 2.0.0 Bye"},
		} {
			if step.cmd != "" {
				tp.PrintfLine("%s", step.cmd)
			}
			line, err := tp.ReadLine()
			if err != nil || !strings.HasPrefix(line, step.want) {
				t.Fatalf("%q: got %q, %v; want %q", step.cmd, line, err, step.want)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(deferred.FindAllString(d.maillog(), -1)) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no second delivery attempt 30s after ETRN; maillog:\n%s", d.maillog())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
