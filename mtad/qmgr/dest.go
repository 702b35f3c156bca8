package qmgr

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits are one transport's scheduling parameters: Postfix's
// <transport>_destination_concurrency_limit, _initial_destination_concurrency,
// _destination_recipient_limit, _destination_concurrency_failed_cohort_limit
// and the two feedback parameters.
type Limits struct {
	Concurrency       int // most deliveries at once per destination; 0 = no limit
	Initial           int // slow start: concurrency of a new destination
	Recipients        int // most recipients per delivery; 0 = no limit; 1 = a destination is one recipient
	FailedCohortLimit int // failed cohorts that make a destination dead; 0 = never
	Positive          Feedback
	Negative          Feedback
}

// Feedback is a concurrency feedback value: "1", "1/concurrency" or
// "1/sqrt_concurrency" (Postfix 3.7's default is 1).
type Feedback struct {
	Base float64
	Per  string // "", "concurrency" or "sqrt_concurrency"
}

// ParseFeedback reads a *_destination_concurrency_*_feedback value.
func ParseFeedback(s string) (Feedback, error) {
	num, per, _ := strings.Cut(strings.TrimSpace(s), "/")
	base, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || base < 0 || base > 1 {
		return Feedback{}, fmt.Errorf("bad concurrency feedback %q: want a number between 0 and 1, optionally /concurrency or /sqrt_concurrency", s)
	}
	per = strings.TrimSpace(per)
	switch per {
	case "", "concurrency", "sqrt_concurrency":
	default:
		return Feedback{}, fmt.Errorf("bad concurrency feedback %q: unknown denominator %q", s, per)
	}
	return Feedback{Base: base, Per: per}, nil
}

func (f Feedback) at(window int) float64 {
	switch f.Per {
	case "concurrency":
		return f.Base / float64(window)
	case "sqrt_concurrency":
		return f.Base / math.Sqrt(float64(window))
	}
	return f.Base
}

// hysteresis is how much accumulated feedback moves the window by one, as
// Postfix's compiled-in value: with feedback 1 every result moves it.
const hysteresis = 1.0

// window is one destination's concurrency under slow start, after
// Postfix's qmgr_queue_unthrottle and qmgr_queue_throttle: success grows it
// towards the limit, a failure to reach the site shrinks it towards 1, and
// failed cohorts (a failure counts 1/concurrency) reaching the limit make
// the destination dead (size 0).
type window struct {
	lim                       Limits
	size                      int
	success, failure, cohorts float64
}

func newWindow(lim Limits) window {
	size := max(lim.Initial, 1)
	if lim.Concurrency > 0 {
		size = min(size, lim.Concurrency)
	}
	return window{lim: lim, size: size}
}

func (w *window) dead() bool { return w.size == 0 }

// positive records a delivery that reached the site; busy counts the
// destination's deliveries still running, this one included. A dead
// destination comes back with busy as its concurrency (the best guess), or
// the initial one. The window grows only while it stays within the initial
// concurrency of what actually runs, or negative feedback would take long
// to bite.
func (w *window) positive(busy int) {
	w.cohorts = 0
	if w.size == 0 {
		*w = newWindow(w.lim)
		if busy > 0 {
			w.size = busy
		}
		return
	}
	if (w.lim.Concurrency == 0 || w.size < w.lim.Concurrency) && w.size < busy+max(w.lim.Initial, 1) {
		fb := w.lim.Positive.at(w.size)
		w.success += fb
		// Overshoot by rounding or by feedback above the hysteresis.
		for w.success+fb/2 >= hysteresis {
			w.size += hysteresis
			w.success -= hysteresis
			w.failure = 0
		}
		if w.lim.Concurrency > 0 && w.size > w.lim.Concurrency {
			w.size = w.lim.Concurrency
		}
	}
}

// negative records a failure to reach the site and reports whether the
// destination is dead now.
func (w *window) negative() bool {
	if w.size > 0 {
		w.cohorts += 1 / float64(w.size)
		if w.lim.FailedCohortLimit > 0 && w.cohorts >= float64(w.lim.FailedCohortLimit) {
			w.size = 0
		}
	}
	// Even at 1 the negative hysteresis cycle goes on, so that it can
	// cancel out positive feedback.
	if w.size > 0 {
		fb := w.lim.Negative.at(w.size)
		w.failure -= fb
		for w.failure-fb/2 < 0 {
			w.size -= hysteresis
			w.success = 0
			w.failure += hysteresis
		}
		w.size = max(w.size, 1)
	}
	return w.size == 0
}
