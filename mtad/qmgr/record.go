package qmgr

import (
	"context"
	"time"

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
	var bounceR []store.ClaimedRecipient
	var bounceRes []transport.Result
	expired := map[string]bool{}
	for _, o := range batch {
		switch o.result.Status {
		case transport.Sent:
			done = append(done, o.rcpt.ID)
		case transport.Bounced:
			bounceR = append(bounceR, o.rcpt)
			bounceRes = append(bounceRes, o.result)
		default:
			if q.cfg.MaxQueueLifetime > 0 && now.Sub(o.rcpt.Arrival) >= q.cfg.MaxQueueLifetime {
				if !expired[o.rcpt.QueueID] {
					expired[o.rcpt.QueueID] = true
					q.log.Printf("qmgr", "%s: from=<%s>, status=expired, returned to sender", o.rcpt.QueueID, o.rcpt.Sender)
				}
				bounceR = append(bounceR, o.rcpt)
				bounceRes = append(bounceRes, o.result)
				continue
			}
			defers = append(defers, store.Deferral{
				ID:          o.rcpt.ID,
				Reason:      o.result.Text,
				NextAttempt: now.Add(store.Backoff(o.rcpt.Attempts+1, q.cfg.MinBackoff, q.cfg.MaxBackoff)),
			})
		}
	}
	if len(bounceR) > 0 {
		if q.bouncer == nil {
			for _, r := range bounceR {
				done = append(done, r.ID)
			}
		} else if err := q.bouncer.Bounce(ctx, bounceR, bounceRes); err != nil {
			q.log.Printf("qmgr", "warning: bounce notice: %v; deferring %d recipients", err, len(bounceR))
			for i, r := range bounceR {
				defers = append(defers, store.Deferral{ID: r.ID, Reason: bounceRes[i].Text,
					NextAttempt: now.Add(q.cfg.MinBackoff)})
			}
		} else {
			for _, r := range bounceR {
				done = append(done, r.ID)
			}
		}
	}
	if len(defers) > 0 {
		if err := retry(ctx, func() error { return q.st.RecipientsDefer(ctx, q.cfg.Owner, defers) }); err != nil {
			q.log.Printf("qmgr", "warning: record %d deferrals: %v", len(defers), err)
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
