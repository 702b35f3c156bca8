package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sqlmta/config"
	"sqlmta/mtad/envelope"
	"sqlmta/store"
)

// verifier is Postfix's verify(8) over the shared verify_cache table: it
// answers from the cache, sends a probe (a queued message that the qmgr
// routes and tries like mail but never delivers) when an entry is missing,
// expired or due for a refresh, and waits a few polls for a new probe's
// outcome. The probe claim in the database makes one node send it when
// several ask at once.
type verifier struct {
	st     store.Store
	submit func(ctx context.Context, env *envelope.Envelope, content string) error
	sender string // address_verify_sender

	pollCount  int           // address_verify_poll_count
	pollDelay  time.Duration // address_verify_poll_delay
	posExpire  time.Duration // address_verify_positive_expire_time
	posRefresh time.Duration // address_verify_positive_refresh_time
	negExpire  time.Duration // address_verify_negative_expire_time
	negRefresh time.Duration // address_verify_negative_refresh_time
	negCache   bool          // address_verify_negative_cache
	newQueueID func() string
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration)
	hostname   string
}

// inProgress is the reason smtpd shows while a probe is on its way.
const inProgress = "Address verification in progress"

func newVerifier(cfg *config.Config, st store.Store, submit func(context.Context, *envelope.Envelope, string) error,
	newQueueID func() string) (*verifier, error) {
	var errs []error
	dur := func(name string) time.Duration {
		d, err := cfg.Duration(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	v := &verifier{
		st: st, submit: submit, sender: cfg.Get("address_verify_sender"), hostname: cfg.Get("myhostname"),
		pollDelay: dur("address_verify_poll_delay"),
		posExpire: dur("address_verify_positive_expire_time"), posRefresh: dur("address_verify_positive_refresh_time"),
		negExpire: dur("address_verify_negative_expire_time"), negRefresh: dur("address_verify_negative_refresh_time"),
		newQueueID: newQueueID, now: time.Now,
		sleep: func(ctx context.Context, d time.Duration) {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		},
	}
	// The default is "${stress?{1}:{3}}": 3 on a node without stress.
	if n, err := cfg.Int("address_verify_poll_count"); err == nil && n > 0 {
		v.pollCount = n
	} else {
		v.pollCount = 3
	}
	neg, err := cfg.Bool("address_verify_negative_cache")
	errs = append(errs, err)
	v.negCache = neg
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	return v, nil
}

// stale reports whether e is too old to answer with (expired) or old
// enough to be probed again while it still answers (refresh).
func (v *verifier) stale(e store.VerifyEntry, now time.Time) (expired, refresh bool) {
	switch e.Status {
	case store.VerifyOK:
		return now.Sub(e.Updated) > v.posExpire, now.Sub(e.Probed) > v.posRefresh
	case store.VerifyTodo:
		// A probe is on its way; if it was lost, probe again after the
		// negative refresh time.
		return false, now.Sub(e.Probed) > v.negRefresh
	}
	if !v.negCache {
		return true, true
	}
	return now.Sub(e.Updated) > v.negExpire, now.Sub(e.Probed) > v.negRefresh
}

// query is smtpd.VerifyFunc.
func (v *verifier) query(ctx context.Context, addr string) (string, string, error) {
	addr = strings.ToLower(addr)
	now := v.now()
	e, found, err := v.st.VerifyGet(ctx, addr)
	if err != nil {
		return "", "", err
	}
	expired, refresh := true, true
	if found {
		expired, refresh = v.stale(e, now)
	}
	if refresh {
		since := now.Add(-v.negRefresh)
		if found && e.Status == store.VerifyOK {
			since = now.Add(-v.posRefresh)
		}
		if !found || !v.negCache && e.Status != store.VerifyOK {
			since = now // an unknown address, or no negative cache: probe now
		}
		won, err := v.st.VerifyProbeClaim(ctx, addr, now, since)
		if err != nil {
			return "", "", err
		}
		if won {
			if err := v.probe(ctx, addr); err != nil {
				return "", "", err
			}
		}
	}
	if found && !expired && e.Status != store.VerifyTodo {
		// A known answer, even while a refresh probe is on its way.
		return e.Status, e.Reason, nil
	}
	// Wait for the probe's outcome, an update after the latest probe. The
	// read above was the first of address_verify_poll_count polls, as in
	// Postfix's verify client: a delay comes before each further one.
	for i := 1; i < v.pollCount; i++ {
		v.sleep(ctx, v.pollDelay)
		e, found, err = v.st.VerifyGet(ctx, addr)
		if err != nil {
			return "", "", err
		}
		if found && e.Status != store.VerifyTodo && !e.Updated.Before(e.Probed) {
			return e.Status, e.Reason, nil
		}
	}
	return store.VerifyTodo, inProgress, nil
}

// probe queues a probe message for addr through cleanup, so that it is
// rewritten and routed as mail to addr would be.
func (v *verifier) probe(ctx context.Context, addr string) error {
	env := &envelope.Envelope{
		QueueID: v.newQueueID(), Sender: v.sender, Arrival: v.now(),
		Recipients:  []envelope.Recipient{{Address: addr, Orig: addr}},
		Internal:    true,
		VerifyProbe: true,
	}
	content := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: probe\r\n\r\n", v.sender, addr)
	return v.submit(ctx, env, content)
}
