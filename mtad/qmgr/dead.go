package qmgr

import (
	"context"
	"strings"
	"time"

	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// suspendedPrefix starts the reason of mail deferred for a dead
// destination, as in Postfix's qmgr.
const suspendedPrefix = "delivery temporarily suspended: "

// deadMark is a dead destination as this node knows it: from the database,
// or set here (local) and kept even when a refresh does not show it yet.
type deadMark struct {
	store.DeadDestination
	local bool
}

// siteFailure reports whether results say that the destination itself
// could not be reached (Postfix's "site" failure, which throttles the
// queue): nothing was delivered and a deferral came from no SMTP/LMTP
// session at all, i.e. the connection, the greeting, the EHLO handshake,
// DNS or the next hop failed (ConnUse 0, relay none or the host that
// refused to talk). A reply inside a session (a 4xx to MAIL or RCPT) is not
// a site failure, and neither is a local agent's deferral (relay local,
// virtual or the pipe's name). The error and retry transports defer by
// design.
func siteFailure(transportName string, results []transport.Result) (transport.Result, bool) {
	if transportName == rewrite.RetryTransport || transportName == "error" {
		return transport.Result{}, false
	}
	var fail transport.Result
	found := false
	for _, r := range results {
		switch {
		case r.Status == transport.Sent:
			return transport.Result{}, false
		case !found && r.Status == transport.Deferred && r.ConnUse == 0 &&
			(r.Relay == "" || r.Relay == "none" || strings.Contains(r.Relay, "[")):
			fail, found = r, true
		}
	}
	return fail, found
}

// refreshDead reads the dead destinations every node shares. Marks this
// node set are kept until they expire, even while the database does not
// list them (a write that failed or has not landed). Marks that expired
// longer than maximal_backoff_time ago are dropped: no mail has probed
// them since, and the next one starts afresh. It reads at most once per
// qmgr_poll_interval: claims come one after another in a storm, and this
// node's own marks are in q.dead already.
func (q *Qmgr) refreshDead(ctx context.Context, now time.Time) {
	if !q.deadRead.IsZero() && now.Sub(q.deadRead) < q.cfg.PollInterval {
		return
	}
	q.deadRead = now
	marks, err := q.st.DeadDestinationList(ctx)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Printf("qmgr", "warning: read dead destinations: %v", err)
		}
		return
	}
	fresh := make(map[string]deadMark, len(marks))
	var stale []store.DeadDestination
	for _, m := range marks {
		if q.cfg.MaxBackoff > 0 && now.Sub(m.Until) > q.cfg.MaxBackoff {
			stale = append(stale, m)
			continue
		}
		fresh[queueKey(m.Transport, m.Nexthop)] = deadMark{DeadDestination: m}
	}
	q.mu.Lock()
	for k, m := range q.dead {
		if _, ok := fresh[k]; !ok && m.local && now.Before(m.Until) {
			fresh[k] = m
		}
	}
	q.dead = fresh
	q.mu.Unlock()
	for _, m := range stale {
		q.forgetDead(m.Transport, m.Nexthop)
	}
}

// markDead writes a destination's mark for every node.
func (q *Qmgr) markDead(m store.DeadDestination) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.st.DeadDestinationSet(ctx, m); err != nil {
		q.log.Printf("qmgr", "warning: record dead destination %s:%s: %v", m.Transport, m.Nexthop, err)
	}
}

// forgetDead removes a destination's mark: a delivery there worked.
func (q *Qmgr) forgetDead(transportName, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.st.DeadDestinationDelete(ctx, transportName, name); err != nil {
		q.log.Printf("qmgr", "warning: forget dead destination %s:%s: %v", transportName, name, err)
	}
}

// deferNow defers j's recipients without a delivery attempt: its
// destination is dead (logged as the retry service, error(8), with the mark's reason) or its transport is
// in defer_transports (service retry, "deferred transport"). The log line
// is the delivery agent's, with relay=none.
func (q *Qmgr) deferNow(j *job, service, dsn, text string) {
	now := q.now()
	for _, r := range j.rcpts {
		res := transport.Result{RecipientID: r.ID, Status: transport.Deferred, DSN: dsn, Text: text, Relay: "none"}
		q.logLine(service, j, r, res, now)
		q.done <- outcome{rcpt: r, result: res}
	}
}

func (q *Qmgr) isDeferTransport(name string) bool {
	for _, t := range q.cfg.DeferTransports {
		if t == name {
			return true
		}
	}
	return false
}
