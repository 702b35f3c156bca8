package qmgr

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
)

// crasher is a delivery agent that dies on every delivery.
type crasher struct{ calls atomic.Int32 }

func (c *crasher) Deliver(context.Context, *transport.Delivery) []transport.Result {
	c.calls.Add(1)
	panic("agent fell over")
}

// TestCrashedTransportThrottled: a delivery agent that panics takes the
// node down no further than its transport: the recipients are deferred
// with Postfix's "unknown mail transport error", and mail for the
// transport is deferred without an attempt until transport_retry_time has
// passed.
func TestCrashedTransportThrottled(t *testing.T) {
	st := testStore(t)
	c := &crasher{}
	var log syncBuf
	q, stop := startQmgr(t, Config{PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: 2 * time.Hour,
		TransportRetry: 300 * time.Millisecond}, st, c, &log)
	defer stop()

	enqueue(t, st, "C00", "x@one.example")
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "C", 1, transportCrashed) == 1 }, "C00 deferred")
	if q.transportState("smtp") == "" {
		t.Error("the transport is not throttled after the crash")
	}
	enqueue(t, st, "C01", "y@two.example")
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "C", 2, transportCrashed) == 2 }, "C01 deferred")
	if n := c.calls.Load(); n != 1 {
		t.Errorf("%d deliveries while throttled, want only the one that crashed", n)
	}
	peers.WaitFor(t, 10*time.Second, func() bool { return q.transportState("smtp") == "" }, "the throttle to run out")
	enqueue(t, st, "C02", "z@three.example")
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return c.calls.Load() == 2 }, "a delivery after transport_retry_time")

	l := log.String()
	for _, want := range []string{
		"postfix/smtp[", "panic: C00: agent fell over",
		"postfix/qmgr[", "warning: transport smtp failure -- see a previous warning/fatal/panic logfile record for the problem description",
		"C01: to=<y@two.example>, relay=none, delay=",
		"dsn=4.3.0, status=deferred (unknown mail transport error)",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// routeTo routes every address to transportName, the domain as nexthop.
func routeTo(transportName string) func(string) rewrite.Result {
	return func(addr string) rewrite.Result {
		return rewrite.Result{Transport: transportName, Nexthop: rewrite.Domain(addr), Domain: rewrite.Domain(addr)}
	}
}

// TestUnknownTransportThrottled: a transport that master.cf does not
// define is "mail transport unavailable", and is not looked for again
// until transport_retry_time has passed.
func TestUnknownTransportThrottled(t *testing.T) {
	st := testStore(t)
	var log syncBuf
	q, stop := startQmgrWith(t, Config{PollInterval: 50 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: 2 * time.Hour,
		TransportRetry: time.Hour}, st, routeTo("nosuch"), map[string]transport.Transport{}, &log)
	defer stop()

	enqueue(t, st, "U00", "a@one.example")
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "U", 1, transportUnavailable) == 1 }, "U00 deferred")
	enqueue(t, st, "U01", "b@two.example")
	q.Wake()
	peers.WaitFor(t, 10*time.Second, func() bool { return deferredCount(t, st, "U", 2, transportUnavailable) == 2 }, "U01 deferred")
	l := log.String()
	if n := strings.Count(l, "warning: connect to transport private/nosuch: No such file or directory"); n != 1 {
		t.Errorf("%d warnings about the missing transport, want 1 (the second message finds it throttled):\n%s", n, l)
	}
	if !strings.Contains(l, "postfix/qmgr[") || strings.Count(l, "dsn=4.3.0, status=deferred (mail transport unavailable)") != 2 {
		t.Errorf("log:\n%s", l)
	}
}
