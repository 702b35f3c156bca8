package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
	"sqlmta/store"
	"sqlmta/store/open"
)

// toRefusingHost starts a node on SQLite (with extra main.cf lines) whose
// relayhost is an smtp-sink that answers every connection with 421, and
// sends it n messages for rcpt@dead.example.
func toRefusingHost(t *testing.T, n int, extra ...string) (string, *daemon, *peers.Sink) {
	t.Helper()
	url := testdb.SQLiteURL(t)
	refusing := peers.StartSink(t, peers.SinkOptions{Args: []string{"-Q", "CONNECT"}})
	d := startDaemon(t, url, append([]string{fmt.Sprintf("relayhost = [127.0.0.1]:%d", refusing.Port())}, extra...)...)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("Subject: dead %d\r\n\r\nbody\r\n", i)
		if err := sendMail(d.addr, "sender@example.org", []string{"rcpt@dead.example"}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	return url, d, refusing
}

// TestDeadDestinationSuspendsThenRecovers: a relay host that answers every
// connection with 421 fails a few deliveries, then the destination is dead:
// the rest of its mail is deferred by the qmgr without a connection, with
// Postfix's "delivery temporarily suspended" reason, and the mark is in the
// database for every node. Once the host accepts mail again and
// minimal_backoff_time has passed, one delivery probes it, the mark goes and
// the mail flows.
func TestDeadDestinationSuspendsThenRecovers(t *testing.T) {
	const n = 10
	url, d, refusing := toRefusingHost(t, n, "minimal_backoff_time = 4s", "maximal_backoff_time = 8s")
	port := refusing.Port()
	attempt := regexp.MustCompile(`smtp\[\d+\]: ([0-9A-F]+): to=<rcpt@dead\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, ` +
		`delay=[\d.]+, delays=[\d./]+, dsn=4\.\d\.\d, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] refused to talk to me: 421 `)
	suspended := regexp.MustCompile(`error\[\d+\]: ([0-9A-F]+): to=<rcpt@dead\.example>, relay=none, delay=[\d.]+, delays=[\d./]+, ` +
		`dsn=4\.\d\.\d, status=deferred \(delivery temporarily suspended: host 127\.0\.0\.1\[127\.0\.0\.1\] refused to talk to me: 421 `)
	var tried, held []string
	peers.WaitFor(t, 30*time.Second, func() bool {
		log := d.maillog()
		tried = uniqueIDs(attempt.FindAllStringSubmatch(log, -1))
		held = uniqueIDs(suspended.FindAllStringSubmatch(log, -1))
		return len(tried)+len(held) >= n
	}, "every message tried or suspended")
	// Slow start begins at 5; three failures in a row kill the destination.
	if len(held) == 0 || len(tried) > 5 {
		t.Errorf("%d deliveries tried and %d suspended; want at most 5 tried and the rest suspended\n%s",
			len(tried), len(held), d.maillog())
	}

	st, err := open.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", port)
	marks, err := st.DeadDestinationList(context.Background())
	if err != nil || len(marks) != 1 || marks[0].Transport != "smtp" || marks[0].Nexthop != nexthop ||
		!strings.HasPrefix(marks[0].Reason, "delivery temporarily suspended: host 127.0.0.1[127.0.0.1] refused to talk to me: 421") {
		t.Errorf("dead destinations = %+v, %v", marks, err)
	}
	// The suspended lines come before their deferrals are written.
	suspendedRow := func(id string) (store.Recipient, bool) {
		m, err := st.MessageGet(context.Background(), id)
		if err != nil {
			t.Fatalf("MessageGet(%s): %v", id, err)
		}
		r := m.Recipients[0]
		return r, r.State == store.StateDeferred && strings.HasPrefix(r.LastReason, "delivery temporarily suspended: ")
	}
	peers.WaitFor(t, 30*time.Second, func() bool {
		for _, id := range held {
			if _, ok := suspendedRow(id); !ok {
				return false
			}
		}
		return true
	}, "the suspended deferrals written")

	refusing.Stop()
	healthy := peers.StartSink(t, peers.SinkOptions{Port: port})
	peers.WaitFor(t, 45*time.Second, func() bool { return healthy.Count() >= n }, "the suspended mail at the healthy sink")
	if got := healthy.Count(); got != n {
		t.Errorf("sink got %d messages, want %d", got, n)
	}
	peers.WaitFor(t, 10*time.Second, func() bool {
		marks, err := st.DeadDestinationList(context.Background())
		return err == nil && len(marks) == 0
	}, "the dead mark lifted")
}

// TestFlushRevivesDeadDestination: with an hour of backoff, mail for a dead
// destination waits; postqueue -f (here mtactl queue flush) makes it due and
// lifts the suspension, as Postfix's flush does, so it is delivered at once
// once the next hop is back.
func TestFlushRevivesDeadDestination(t *testing.T) {
	const n = 8
	url, d, refusing := toRefusingHost(t, n, "minimal_backoff_time = 1h", "maximal_backoff_time = 2h")
	port := refusing.Port()
	st, err := open.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The log line comes before the deferral is written: wait for the rows,
	// or the flush could find a recipient still active and pass it by.
	peers.WaitFor(t, 30*time.Second, func() bool {
		marks, err := st.DeadDestinationList(context.Background())
		return err == nil && len(marks) == 1 && deferredRecipients(t, st) == n
	}, "the destination dead and every message deferred")

	refusing.Stop()
	healthy := peers.StartSink(t, peers.SinkOptions{Port: port})
	if out, err := exec.Command(filepath.Join(tools(t), "mtactl"), "-c", d.dir, "queue", "flush").CombinedOutput(); err != nil {
		t.Fatalf("mtactl queue flush: %v %s", err, out)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return healthy.Count() >= n }, "the flushed mail at the sink")
}

// TestDeferTransportsUntilFlush: mail for a transport in defer_transports
// waits ("deferred transport") until a flush, which delivers it.
func TestDeferTransportsUntilFlush(t *testing.T) {
	sink := peers.StartSink(t, peers.SinkOptions{})
	url := testdb.SQLiteURL(t)
	d := startDaemon(t, url,
		fmt.Sprintf("relayhost = [127.0.0.1]:%d", sink.Port()),
		"defer_transports = smtp",
		"minimal_backoff_time = 1h",
		"maximal_backoff_time = 2h",
	)
	if err := sendMail(d.addr, "sender@example.org", []string{"rcpt@far.example"}, strings.NewReader("Subject: later\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, `postfix/error\[\d+\]: [0-9A-F]+: to=<rcpt@far\.example>, relay=none, .*dsn=4\.3\.2, status=deferred \(deferred transport\)`)
	st, err := open.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	peers.WaitFor(t, 30*time.Second, func() bool { return deferredRecipients(t, st) == 1 }, "the deferral written")
	if n := sink.Count(); n != 0 {
		t.Fatalf("sink got %d messages before the flush", n)
	}
	if out, err := exec.Command(filepath.Join(tools(t), "mtactl"), "-c", d.dir, "queue", "flush").CombinedOutput(); err != nil {
		t.Fatalf("mtactl queue flush: %v %s", err, out)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() == 1 }, "the flushed mail at the sink")
}

// deferredRecipients counts the queue's recipients whose deferral is
// written (state deferred), across all messages.
func deferredRecipients(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	err := st.(store.AdminStore).Admin().MessagesScan(context.Background(), store.ScanParams{}, func(m *store.QueuedMessage) error {
		for _, r := range m.Recipients {
			if r.State == store.StateDeferred {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
