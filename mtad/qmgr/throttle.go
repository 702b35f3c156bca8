package qmgr

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"sqlmta/mtad/transport"
)

// The reasons Postfix's qmgr gives mail for a failed transport.
const (
	transportUnavailable = "mail transport unavailable"
	transportCrashed     = "unknown mail transport error"
)

// deadTransport is a throttled transport: mail for it is deferred until
// until, with reason.
type deadTransport struct {
	until  time.Time
	reason string
}

// safeDeliver runs t.Deliver and turns a panic into nil results, after
// logging it as the delivery agent would its fatal error. The delivery
// may have happened; the recipients are deferred, as Postfix's qmgr
// assumes the worst of a crashed agent.
func (q *Qmgr) safeDeliver(ctx context.Context, t transport.Transport, j *job) (results []transport.Result) {
	defer func() {
		if v := recover(); v != nil {
			stack := strings.ReplaceAll(strings.TrimSpace(string(debug.Stack())), "\n", " | ")
			q.log.Printf(q.serviceName(j.transport), "panic: %s: %v (%s)", j.delivery.QueueID, v, stack)
			results = nil
		}
	}()
	results = t.Deliver(ctx, j.delivery)
	if results == nil {
		// nil is the panic's; a transport that returns nothing gets
		// "delivery agent returned no result" for each recipient.
		results = []transport.Result{}
	}
	return results
}

// throttleTransport stops deliveries through transportName for
// transport_retry_time and defers the deliveries already waiting for it
// (Postfix's qmgr_transport_throttle and qmgr_defer_transport).
func (q *Qmgr) throttleTransport(transportName, reason string) {
	var waiting []*job
	q.mu.Lock()
	q.deadTransports[transportName] = deadTransport{until: q.now().Add(q.cfg.TransportRetry), reason: reason}
	prefix := queueKey(transportName, "")
	for k, d := range q.dests {
		if strings.HasPrefix(k, prefix) && len(d.pending) > 0 {
			waiting = append(waiting, d.pending...)
			q.slots -= len(d.pending)
			d.pending = nil
		}
	}
	q.mu.Unlock()
	for _, j := range waiting {
		q.deferNow(j, "qmgr", "4.3.0", reason)
	}
}

// transportState is for tests: the throttle reason of a transport, if any.
func (q *Qmgr) transportState(name string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if dt, ok := q.deadTransports[name]; ok && q.now().Before(dt.until) {
		return fmt.Sprintf("%s until %s", dt.reason, dt.until.Format(time.RFC3339))
	}
	return ""
}
