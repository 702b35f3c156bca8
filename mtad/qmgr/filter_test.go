package qmgr

import (
	"context"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// TestContentFilterOverridesRoute: a message with a content filter goes to
// the filter's transport and nexthop; an empty filter nexthop keeps the
// recipient's; a message without one follows its resolved route.
func TestContentFilterOverridesRoute(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	for _, m := range []struct{ id, filter string }{
		{"F1", "scan:[127.0.0.1]:10025"},
		{"F2", "scan:"},
		{"F3", ""},
	} {
		err := st.Enqueue(ctx, &store.NewMessage{QueueID: m.id, Sender: "s@example.org", Arrival: time.Now(), Filter: m.filter,
			Recipients: []store.NewRecipient{{Address: "r@dest.example"}}, Content: strings.NewReader("Subject: t\r\n\r\nb\r\n")})
		if err != nil {
			t.Fatal(err)
		}
	}
	smtp, scan := newRecorder(transport.Sent), newRecorder(transport.Sent)
	var log syncBuf
	q := New(Config{Owner: "n", PollInterval: 50 * time.Millisecond}, st, resolveByDomain,
		map[string]transport.Transport{"smtp": smtp, "scan": scan}, maillog.New(&log, "test", "postfix"), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 3 }, "three messages delivered")
	got := map[string]string{}
	for name, r := range map[string]*recorder{"smtp": smtp, "scan": scan} {
		r.mu.Lock()
		for _, c := range r.calls {
			got[c.QueueID] = name + " " + c.Nexthop
		}
		r.mu.Unlock()
	}
	want := map[string]string{"F1": "scan [127.0.0.1]:10025", "F2": "scan dest.example", "F3": "smtp dest.example"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s went to %q, want %q", id, got[id], w)
		}
	}
}

// TestHeldMessageWaitsForRelease: a message enqueued on hold is not
// delivered until MessageRelease (postsuper -H), and then is.
func TestHeldMessageWaitsForRelease(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	err := st.Enqueue(ctx, &store.NewMessage{QueueID: "H1", Sender: "s@example.org", Arrival: time.Now(), Hold: true,
		Recipients: []store.NewRecipient{{Address: "r@dest.example"}}, Content: strings.NewReader("Subject: t\r\n\r\nb\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, "P1", "r@dest.example")
	tr := newRecorder(transport.Sent)
	var log syncBuf
	q, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond}, st, tr, &log)
	defer stop()
	// The plain message passes while the held one waits: once P1 is
	// removed the qmgr has had a full claim round that skipped H1.
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "P1: removed") }, "P1 delivered")
	q.Wake()
	if strings.Contains(log.String(), "H1:") {
		t.Fatalf("held message touched:\n%s", log.String())
	}
	if n, err := st.(store.Holder).MessageRelease(ctx, "H1"); err != nil || n != 1 {
		t.Fatalf("MessageRelease = %d, %v", n, err)
	}
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "H1: removed") }, "H1 delivered after release")
}
