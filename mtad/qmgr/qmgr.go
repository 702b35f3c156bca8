// Package qmgr is the queue manager that runs in every node. It claims due
// recipients from the shared queue in batches sized by its free delivery
// slots (SKIP LOCKED plus a lease, in one short transaction), groups them per
// message and destination, hands each group to a transport, and records the
// outcomes in batches. No transaction is open while a delivery runs; a node
// that dies loses nothing, since its leases expire and any node claims the
// work again.
package qmgr

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"sqlmta/mtad/maillog"
	"sqlmta/mtad/rewrite"
	"sqlmta/mtad/transport"
	"sqlmta/store"
)

// Config holds the qmgr's parameters.
type Config struct {
	Owner            string        // lease owner: unique per running node
	BatchSize        int           // qmgr_claim_batch_size: most recipients per claim
	Lease            time.Duration // qmgr_lease_time
	PollInterval     time.Duration // qmgr_poll_interval: longest sleep without a wake-up
	MinBackoff       time.Duration // minimal_backoff_time
	MaxBackoff       time.Duration // maximal_backoff_time
	MaxQueueLifetime time.Duration // maximal_queue_lifetime
	ProcessLimit     int           // default_process_limit: deliveries at once (running or waiting for their destination)
	ActiveLimit      int           // most claimed recipients in memory: qmgr_message_active_limit and qmgr_message_recipient_limit
	DestConcurrency  int           // default_destination_concurrency_limit (when Limits is nil)
	RecipientLimit   int           // default_destination_recipient_limit: recipients per delivery (when Limits is nil)
	// Limits returns a transport's scheduling parameters (slow start,
	// feedback, dead destinations, recipients per delivery). Nil: Postfix's
	// defaults with DestConcurrency and RecipientLimit.
	Limits          func(transport string) Limits
	DeferTransports []string // defer_transports: deferred without a delivery attempt
	// TransportRetry is transport_retry_time: how long a transport whose
	// delivery agent failed (unknown in master.cf, or crashed) is left
	// alone, its mail deferred without an attempt. Default 60s.
	TransportRetry time.Duration
	DrainTimeout   time.Duration // how long a stopping node lets running deliveries finish
	// BounceQueueLifetime (bounce_queue_lifetime) replaces MaxQueueLifetime
	// for null-sender mail; 0 means the same as MaxQueueLifetime.
	BounceQueueLifetime time.Duration
	// DelayWarning is delay_warning_time (0: no warnings); see DelayWarner.
	DelayWarning time.Duration
	// LogNames maps a transport to the name its delivery lines are logged
	// under when that is not the transport's own (master.cf's command and
	// syslog_name: retry → error, pipe services → pipe, relay → relay/smtp).
	LogNames map[string]string
}

// limits returns the scheduling parameters of transport t.
func (c *Config) limits(t string) Limits {
	if c.Limits != nil {
		return c.Limits(t)
	}
	return Limits{Concurrency: c.DestConcurrency, Initial: 5, Recipients: c.RecipientLimit, FailedCohortLimit: 1,
		Positive: Feedback{Base: 1}, Negative: Feedback{Base: 1}}
}

// Bouncer returns undeliverable mail to its sender. It must have made the
// notice durable (or decided none is due) before it returns nil; on error the
// recipients are deferred instead, so nothing is lost.
type Bouncer interface {
	Bounce(ctx context.Context, rcpts []store.ClaimedRecipient, reasons []transport.Result) error
}

// Qmgr is one node's queue manager.
type Qmgr struct {
	cfg        Config
	st         store.Store
	resolve    func(addr string) rewrite.Result
	transports map[string]transport.Transport
	log        *maillog.Logger
	bouncer    Bouncer
	now        func() time.Time

	wake chan struct{}

	mu sync.Mutex
	// held: claimed recipients whose outcome is not recorded yet, all of
	// them renewed; true while the delivery waits or runs, false while its
	// outcome is being written (a row gone then is no takeover).
	held     map[int64]bool
	slots    int                 // claimed deliveries not yet finished (running or pending)
	dests    map[string]*dest    // per-destination queues, while they have work
	dead     map[string]deadMark // dead destinations (shared through the store)
	deadRead time.Time           // when refreshDead last read the store (dispatch only)
	// deadTransports: transports throttled for transport_retry_time after
	// their delivery agent failed, with the deferral reason. Local to
	// this node, as the failure is.
	deadTransports map[string]deadTransport
	slotFree       chan struct{}

	done    chan outcome
	running sync.WaitGroup
}

// dest is one destination's queue (Postfix's per-destination queue): its
// concurrency window, running deliveries and deliveries waiting for a place.
type dest struct {
	w       window
	active  int
	pending []*job
	idle    time.Time // when it last ran out of work, kept for its failures
}

// job is one delivery: recipients of one message for one transport+nexthop.
type job struct {
	transport string
	queue     string // the destination's name: the nexthop, or the recipient when the recipient limit is 1
	destKey   string // queueKey(transport, queue)
	rcpts     []store.ClaimedRecipient
	delivery  *transport.Delivery
	claimedAt time.Time
}

type outcome struct {
	rcpt   store.ClaimedRecipient
	result transport.Result
}

// New returns a Qmgr. transports maps transport names (smtp, relay, local,
// virtual, …) to their implementations.
func New(cfg Config, st store.Store, resolve func(string) rewrite.Result, transports map[string]transport.Transport, log *maillog.Logger, b Bouncer) *Qmgr {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.ProcessLimit <= 0 {
		cfg.ProcessLimit = 100
	}
	if cfg.DestConcurrency <= 0 {
		cfg.DestConcurrency = 20
	}
	if cfg.RecipientLimit <= 0 {
		cfg.RecipientLimit = 50
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.ActiveLimit <= 0 {
		cfg.ActiveLimit = 20000
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 300 * time.Second
	}
	if cfg.TransportRetry <= 0 {
		cfg.TransportRetry = 60 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	return &Qmgr{
		cfg: cfg, st: st, resolve: resolve, transports: transports, log: log, bouncer: b,
		now:      time.Now,
		wake:     make(chan struct{}, 1),
		slotFree: make(chan struct{}, 1),
		dests:    map[string]*dest{},
		dead:     map[string]deadMark{},

		deadTransports: map[string]deadTransport{},
		held:           map[int64]bool{},
		done:           make(chan outcome, 1024),
	}
}

// Wake tells the qmgr that new mail is due (a local enqueue). It never blocks;
// wake-ups coalesce.
func (q *Qmgr) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run claims and delivers until ctx is cancelled, then drains: claimed work
// that has not started is released, running deliveries get DrainTimeout to
// finish, and every outcome is recorded before Run returns.
func (q *Qmgr) Run(ctx context.Context) error {
	deliverCtx, cancelDeliveries := context.WithCancel(context.Background())
	defer cancelDeliveries()
	recorded := make(chan struct{})
	go func() {
		q.recorder()
		close(recorded)
	}()
	if n, ok := q.st.(store.Notifier); ok {
		// Other nodes' enqueues wake this one at once (PostgreSQL).
		wakes := n.Notifications(ctx)
		go func() {
			for range wakes {
				q.Wake()
			}
		}()
	}
	renewCtx, stopRenew := context.WithCancel(context.Background())
	renewed := make(chan struct{})
	go func() {
		q.renewer(renewCtx)
		close(renewed)
	}()

	for ctx.Err() == nil {
		free := q.freeSlots()
		if free == 0 {
			// A finished delivery frees a slot at once; recorded outcomes
			// free room under ActiveLimit without a signal.
			select {
			case <-q.slotFree:
			case <-time.After(q.cfg.PollInterval):
			case <-ctx.Done():
			}
			continue
		}
		limit := min(free, q.cfg.BatchSize)
		now := q.now()
		rcpts, err := q.st.RecipientsClaim(ctx, store.ClaimParams{Owner: q.cfg.Owner, Limit: limit, Lease: q.cfg.Lease, Now: now})
		if err != nil {
			if ctx.Err() == nil {
				q.log.Printf("qmgr", "warning: claim recipients: %v", err)
				q.sleep(ctx, q.cfg.PollInterval)
			}
			continue
		}
		if len(rcpts) > 0 {
			q.dispatch(deliverCtx, rcpts, now)
		}
		switch {
		case len(rcpts) == limit:
			continue // more may be due right now
		case len(rcpts) > 0:
			// Mail is flowing: the next enqueue wakes us, so skip asking
			// the database when the next deferred recipient is due.
			q.sleep(ctx, q.pollInterval())
		default:
			q.sleep(ctx, q.untilNextDue(ctx))
		}
	}

	// Drain.
	q.releasePending()
	waited := make(chan struct{})
	go func() { q.running.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(q.cfg.DrainTimeout):
		cancelDeliveries()
		<-waited
	}
	close(q.done)
	<-recorded
	stopRenew()
	<-renewed
	return nil
}

// freeSlots is how many recipients the next claim may take: bounded by the
// free delivery slots and by the in-memory recipient limit.
func (q *Qmgr) freeSlots() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(min(q.cfg.ProcessLimit-q.slots, q.cfg.ActiveLimit-len(q.held)), 0)
}

// untilNextDue is how long to sleep when no work was due: until the next
// deferred recipient is due, bounded by the poll interval (other nodes may
// enqueue without waking us).
func (q *Qmgr) untilNextDue(ctx context.Context) time.Duration {
	d := q.pollInterval()
	t, ok, err := q.st.NextDue(ctx)
	if err == nil && ok {
		if until := t.Sub(q.now()); until < d {
			d = max(until, 10*time.Millisecond)
		}
	}
	return d
}

// pollInterval is qmgr_poll_interval, spread by ±20% on databases without
// wake-ups (MariaDB, SQLite), so that nodes started together do not keep
// polling in step.
func (q *Qmgr) pollInterval() time.Duration {
	d := q.cfg.PollInterval
	if _, ok := q.st.(store.Notifier); ok || d <= 0 {
		return d
	}
	return d*4/5 + rand.N(d*2/5+1)
}

func (q *Qmgr) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-q.wake:
	case <-ctx.Done():
	}
}

// dispatch groups claimed recipients into deliveries and starts them, each
// within its destination's concurrency window. Mail for a dead destination
// or a deferred transport is deferred at once, without a delivery attempt.
func (q *Qmgr) dispatch(ctx context.Context, rcpts []store.ClaimedRecipient, claimedAt time.Time) {
	q.refreshDead(ctx, claimedAt)
	var jobs []*job
	byKey := map[string]*job{}
	logged := map[string]bool{}
	takenOver := map[string]int{}
	lims := map[string]Limits{}
	for _, r := range rcpts {
		if !logged[r.QueueID] {
			logged[r.QueueID] = true
			q.log.Printf("qmgr", "%s: from=<%s>, size=%d, nrcpt=%d (queue active)", r.QueueID, r.Sender, r.Size, r.NRcpt)
		}
		res := q.route(r)
		lim, ok := lims[res.Transport]
		if !ok {
			lim = q.cfg.limits(res.Transport)
			lims[res.Transport] = lim
		}
		queue := res.Nexthop
		if lim.Recipients == 1 {
			// Postfix: with one recipient per delivery, the destination is
			// the recipient (local_destination_concurrency_limit is per user).
			queue = strings.ToLower(r.Address)
		}
		key := r.QueueID + "\x00" + res.Transport + "\x00" + res.Nexthop + "\x00" + queue
		j := byKey[key]
		if j == nil || (lim.Recipients > 0 && len(j.rcpts) >= lim.Recipients) {
			j = &job{
				transport: res.Transport,
				queue:     queue,
				destKey:   queueKey(res.Transport, queue),
				claimedAt: claimedAt,
				delivery: &transport.Delivery{
					QueueID: r.QueueID, Sender: r.Sender, Nexthop: res.Nexthop, Size: r.Size, Arrival: r.Arrival,
					Open: q.opener(r.QueueID), VerifyOnly: r.VerifyProbe,
				},
			}
			byKey[key] = j
			jobs = append(jobs, j)
		}
		j.rcpts = append(j.rcpts, r)
		j.delivery.Recipients = append(j.delivery.Recipients, transport.Recipient{
			ID: r.ID, Address: r.Address, Orig: r.Orig, Notify: r.Notify, ORCPT: r.ORCPT, TakenOver: r.TakenOver,
		})
		if r.TakenOver {
			takenOver[r.QueueID]++
		}
	}
	for id, n := range takenOver {
		q.log.Printf("qmgr", "warning: %s: %d recipient(s) taken over from a node whose lease ran out during their delivery: they may have been delivered already", id, n)
	}
	type deferral struct {
		j                 *job
		service, dsn, why string
	}
	var start []*job
	var defers []deferral
	q.mu.Lock()
	for _, r := range rcpts {
		q.held[r.ID] = true
	}
	q.forgetIdle(claimedAt)
	for _, j := range jobs {
		if q.isDeferTransport(j.transport) && !flushed(j) {
			defers = append(defers, deferral{j, q.serviceName(rewrite.RetryTransport), "4.3.2", "deferred transport"})
			continue
		}
		if dt, ok := q.deadTransports[j.transport]; ok && claimedAt.Before(dt.until) {
			defers = append(defers, deferral{j, "qmgr", "4.3.0", dt.reason})
			continue
		}
		mark, marked := q.dead[j.destKey]
		if marked && claimedAt.Before(mark.Until) {
			defers = append(defers, deferral{j, q.serviceName(rewrite.RetryTransport), mark.DSN, mark.Reason})
			continue
		}
		d := q.dests[j.destKey]
		if d == nil {
			d = &dest{w: newWindow(lims[j.transport])}
			q.dests[j.destKey] = d
			if marked {
				// The mark has run out: one delivery probes the
				// destination before more follow.
				d.w.size = 1
			}
		} else if d.w.dead() {
			d.w = newWindow(d.w.lim)
			if marked {
				d.w.size = 1
			}
		}
		q.slots++
		if d.active < d.w.size {
			d.active++
			start = append(start, j)
		} else {
			d.pending = append(d.pending, j)
		}
	}
	q.mu.Unlock()
	for _, df := range defers {
		q.deferNow(df.j, df.service, df.dsn, df.why)
	}
	for _, j := range start {
		q.start(ctx, j)
	}
}

// forgetIdle drops destinations kept for their failures once they have
// been idle for minimal_backoff_time (at least a minute): their marks, if
// they died, say the rest. Called with q.mu held.
func (q *Qmgr) forgetIdle(now time.Time) {
	after := max(q.cfg.MinBackoff, time.Minute)
	for k, d := range q.dests {
		if d.active == 0 && len(d.pending) == 0 && now.Sub(d.idle) > after {
			delete(q.dests, k)
		}
	}
}

// queueKey names a destination's queue: transport and next hop (or
// recipient).
func queueKey(transportName, queue string) string { return transportName + ":" + queue }

// route is where r goes: its resolved transport and nexthop, unless its
// message has a content filter (content_filter or a FILTER action). The
// filter overrides the transport, and the nexthop when it names one; with
// an empty nexthop ("scan:") the recipient's own nexthop stays, as in
// Postfix 2.7 and later (qmgr_message_resolve).
func (q *Qmgr) route(r store.ClaimedRecipient) rewrite.Result {
	res := q.resolve(r.Address)
	if r.ExpireForced {
		return forcedExpiry(res)
	}
	if r.Filter == "" {
		return res
	}
	tr, nexthop, _ := strings.Cut(r.Filter, ":")
	res.Transport = tr
	if nexthop != "" {
		res.Nexthop = nexthop
	}
	return res
}

func (q *Qmgr) opener(queueID string) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) { return q.st.ContentOpen(ctx, queueID) }
}

func (q *Qmgr) start(ctx context.Context, j *job) {
	q.running.Add(1)
	go func() {
		defer q.running.Done()
		results := q.deliver(ctx, j)
		for _, next := range q.finish(j, results) {
			q.start(ctx, next)
		}
	}()
}

// finish frees j's slot, feeds its results back into its destination's
// window, and returns the pending jobs that now fit in the window. A
// failure to reach the site shrinks the window and may kill the
// destination: its pending jobs are then deferred, and the mark is written
// for every node. A delivery that reached the site lifts the mark.
func (q *Qmgr) finish(j *job, results []transport.Result) []*job {
	var next, suspended []*job
	var died *store.DeadDestination
	revived := false
	q.mu.Lock()
	q.slots--
	select {
	case q.slotFree <- struct{}{}:
	default:
	}
	d := q.dests[j.destKey]
	busy := d.active // this delivery included, as Postfix counts it
	d.active--
	if fail, ok := siteFailure(j.transport, results); ok {
		if !d.w.dead() && d.w.negative() {
			m := store.DeadDestination{Transport: j.transport, Nexthop: j.queue, Until: q.now().Add(q.cfg.MinBackoff),
				DSN: fail.DSN, Reason: suspendedPrefix + fail.Text}
			if !strings.HasPrefix(m.DSN, "4.") {
				m.DSN = "4.4.1"
			}
			q.dead[j.destKey] = deadMark{DeadDestination: m, local: true}
			died = &m
			suspended, d.pending = d.pending, nil
			q.slots -= len(suspended)
		}
	} else {
		d.w.positive(busy)
		if _, ok := q.dead[j.destKey]; ok {
			delete(q.dead, j.destKey)
			revived = true
		}
	}
	for d.active < d.w.size && len(d.pending) > 0 {
		next = append(next, d.pending[0])
		d.pending = d.pending[1:]
		d.active++
	}
	if d.active == 0 && len(d.pending) == 0 {
		// An idle destination is forgotten, as Postfix deletes an empty
		// queue, unless it has failed lately: here each message is
		// dispatched as it arrives, so a trickle of mail to a dead host
		// would otherwise never add up to a failed cohort.
		if d.w.cohorts == 0 && !d.w.dead() {
			delete(q.dests, j.destKey)
		} else {
			d.idle = q.now()
		}
	}
	q.mu.Unlock()
	if died != nil {
		q.markDead(*died)
		for _, s := range suspended {
			q.deferNow(s, q.serviceName(rewrite.RetryTransport), died.DSN, died.Reason)
		}
	}
	if revived {
		q.forgetDead(j.transport, j.queue)
	}
	return next
}

// releasePending gives back claimed work that never started (SIGTERM).
func (q *Qmgr) releasePending() {
	q.mu.Lock()
	var ids []int64
	for _, d := range q.dests {
		for _, j := range d.pending {
			for _, r := range j.rcpts {
				ids = append(ids, r.ID)
				delete(q.held, r.ID)
			}
			q.slots--
		}
		d.pending = nil
	}
	q.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.st.RecipientsRelease(ctx, q.cfg.Owner, ids); err != nil {
		// Not fatal: the leases expire and the work is claimed again.
		q.log.Printf("qmgr", "warning: release %d recipients: %v", len(ids), err)
	}
}

// renewer extends the leases of every recipient this node holds, a third of
// the lease time before they run out, so that work waiting for its
// destination or in a long delivery is not taken over by another node.
func (q *Qmgr) renewer(ctx context.Context) {
	t := time.NewTicker(q.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q.mu.Lock()
		ids := make([]int64, 0, len(q.held))
		for id := range q.held {
			ids = append(ids, id)
		}
		q.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		held, err := q.st.RecipientsRenew(ctx, q.cfg.Owner, ids, q.now().Add(q.cfg.Lease))
		if err != nil {
			if ctx.Err() == nil {
				q.log.Printf("qmgr", "warning: renew %d leases: %v", len(ids), err)
			}
			continue
		}
		// Rows can be missing because their outcome was recorded meanwhile;
		// only those still waiting or delivering were taken over.
		still := make(map[int64]bool, len(held))
		for _, id := range held {
			still[id] = true
		}
		lost := 0
		q.mu.Lock()
		for _, id := range ids {
			if q.held[id] && !still[id] {
				lost++
			}
		}
		q.mu.Unlock()
		if lost > 0 {
			q.log.Printf("qmgr", "warning: %d recipients were taken over by another node after their lease ran out", lost)
		}
	}
}

// deliver runs j and hands every recipient's outcome to the recorder; it
// returns the results for the destination's feedback. A transport that is
// not there or that panics is throttled for transport_retry_time, and its
// recipients are deferred by the qmgr, as Postfix's qmgr does when it
// cannot reach a delivery agent or the agent dies.
func (q *Qmgr) deliver(ctx context.Context, j *job) []transport.Result {
	t := q.transports[j.transport]
	started := q.now()
	var results []transport.Result
	failure := ""
	if t == nil {
		q.log.Printf("qmgr", "warning: connect to transport private/%s: No such file or directory", j.transport)
		failure = transportUnavailable
	} else if _, ok := t.(transport.Verifier); j.delivery.VerifyOnly && !ok {
		// A probe through a transport that cannot tell: deliverable, and
		// nothing delivered.
		results = transport.FailAll(j.delivery, transport.Sent, "2.0.0", "delivers via "+j.transport, "none", 0)
	} else if results = q.safeDeliver(ctx, t, j); results == nil {
		q.log.Printf("qmgr", "warning: transport %s failure -- see a previous warning/fatal/panic logfile record for the problem description", j.transport)
		failure = transportCrashed
	}
	if failure != "" {
		q.throttleTransport(j.transport, failure)
		results = make([]transport.Result, len(j.rcpts))
		for i, r := range j.rcpts {
			results[i] = transport.Result{RecipientID: r.ID, Status: transport.Deferred, DSN: "4.3.0", Relay: "none", Text: failure}
		}
	}
	for i, r := range j.rcpts {
		var res transport.Result
		if i < len(results) {
			res = results[i]
		} else {
			res = transport.Result{RecipientID: r.ID, Status: transport.Deferred, DSN: "4.3.0", Relay: "none", Text: "delivery agent returned no result"}
		}
		if !res.Logged {
			service := q.serviceName(j.transport)
			if failure != "" {
				service = "qmgr"
			}
			q.logLine(service, j, r, res, started)
		}
		q.done <- outcome{rcpt: r, result: res}
	}
	return results
}

// logLine writes the delivery agent's line for one recipient, as service.
func (q *Qmgr) logLine(service string, j *job, r store.ClaimedRecipient, res transport.Result, started time.Time) {
	end := q.now()
	a := j.claimedAt.Sub(r.Arrival)
	b := started.Sub(j.claimedAt)
	total, delays := maillog.Delays(end.Sub(r.Arrival), max(a, 0), max(b, 0), res.ConnSetup, res.Transmit)
	orig := ""
	if r.Orig != "" && !equalFold(r.Orig, r.Address) {
		orig = fmt.Sprintf(", orig_to=<%s>", r.Orig)
	}
	relay := res.Relay
	if relay == "" {
		relay = "none"
	}
	connUse := ""
	if res.ConnUse > 1 {
		connUse = fmt.Sprintf(", conn_use=%d", res.ConnUse)
	}
	status := res.Status.LogWord(j.delivery.VerifyOnly)
	q.log.Printf(service, "%s: to=<%s>%s, relay=%s%s, delay=%s, delays=%s, dsn=%s, status=%s (%s)",
		r.QueueID, r.Address, orig, relay, connUse, total, delays, res.DSN, status, res.Text)
}

// serviceName is the name a transport's lines are logged under.
func (q *Qmgr) serviceName(transport string) string {
	if transport == "" {
		return "qmgr"
	}
	if n, ok := q.cfg.LogNames[transport]; ok {
		return n
	}
	return transport
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// flushed reports whether a flush made this delivery due (postqueue -f,
// sendmail -q, ETRN): Postfix delivers through defer_transports then.
func flushed(j *job) bool {
	for _, r := range j.rcpts {
		if r.Flushed {
			return true
		}
	}
	return false
}
