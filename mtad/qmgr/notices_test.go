package qmgr

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/mtad/transport/errtransport"
	"sqlmta/store"
)

// notices is a Bouncer and DelayWarner for these tests: it records the
// notices the qmgr asks for, and fails the first failWarns warnings.
type notices struct {
	mu        sync.Mutex
	bounced   map[string][]transport.Result // by queue ID
	warned    map[string]int
	failWarns int
}

func newNotices() *notices {
	return &notices{bounced: map[string][]transport.Result{}, warned: map[string]int{}}
}

func (n *notices) Bounce(_ context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, r := range rcpts {
		n.bounced[r.QueueID] = append(n.bounced[r.QueueID], results[i])
	}
	return nil
}

func (n *notices) DelayWarn(_ context.Context, rcpts []store.ClaimedRecipient, _ []transport.Result) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failWarns > 0 {
		n.failWarns--
		return errors.New("cleanup unavailable")
	}
	n.warned[rcpts[0].QueueID]++
	return nil
}

func (n *notices) warnings(id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.warned[id]
}

func (n *notices) bounces(id string) []transport.Result {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bounced[id]
}

// startNoticeQmgr runs a qmgr with the notices bouncer and the retry
// transport that forced expiry uses.
func startNoticeQmgr(t *testing.T, cfg Config, st store.Store, tr transport.Transport, b *notices, log *syncBuf) func() {
	t.Helper()
	cfg.Owner = "test-node"
	cfg.PollInterval = 20 * time.Millisecond
	q := New(cfg, st, resolveByDomain, map[string]transport.Transport{"smtp": tr, rewrite.RetryTransport: errtransport.Retry()},
		maillog.New(log, "test", "postfix"), b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func enqueueAged(t *testing.T, st store.Store, id, sender string, age time.Duration, rcpts ...string) {
	t.Helper()
	m := &store.NewMessage{QueueID: id, Sender: sender, Arrival: time.Now().Add(-age),
		Content: strings.NewReader("Subject: t\r\n\r\nbody\r\n")}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Address: r})
	}
	if err := st.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// deferrals counts the message's "status=deferred" log lines.
func deferrals(log, id string) int {
	return len(regexp.MustCompile(`(?m)`+id+`: to=<[^>]*>.*status=deferred`).FindAllString(log, -1))
}

func TestDelayWarningSentOnce(t *testing.T) {
	st := testStore(t)
	enqueueAged(t, st, "W1", "s@example.org", 2*time.Hour, "a@slow.example", "b@slow.example")
	enqueueAged(t, st, "W2", "s@example.org", time.Minute, "c@slow.example") // not old enough
	b := newNotices()
	var log syncBuf
	cfg := Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxQueueLifetime: 5 * 24 * time.Hour,
		DelayWarning: time.Hour}
	stop := startNoticeQmgr(t, cfg, st, newRecorder(transport.Deferred), b, &log)
	peers.WaitFor(t, 20*time.Second, func() bool { return deferrals(log.String(), "W1") >= 6 && deferrals(log.String(), "W2") >= 3 },
		"several attempts of each message")
	stop()
	if n := b.warnings("W1"); n != 1 {
		t.Errorf("W1 warned %d times, want once", n)
	}
	if n := b.warnings("W2"); n != 0 {
		t.Errorf("W2 (a minute old) warned %d times", n)
	}
	// The mark is in the database: another node would not warn again.
	if changed, err := st.MessageDelayWarnedSet(context.Background(), "W1", true); err != nil || changed {
		t.Errorf("W1's mark was not set: changed=%v, %v", changed, err)
	}
	if len(b.bounces("W1")) != 0 {
		t.Errorf("a delayed message was bounced")
	}
}

func TestDelayWarningRetriedAfterFailure(t *testing.T) {
	st := testStore(t)
	enqueueAged(t, st, "W3", "s@example.org", 2*time.Hour, "a@slow.example")
	b := newNotices()
	b.failWarns = 1
	var log syncBuf
	cfg := Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, DelayWarning: time.Hour}
	stop := startNoticeQmgr(t, cfg, st, newRecorder(transport.Deferred), b, &log)
	peers.WaitFor(t, 20*time.Second, func() bool { return b.warnings("W3") == 1 && deferrals(log.String(), "W3") >= 4 },
		"the warning after a failed one")
	stop()
	if n := b.warnings("W3"); n != 1 {
		t.Errorf("W3 warned %d times, want once", n)
	}
	if !strings.Contains(log.String(), "warning: W3: delay warning: cleanup unavailable") {
		t.Errorf("failed warning not logged:\n%s", log.String())
	}
}

func TestForcedExpiryReturnsMail(t *testing.T) {
	st := testStore(t)
	enqueueAged(t, st, "X1", "s@example.org", time.Minute, "a@ok.example", "b@ok.example")
	enqueueAged(t, st, "X2", "s@example.org", time.Minute, "c@ok.example")
	as := st.(store.AdminStore)
	if got, _, err := as.Admin().MessagesExpire(context.Background(), []string{"X1"}, false); err != nil || len(got) != 1 {
		t.Fatalf("MessagesExpire = %v, %v", got, err)
	}
	b := newNotices()
	var log syncBuf
	tr := newRecorder(transport.Sent)
	stop := startNoticeQmgr(t, Config{MinBackoff: time.Hour, MaxBackoff: time.Hour}, st, tr, b, &log)
	peers.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(log.String(), "X1: removed") && strings.Contains(log.String(), "X2: removed")
	}, "both messages removed")
	stop()
	// X1 was never delivered: the retry agent deferred it, the qmgr returned it.
	tr.mu.Lock()
	for _, d := range tr.calls {
		if d.QueueID == "X1" {
			t.Errorf("an expired message was delivered: %+v", d)
		}
	}
	tr.mu.Unlock()
	for _, re := range []string{
		`postfix/retry\[\d+\]: X1: to=<a@ok\.example>, relay=none, delay=[\d.]+, delays=[\d./]+, dsn=4\.7\.0, status=deferred \(message is administratively expired\)`,
		`postfix/qmgr\[\d+\]: X1: from=<s@example\.org>, status=expired, returned to sender`,
	} {
		if !regexp.MustCompile(re).MatchString(log.String()) {
			t.Errorf("log lacks %s:\n%s", re, log.String())
		}
	}
	if n := strings.Count(log.String(), "X1: from=<s@example.org>, status=expired"); n != 1 {
		t.Errorf("expiry logged %d times", n)
	}
	got := b.bounces("X1")
	if len(got) != 2 || got[0].Text != "message is administratively expired" || got[0].DSN != "4.7.0" {
		t.Errorf("returned recipients: %+v", got)
	}
	if len(b.bounces("X2")) != 0 {
		t.Errorf("X2 was returned too")
	}
}

func TestBounceQueueLifetime(t *testing.T) {
	st := testStore(t)
	enqueueAged(t, st, "B1", "", 2*24*time.Hour, "a@down.example")              // a bounce: 1d lifetime
	enqueueAged(t, st, "B2", "s@example.org", 2*24*time.Hour, "b@down.example") // mail: 5d
	b := newNotices()
	var log syncBuf
	cfg := Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxQueueLifetime: 5 * 24 * time.Hour, BounceQueueLifetime: 24 * time.Hour}
	stop := startNoticeQmgr(t, cfg, st, newRecorder(transport.Deferred), b, &log)
	peers.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(log.String(), "B1: removed") && deferrals(log.String(), "B2") >= 2
	}, "the bounce expired, the mail retried")
	stop()
	if !strings.Contains(log.String(), "B1: from=<>, status=expired, returned to sender") {
		t.Errorf("log:\n%s", log.String())
	}
	if strings.Contains(log.String(), "B2: from=<s@example.org>, status=expired") || len(b.bounces("B2")) != 0 {
		t.Errorf("B2 expired before maximal_queue_lifetime:\n%s", log.String())
	}
	if len(b.bounces("B1")) != 1 {
		t.Errorf("B1 returned %d recipients", len(b.bounces("B1")))
	}
}
