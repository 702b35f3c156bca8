package qmgr

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

func postfixLimits(concurrency, recipients int) Limits {
	return Limits{Concurrency: concurrency, Initial: 5, Recipients: recipients, FailedCohortLimit: 1,
		Positive: Feedback{Base: 1}, Negative: Feedback{Base: 1}}
}

func TestParseFeedback(t *testing.T) {
	for in, want := range map[string]Feedback{
		"1":                       {Base: 1},
		"1/concurrency":           {Base: 1, Per: "concurrency"},
		" 0.5 / sqrt_concurrency": {Base: 0.5, Per: "sqrt_concurrency"},
	} {
		got, err := ParseFeedback(in)
		if err != nil || got != want {
			t.Errorf("ParseFeedback(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "2", "-1", "1/window"} {
		if _, err := ParseFeedback(bad); err == nil {
			t.Errorf("ParseFeedback(%q) accepted", bad)
		}
	}
}

// TestWindowFeedback follows Postfix's arithmetic (qmgr_queue.c): with
// feedback 1 each success opens one more place up to the limit; the first
// failure of a negative cycle closes two (the hysteresis overshoots), later
// ones one each; a failure counts 1/concurrency towards the failed cohort
// limit, so a destination at 5 dies at the third failure in a row
// (1/5+1/3+1/2 ≥ 1).
func TestWindowFeedback(t *testing.T) {
	w := newWindow(postfixLimits(20, 50))
	if w.size != 5 {
		t.Fatalf("initial window %d, want 5", w.size)
	}
	for i := 0; i < 30; i++ {
		w.positive(w.size)
	}
	if w.size != 20 {
		t.Errorf("after 30 successes window %d, want the limit 20", w.size)
	}
	w = newWindow(postfixLimits(20, 50))
	var sizes []int
	for !w.negative() {
		sizes = append(sizes, w.size)
	}
	if fmt.Sprint(sizes) != "[3 2]" {
		t.Errorf("windows after failures %v, want [3 2] then dead", sizes)
	}
	// A success in between resets the failed cohorts.
	w = newWindow(postfixLimits(20, 50))
	w.negative()
	w.negative()
	w.positive(0)
	w.negative()
	if w.dead() {
		t.Error("dead although a success came between the failures")
	}
	// A dead destination that answers again comes back.
	w = newWindow(postfixLimits(20, 50))
	for !w.negative() {
	}
	w.positive(0)
	if w.size != 5 {
		t.Errorf("revived window %d, want the initial 5", w.size)
	}
	// 1/concurrency: about one step per window's worth of results.
	lim := postfixLimits(20, 50)
	lim.Positive = Feedback{Base: 1, Per: "concurrency"}
	w = newWindow(lim)
	for i := 0; i < 4; i++ {
		w.positive(w.size)
	}
	if w.size != 5 {
		t.Errorf("1/concurrency: window %d after 4 successes, want 5", w.size)
	}
	w.positive(w.size)
	if w.size != 6 {
		t.Errorf("1/concurrency: window %d after 5 successes, want 6", w.size)
	}
	// No cohort limit: never dead.
	lim = postfixLimits(20, 50)
	lim.FailedCohortLimit = 0
	w = newWindow(lim)
	for i := 0; i < 20; i++ {
		if w.negative() {
			t.Fatal("dead without a cohort limit")
		}
	}
	if w.size != 1 {
		t.Errorf("window %d after failures, want 1", w.size)
	}
}

func TestSiteFailure(t *testing.T) {
	refused := transport.Result{Status: transport.Deferred, DSN: "4.4.1", Relay: "none", Text: "connect to a[192.0.2.1]:25: Connection refused"}
	greeting := transport.Result{Status: transport.Deferred, DSN: "4.7.0", Relay: "a[192.0.2.1]:25",
		Text: "host a[192.0.2.1] refused to talk to me: 421 4.7.0 busy"}
	inSession := transport.Result{Status: transport.Deferred, DSN: "4.2.2", Relay: "a[192.0.2.1]:25", ConnUse: 1,
		Text: "host a[192.0.2.1] said: 452 4.2.2 full (in reply to RCPT TO command)"}
	local := transport.Result{Status: transport.Deferred, DSN: "4.3.0", Relay: "local", Text: "mailbox busy"}
	sent := transport.Result{Status: transport.Sent, DSN: "2.0.0", Relay: "a[192.0.2.1]:25", ConnUse: 1}
	for _, tc := range []struct {
		name      string
		transport string
		results   []transport.Result
		want      bool
	}{
		{"connection refused", "smtp", []transport.Result{refused, refused}, true},
		{"421 greeting", "smtp", []transport.Result{greeting}, true},
		{"4xx in session", "smtp", []transport.Result{inSession}, false},
		{"local deferral", "local", []transport.Result{local}, false},
		{"one recipient sent", "smtp", []transport.Result{sent, refused}, false},
		{"retry transport", rewrite.RetryTransport, []transport.Result{refused}, false},
	} {
		if _, got := siteFailure(tc.transport, tc.results); got != tc.want {
			t.Errorf("%s: site failure = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// gate is a transport whose deliveries each wait for a token; it records
// how many run at once per recipient domain and answers with fail when set.
type gate struct {
	mu        sync.Mutex
	active    map[string]int
	maxActive map[string]int
	calls     map[string]int
	tokens    chan struct{}
	fail      *transport.Result
}

func newGate(fail *transport.Result) *gate {
	return &gate{active: map[string]int{}, maxActive: map[string]int{}, calls: map[string]int{}, tokens: make(chan struct{}), fail: fail}
}

func (g *gate) Deliver(ctx context.Context, d *transport.Delivery) []transport.Result {
	dom := d.Nexthop
	g.mu.Lock()
	g.calls[dom]++
	g.active[dom]++
	g.maxActive[dom] = max(g.maxActive[dom], g.active[dom])
	g.mu.Unlock()
	if g.tokens != nil {
		select {
		case <-g.tokens:
		case <-ctx.Done():
		}
	}
	g.mu.Lock()
	g.active[dom]--
	g.mu.Unlock()
	if g.fail != nil {
		return transport.FailAll(d, g.fail.Status, g.fail.DSN, g.fail.Text, g.fail.Relay, 0)
	}
	return transport.FailAll(d, transport.Sent, "2.0.0", "250 2.0.0 Ok", "mx."+dom+"[192.0.2.9]:25", 0)
}

func (g *gate) get(m map[string]int, dom string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return m[dom]
}

// TestSlowStartGrowsWindow: 40 messages to one destination start 5
// deliveries; each success opens one more place (feedback 1) up to the
// transport's limit of 20.
func TestSlowStartGrowsWindow(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 40; i++ {
		enqueue(t, st, fmt.Sprintf("S%02d", i), "x@busy.example")
	}
	g := newGate(nil)
	var log syncBuf
	_, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond,
		Limits: func(string) Limits { return postfixLimits(20, 50) }}, st, g, &log)
	defer stop()
	for done := 0; done < 40; done++ {
		want := min(5+done, 20, 40-done)
		peers.WaitFor(t, 10*time.Second, func() bool { return g.get(g.active, "busy.example") == want },
			fmt.Sprintf("%d deliveries at once after %d successes", want, done))
		g.tokens <- struct{}{}
	}
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 40 }, "all 40 delivered")
	if m := g.get(g.maxActive, "busy.example"); m != 20 {
		t.Errorf("most deliveries at once %d, want 20", m)
	}
}

var refused = &transport.Result{Status: transport.Deferred, DSN: "4.4.1", Relay: "none",
	Text: "connect to mx.down.example[192.0.2.25]:25: Connection refused"}

// TestFailingDestinationGoesDead: the five first deliveries fail to
// connect; the window shrinks, the fourth failure reaches the failed cohort
// limit, and the 35 waiting deliveries are deferred without an attempt,
// with Postfix's "delivery temporarily suspended" reason. The mark is in
// the database for every node.
func TestFailingDestinationGoesDead(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 40; i++ {
		enqueue(t, st, fmt.Sprintf("F%02d", i), "x@down.example")
	}
	g := newGate(refused)
	var log syncBuf
	_, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: 2 * time.Hour,
		Limits: func(string) Limits { return postfixLimits(20, 50) }}, st, g, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool { return g.get(g.active, "down.example") == 5 }, "five deliveries")
	for i := 0; i < 5; i++ {
		g.tokens <- struct{}{}
	}
	suspended := "delivery temporarily suspended: " + refused.Text
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "F", 40, "") == 40 }, "all 40 deferred")
	if n := deferredCount(t, st, "F", 40, suspended); n != 35 {
		t.Errorf("%d recipients deferred as suspended, want 35\n%s", n, log.String())
	}
	if n := deferredCount(t, st, "F", 40, refused.Text); n != 5 {
		t.Errorf("%d recipients deferred by their own attempt, want 5", n)
	}
	if c, m := g.get(g.calls, "down.example"), g.get(g.maxActive, "down.example"); c != 5 || m > 5 {
		t.Errorf("%d attempts, at most %d at once; want 5 and at most 5", c, m)
	}
	marks, err := st.DeadDestinationList(context.Background())
	if err != nil || len(marks) != 1 || marks[0].Transport != "smtp" || marks[0].Nexthop != "down.example" ||
		marks[0].Reason != suspended || marks[0].DSN != "4.4.1" || time.Until(marks[0].Until) < 50*time.Minute {
		t.Errorf("dead marks = %+v, %v", marks, err)
	}
	if !strings.Contains(log.String(), "postfix/qmgr[") || !strings.Contains(log.String(),
		"to=<x@down.example>, relay=none, delay=") || !strings.Contains(log.String(), "dsn=4.4.1, status=deferred ("+suspended+")") {
		t.Errorf("no suspended deferral logged:\n%s", log.String())
	}
}

// deferredCount counts messages prefix00..prefixNN whose one recipient is
// deferred, with reason when reason is not empty.
func deferredCount(t *testing.T, st store.Store, prefix string, n int, reason string) int {
	t.Helper()
	c := 0
	for i := 0; i < n; i++ {
		m, err := st.MessageGet(context.Background(), fmt.Sprintf("%s%02d", prefix, i))
		if err != nil {
			continue
		}
		r := m.Recipients[0]
		if r.State == store.StateDeferred && (reason == "" || r.LastReason == reason) {
			c++
		}
	}
	return c
}

// TestDeadDestinationShared: a node that meets a destination another node
// marked dead defers its mail at once, without calling its transport, and
// still delivers elsewhere.
func TestDeadDestinationShared(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 10; i++ {
		enqueue(t, st, fmt.Sprintf("A%02d", i), "x@down.example")
	}
	a := newGate(refused)
	a.tokens = nil
	_, stopA := startQmgr(t, Config{Owner: "node-a", PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour,
		MaxBackoff: 2 * time.Hour}, st, a, io.Discard)
	peers.WaitFor(t, 10*time.Second, func() bool {
		marks, err := st.DeadDestinationList(context.Background())
		return err == nil && len(marks) == 1
	}, "node a marks down.example dead")
	stopA()

	enqueue(t, st, "B00", "y@down.example")
	enqueue(t, st, "B01", "y@up.example")
	b := newGate(nil)
	b.tokens = nil
	var log syncBuf
	_, stopB := startQmgr(t, Config{Owner: "node-b", PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour,
		MaxBackoff: 2 * time.Hour}, st, b, &log)
	defer stopB()
	peers.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(log.String(), "B01: removed") && deferredCount(t, st, "B", 1, "") == 1
	}, "node b delivers B01 and defers B00")
	if c := b.get(b.calls, "down.example"); c != 0 {
		t.Errorf("node b tried the dead destination %d times", c)
	}
	m, _ := st.MessageGet(context.Background(), "B00")
	if want := "delivery temporarily suspended: " + refused.Text; m.Recipients[0].LastReason != want {
		t.Errorf("B00 deferred with %q, want %q", m.Recipients[0].LastReason, want)
	}
}

// TestExpiredMarkProbesOnce: once a dead mark has run out, one delivery
// tries the destination while the others wait; its success lifts the mark
// for every node and the rest follow.
func TestExpiredMarkProbesOnce(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	err := st.DeadDestinationSet(ctx, store.DeadDestination{Transport: "smtp", Nexthop: "back.example",
		Until: time.Now().Add(-time.Second), DSN: "4.4.1", Reason: "delivery temporarily suspended: " + refused.Text})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		enqueue(t, st, fmt.Sprintf("P%02d", i), "x@back.example")
	}
	g := newGate(nil)
	var log syncBuf
	q, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond}, st, g, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		d := q.dests["smtp:back.example"]
		return d != nil && d.active == 1 && len(d.pending) == 2 && d.w.size == 1
	}, "one probe running, two waiting")
	g.tokens <- struct{}{}
	peers.WaitFor(t, 10*time.Second, func() bool {
		marks, err := st.DeadDestinationList(ctx)
		return err == nil && len(marks) == 0
	}, "mark lifted")
	g.tokens <- struct{}{}
	g.tokens <- struct{}{}
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 3 }, "all delivered")
}

// TestRecipientLimitPerTransport: smtp takes two recipients per delivery
// here; local one, and with one recipient per delivery its destination is
// the recipient, so two users get deliveries at once while one user never
// gets more than its transport's concurrency.
func TestRecipientLimitPerTransport(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "R1", "a@remote.example", "b@remote.example", "c@remote.example", "d@remote.example", "e@remote.example")
	enqueue(t, st, "R2", "ann@localhost", "bob@localhost", "cat@localhost")
	smtp, local := newRecorder(transport.Sent), newRecorder(transport.Sent)
	var log syncBuf
	resolve := func(addr string) rewrite.Result {
		d := rewrite.Domain(addr)
		if d == "localhost" {
			return rewrite.Result{Transport: "local", Nexthop: d, Domain: d}
		}
		return rewrite.Result{Transport: "smtp", Nexthop: d, Domain: d}
	}
	q := New(Config{Owner: "n", PollInterval: 50 * time.Millisecond, Limits: func(tr string) Limits {
		if tr == "local" {
			return postfixLimits(2, 1)
		}
		return postfixLimits(20, 2)
	}}, st, resolve, map[string]transport.Transport{"smtp": smtp, "local": local}, maillog.New(&log, "test", "postfix"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	defer func() { cancel(); <-done }()
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 2 }, "both delivered")
	var sizes []int
	for _, c := range smtp.calls {
		sizes = append(sizes, len(c.Recipients))
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[1 2 2]" {
		t.Errorf("smtp deliveries of %v recipients, want [1 2 2]", sizes)
	}
	if len(local.calls) != 3 {
		t.Errorf("%d local deliveries, want 3 (one per recipient)", len(local.calls))
	}
	for _, c := range local.calls {
		if len(c.Recipients) != 1 {
			t.Errorf("local delivery with %d recipients", len(c.Recipients))
		}
	}
}

// TestLocalConcurrencyIsPerRecipient: with one recipient per delivery, the
// concurrency limit (local: 2) bounds deliveries to one user, not to the
// domain: four users get four deliveries at once.
func TestLocalConcurrencyIsPerRecipient(t *testing.T) {
	st := testStore(t)
	for i := 0; i < 3; i++ {
		enqueue(t, st, fmt.Sprintf("L%d", i), "ann@localhost", "bob@localhost", "cat@localhost", "dan@localhost")
	}
	g := newGate(nil)
	var log syncBuf
	_, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond, Limits: func(string) Limits { return postfixLimits(2, 1) }},
		st, g, &log)
	defer stop()
	// 12 deliveries: 3 per user, at most 2 per user at once, so 8 first.
	peers.WaitFor(t, 10*time.Second, func() bool { return g.get(g.active, "localhost") == 8 }, "eight deliveries at once")
	for i := 0; i < 12; i++ {
		g.tokens <- struct{}{}
	}
	peers.WaitFor(t, 10*time.Second, func() bool { return strings.Count(log.String(), ": removed") == 3 }, "all delivered")
	if m := g.get(g.maxActive, "localhost"); m != 8 {
		t.Errorf("most deliveries at once %d, want 8", m)
	}
}

// TestDeferTransports: mail for a transport in defer_transports is
// deferred without an attempt, as Postfix's retry agent words it.
func TestDeferTransports(t *testing.T) {
	st := testStore(t)
	enqueue(t, st, "T00", "x@held.example")
	tr := newRecorder(transport.Sent)
	var log syncBuf
	_, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: 2 * time.Hour,
		DeferTransports: []string{"smtp"}}, st, tr, &log)
	defer stop()
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "T", 1, "deferred transport") == 1 }, "T0 deferred")
	if tr.count() != 0 {
		t.Errorf("transport called %d times", tr.count())
	}
	if !strings.Contains(log.String(), "postfix/retry[") || !strings.Contains(log.String(), "dsn=4.3.2, status=deferred (deferred transport)") {
		t.Errorf("log:\n%s", log.String())
	}
}
