package qmgr

import (
	"context"
	"time"

	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// recordBatch bounds one batch of outcomes written in one round trip.
const recordBatch = 512

// recorder writes delivery outcomes to the store in batches: whatever has
// arrived while the previous batch was being written goes in the next one,
// so the batch size follows the load with no timer.
func (q *Qmgr) recorder() {
	for first := range q.done {
		batch := []outcome{first}
	more:
		for len(batch) < recordBatch {
			select {
			case o, ok := <-q.done:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		q.record(batch)
	}
}

// record writes one batch. A failed write is logged and left alone: the
// leases expire and the recipients are tried again (a duplicate delivery is
// possible then, a lost message is not).
func (q *Qmgr) record(batch []outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The leases stay renewed until the outcome is written: a slow write
	// must not let another node take a delivered recipient and send it
	// again. A failed write leaves them to expire and be tried again.
	q.mu.Lock()
	for _, o := range batch {
		q.held[o.rcpt.ID] = false
	}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		for _, o := range batch {
			delete(q.held, o.rcpt.ID)
		}
		q.mu.Unlock()
	}()
	now := q.now()
	var done []int64
	var defers []store.Deferral
	bounces := &byMessage{}
	warns := &byMessage{}
	expired := map[string]bool{}
	for _, o := range batch {
		if o.rcpt.VerifyProbe {
			// A probe's outcome goes to the verify cache and the probe
			// goes away, whatever it was: no bounce, no retry.
			q.verified(ctx, o, now)
			done = append(done, o.rcpt.ID)
			continue
		}
		switch o.result.Status {
		case transport.Sent:
			done = append(done, o.rcpt.ID)
		case transport.Bounced:
			bounces.add(o)
		default:
			if q.expired(o.rcpt, now) {
				if !expired[o.rcpt.QueueID] {
					expired[o.rcpt.QueueID] = true
					q.log.Printf("qmgr", "%s: from=<%s>, status=expired, returned to sender", o.rcpt.QueueID, o.rcpt.Sender)
				}
				bounces.add(o)
				continue
			}
			defers = append(defers, store.Deferral{
				ID:          o.rcpt.ID,
				Reason:      o.result.Text,
				NextAttempt: now.Add(store.Backoff(o.rcpt.Attempts+1, q.cfg.MinBackoff, q.cfg.MaxBackoff)),
			})
			if q.warnDue(o.rcpt, now) {
				warns.add(o)
			}
		}
	}
	// One notice per message: a failed one defers only its own message's
	// recipients, which are returned again at their next attempt.
	for _, id := range bounces.order {
		g := bounces.groups[id]
		if q.bouncer != nil {
			if err := q.bouncer.Bounce(ctx, g.rcpts, g.results); err != nil {
				q.log.Printf("qmgr", "warning: bounce notice: %v; deferring %d recipients", err, len(g.rcpts))
				for i, r := range g.rcpts {
					defers = append(defers, store.Deferral{ID: r.ID, Reason: g.results[i].Text,
						NextAttempt: now.Add(q.cfg.MinBackoff)})
				}
				continue
			}
		}
		for _, r := range g.rcpts {
			done = append(done, r.ID)
		}
	}
	deferred := true
	if len(defers) > 0 {
		if err := retry(ctx, func() error { return q.st.RecipientsDefer(ctx, q.cfg.Owner, defers) }); err != nil {
			q.log.Printf("qmgr", "warning: record %d deferrals: %v", len(defers), err)
			deferred = false
		}
	}
	if len(done) > 0 {
		var removed []string
		err := retry(ctx, func() error {
			var err error
			removed, err = q.st.RecipientsComplete(ctx, q.cfg.Owner, done)
			return err
		})
		if err != nil {
			q.log.Printf("qmgr", "warning: record %d deliveries: %v", len(done), err)
		}
		for _, id := range removed {
			q.log.Printf("qmgr", "%s: removed", id)
		}
	}
	if deferred {
		// After the deferrals are written: these recipients are tried
		// again whatever becomes of the warning.
		q.delayWarn(ctx, warns)
	}
}

// DelayWarner sends delay warnings: Postfix's defer(8) notices at
// delay_warning_time. A Bouncer given to New that implements it is used
// when Config.DelayWarning is set.
type DelayWarner interface {
	DelayWarn(ctx context.Context, rcpts []store.ClaimedRecipient, results []transport.Result) error
}

// expired reports whether r's message is to be returned to its sender after
// this failed attempt: postsuper -e marked it, or it is older than
// maximal_queue_lifetime (bounce_queue_lifetime for null-sender mail). A
// lifetime of 0 never expires.
func (q *Qmgr) expired(r store.ClaimedRecipient, now time.Time) bool {
	if r.ExpireForced {
		return true
	}
	life := q.cfg.MaxQueueLifetime
	if r.Sender == "" && q.cfg.BounceQueueLifetime > 0 {
		life = q.cfg.BounceQueueLifetime
	}
	return life > 0 && now.Sub(r.Arrival) >= life
}

// warnDue reports whether r's deferral makes its message due for the delay
// warning: delay_warning_time has passed since arrival and, as far as this
// claim knows, no warning went out yet.
func (q *Qmgr) warnDue(r store.ClaimedRecipient, now time.Time) bool {
	if q.cfg.DelayWarning <= 0 || r.DelayWarned || now.Sub(r.Arrival) < q.cfg.DelayWarning {
		return false
	}
	_, ok := q.bouncer.(DelayWarner)
	return ok
}

// delayWarn sends each message's warning once: the node whose mark in the
// database flips it sends it, and clears the mark again when sending fails,
// so that a later attempt warns instead.
func (q *Qmgr) delayWarn(ctx context.Context, warns *byMessage) {
	w, _ := q.bouncer.(DelayWarner)
	for _, id := range warns.order {
		g := warns.groups[id]
		changed, err := q.st.MessageDelayWarnedSet(ctx, id, true)
		if err != nil {
			q.log.Printf("qmgr", "warning: %s: delay warning: %v", id, err)
			continue
		}
		if !changed {
			continue // another node warned first
		}
		if err := w.DelayWarn(ctx, g.rcpts, g.results); err != nil {
			q.log.Printf("qmgr", "warning: %s: delay warning: %v", id, err)
			if _, err := q.st.MessageDelayWarnedSet(ctx, id, false); err != nil {
				q.log.Printf("qmgr", "warning: %s: delay warning mark: %v", id, err)
			}
		}
	}
}

// forcedExpiry sends a recipient of a message that postsuper -e expired to
// the retry transport instead of delivering it, so that it is returned to
// its sender with Postfix's reason (qmgr_message_resolve).
func forcedExpiry(res rewrite.Result) rewrite.Result {
	res.Transport = rewrite.RetryTransport
	res.Nexthop = "4.7.0 message is administratively expired"
	return res
}

// byMessage groups outcomes per message, in the order messages first appear.
type byMessage struct {
	order  []string
	groups map[string]*outcomes
}

type outcomes struct {
	rcpts   []store.ClaimedRecipient
	results []transport.Result
}

func (b *byMessage) add(o outcome) {
	if b.groups == nil {
		b.groups = map[string]*outcomes{}
	}
	g := b.groups[o.rcpt.QueueID]
	if g == nil {
		g = &outcomes{}
		b.groups[o.rcpt.QueueID] = g
		b.order = append(b.order, o.rcpt.QueueID)
	}
	g.rcpts = append(g.rcpts, o.rcpt)
	g.results = append(g.results, o.result)
}

// retry runs a write up to three times: an outcome that is not recorded is
// delivered again once its lease runs out, so a passing database error is
// worth a second try.
func retry(ctx context.Context, write func() error) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = write(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(100<<try) * time.Millisecond):
		}
	}
	return err
}

// verified writes a probe's outcome to the verify cache, under the address
// the probe was sent for (before virtual alias expansion).
func (q *Qmgr) verified(ctx context.Context, o outcome, now time.Time) {
	addr := o.rcpt.Orig
	if addr == "" {
		addr = o.rcpt.Address
	}
	status := store.VerifyDefer
	switch o.result.Status {
	case transport.Sent:
		status = store.VerifyOK
	case transport.Bounced:
		status = store.VerifyBounce
	}
	if status == store.VerifyDefer {
		// A temporary failure does not undo a known good address.
		if e, found, err := q.st.VerifyGet(ctx, addr); err == nil && found && e.Status == store.VerifyOK {
			return
		}
	}
	if err := retry(ctx, func() error { return q.st.VerifyUpdate(ctx, addr, status, o.result.Text, now) }); err != nil {
		q.log.Printf("qmgr", "warning: %s: verify cache update for %s: %v", o.rcpt.QueueID, addr, err)
	}
}
