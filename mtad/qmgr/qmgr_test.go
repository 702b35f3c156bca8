package qmgr

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/teststore"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// recorder is a transport for these unit tests of the qmgr's scheduling:
// it records what it was given and answers with outcome.
type recorder struct {
	mu        sync.Mutex
	calls     []*transport.Delivery
	active    map[string]int
	maxActive map[string]int
	hold      chan struct{} // when non-nil, deliveries wait for it to close
	outcome   transport.Status
}

func (r *recorder) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	r.mu.Lock()
	r.calls = append(r.calls, d)
	r.active[d.Nexthop]++
	r.maxActive[d.Nexthop] = max(r.maxActive[d.Nexthop], r.active[d.Nexthop])
	r.mu.Unlock()
	if r.hold != nil {
		<-r.hold
	}
	rc, err := d.Open(ctx)
	if err == nil {
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
	}
	r.mu.Lock()
	r.active[d.Nexthop]--
	r.mu.Unlock()
	dsn := map[transport.Status]string{transport.Sent: "2.0.0", transport.Deferred: "4.4.1", transport.Bounced: "5.1.1"}[r.outcome]
	return transport.FailAll(d, r.outcome, dsn, "test outcome", "test", 0)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func newRecorder(st transport.Status) *recorder {
	return &recorder{active: map[string]int{}, maxActive: map[string]int{}, outcome: st}
}

func testStore(t *testing.T) store.Store { return teststore.SQLite(t) }

func enqueue(t *testing.T, st store.Store, id string, rcpts ...string) {
	t.Helper()
	m := &store.NewMessage{QueueID: id, Sender: "s@example.org", Arrival: time.Now(), Content: strings.NewReader("Subject: t\r\n\r\nbody\r\n")}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Address: r})
	}
	if err := st.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func resolveByDomain(addr string) rewrite.Result {
	d := rewrite.Domain(addr)
	return rewrite.Result{Transport: "smtp", Nexthop: d, Domain: d}
}

func startQmgr(t *testing.T, cfg Config, st store.Store, tr transport.Transport, log io.Writer) (*Qmgr, func()) {
	t.Helper()
	return startQmgrWith(t, cfg, st, resolveByDomain, map[string]transport.Transport{"smtp": tr}, log)
}

// startQmgrWith runs a qmgr with its own routing and transports.
func startQmgrWith(t *testing.T, cfg Config, st store.Store, resolve func(string) rewrite.Result,
	transports map[string]transport.Transport, log io.Writer) (*Qmgr, func()) {
	t.Helper()
	if cfg.Owner == "" {
		cfg.Owner = "test-node"
	}
	q := New(cfg, st, resolve, transports, maillog.New(log, "test", "postfix"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	return q, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGroupsRecipientsPerMessageAndDestination(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "A1", "a@one.example", "b@one.example", "c@two.example", "d@one.example")
	tr := newRecorder(transport.Sent)
	var log syncBuf
	_, stop := startQmgr(t, Config{RecipientLimit: 2, PollInterval: 50 * time.Millisecond}, st, tr, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "A1: removed") }, "message removed")
	// one.example has 3 recipients: two deliveries (limit 2); two.example one.
	per := map[string][]int{}
	for _, c := range tr.calls {
		per[c.Nexthop] = append(per[c.Nexthop], len(c.Recipients))
	}
	if got := fmt.Sprint(len(per["one.example"]), len(per["two.example"])); got != "2 1" {
		t.Errorf("deliveries per destination = %v", per)
	}
	if strings.Count(log.String(), "status=sent") != 4 || strings.Count(log.String(), "(queue active)") != 1 {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestDestinationConcurrencyLimit(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 30; i++ {
		enqueue(t, st, fmt.Sprintf("M%02d", i), "x@busy.example")
	}
	tr := newRecorder(transport.Sent)
	tr.hold = make(chan struct{})
	var log syncBuf
	_, stop := startQmgr(t, Config{DestConcurrency: 3, ProcessLimit: 10, PollInterval: 50 * time.Millisecond}, st, tr, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool { return tr.count() == 3 }, "three deliveries started")
	close(tr.hold)
	peers.WaitFor(t, 20*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 30 }, "all 30 delivered")
	if tr.maxActive["busy.example"] != 3 {
		t.Errorf("max concurrent deliveries = %d, want 3", tr.maxActive["busy.example"])
	}
}

func TestDeferralBacksOff(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "D1", "x@down.example")
	tr := newRecorder(transport.Deferred)
	var log syncBuf
	before := time.Now()
	_, stop := startQmgr(t, Config{MinBackoff: time.Hour, MaxBackoff: 4 * time.Hour, PollInterval: 50 * time.Millisecond}, st, tr, &log)
	peers.WaitFor(t, 10*time.Second, func() bool {
		m, err := st.MessageGet(context.Background(), "D1")
		return err == nil && m.Recipients[0].State == store.StateDeferred
	}, "recipient deferred")
	stop()
	m, _ := st.MessageGet(context.Background(), "D1")
	r := m.Recipients[0]
	if r.Attempts != 1 || r.LastReason != "test outcome" || r.NextAttempt.Before(before.Add(time.Hour-time.Second)) {
		t.Errorf("deferred recipient = %+v", r)
	}
	if tr.count() != 1 {
		t.Errorf("%d deliveries, want 1 (not due again for an hour)", tr.count())
	}
}

func TestStopReleasesWorkNotStarted(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 5; i++ {
		enqueue(t, st, fmt.Sprintf("R%d", i), "x@slow.example")
	}
	tr := newRecorder(transport.Sent)
	tr.hold = make(chan struct{})
	var log syncBuf
	_, stop := startQmgr(t, Config{DestConcurrency: 1, PollInterval: 50 * time.Millisecond}, st, tr, &log)
	peers.WaitFor(t, 10*time.Second, func() bool { return tr.count() == 1 }, "one delivery running")
	var stopped atomic.Bool
	go func() { stop(); stopped.Store(true) }()
	// The running delivery finishes during the drain; the four waiting
	// ones are released at once, not left to their lease.
	time.AfterFunc(100*time.Millisecond, func() { close(tr.hold) })
	peers.WaitFor(t, 10*time.Second, stopped.Load, "qmgr stopped")
	var queued, removed int
	for i := 0; i < 5; i++ {
		m, err := st.MessageGet(context.Background(), fmt.Sprintf("R%d", i))
		if err != nil {
			removed++
			continue
		}
		if m.Recipients[0].State == store.StateQueued && m.Recipients[0].LeaseOwner == "" {
			queued++
		}
	}
	if removed != 1 || queued != 4 {
		t.Errorf("after stop: %d delivered, %d released; want 1 and 4\n%s", removed, queued, log.String())
	}
}

func TestExpiredMailIsReturned(t *testing.T) {
	st := testStore(t)
	m := &store.NewMessage{QueueID: "E1", Sender: "s@example.org", Arrival: time.Now().Add(-6 * 24 * time.Hour),
		Content: strings.NewReader("x\r\n"), Recipients: []store.NewRecipient{{Address: "x@down.example"}}}
	if err := st.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	tr := newRecorder(transport.Deferred)
	var log syncBuf
	_, stop := startQmgr(t, Config{MaxQueueLifetime: 5 * 24 * time.Hour, PollInterval: 50 * time.Millisecond}, st, tr, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "E1: removed") }, "expired message removed")
	if !strings.Contains(log.String(), "E1: from=<s@example.org>, status=expired, returned to sender") {
		t.Errorf("log:\n%s", log.String())
	}
}

// slowComplete is a store whose completions take a while, as on a loaded
// database server.
type slowComplete struct {
	store.Store
	delay time.Duration
}

func (s slowComplete) RecipientsComplete(ctx context.Context, owner string, ids []int64) ([]string, error) {
	time.Sleep(s.delay)
	return s.Store.RecipientsComplete(ctx, owner, ids)
}

// TestLeaseRenewedWhileOutcomeIsWritten: a completion that takes longer than
// the lease must not let the recipient be claimed again and delivered twice.
func TestLeaseRenewedWhileOutcomeIsWritten(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "L1", "x@example.net")
	lease := 600 * time.Millisecond
	a := newRecorder(transport.Sent)
	_, stopA := startQmgr(t, Config{Owner: "node-a", Lease: lease, PollInterval: 50 * time.Millisecond},
		slowComplete{st, 4 * lease}, a, io.Discard)
	defer stopA()
	peers.WaitFor(t, 10*time.Second, func() bool { return a.count() == 1 }, "node a delivering")
	b := newRecorder(transport.Sent)
	_, stopB := startQmgr(t, Config{Owner: "node-b", Lease: lease, PollInterval: 50 * time.Millisecond}, st, b, io.Discard)
	defer stopB()
	peers.WaitFor(t, 10*time.Second, func() bool {
		_, err := st.MessageGet(context.Background(), "L1")
		return err != nil
	}, "the delivery recorded")
	// Either node may take an expired lease, node a included.
	if n := a.count() + b.count(); n != 1 {
		t.Errorf("L1 delivered %d times (node a %d, node b %d); want once", n, a.count(), b.count())
	}
}

// selfLogging is a transport that writes its own log lines, as local does
// for an expanded alias.
type selfLogging struct{ calls atomic.Int32 }

func (s *selfLogging) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	s.calls.Add(1)
	out := transport.FailAll(d, transport.Sent, "2.0.0", "delivered to mailbox", "local", 0)
	for i := range out {
		out[i].Logged = true
	}
	return out
}

// TestTransportLoggedLinesNotRepeated: the qmgr writes no delivery line of
// its own for a result the transport logged itself.
func TestTransportLoggedLinesNotRepeated(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "G1", "list@example.net")
	tr := &selfLogging{}
	var log syncBuf
	_, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond}, st, tr, &log)
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "G1: removed") }, "G1 delivered")
	stop()
	if tr.calls.Load() != 1 || strings.Contains(log.String(), "to=<list@example.net>") {
		t.Errorf("%d deliveries; log:\n%s", tr.calls.Load(), log.String())
	}
}

// TestPollIntervalJitter: without wake-ups (SQLite here, MariaDB too) the
// poll interval is spread within ±20% of qmgr_poll_interval.
func TestPollIntervalJitter(t *testing.T) {
	q := New(Config{PollInterval: time.Second}, testStore(t), resolveByDomain, nil, nil, nil)
	seen := map[time.Duration]bool{}
	for i := 0; i < 100; i++ {
		d := q.pollInterval()
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("poll interval %v outside 0.8s..1.2s", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("%d distinct intervals in 100: no jitter", len(seen))
	}
}
