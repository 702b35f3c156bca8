package qmgr

import (
	"errors"

	"sqlmta/config"
)

// ConfigLimits reads every named transport's scheduling parameters from
// main.cf: <transport>_destination_concurrency_limit and friends, each
// falling back to its default_ parameter (initial_destination_concurrency
// for <transport>_initial_destination_concurrency) when it is neither set
// nor a parameter with a default of its own (local's 2 and 1). Transports
// not named get the defaults.
func ConfigLimits(cfg *config.Config, transports []string) (func(string) Limits, error) {
	var errs []error
	param := func(transport, suffix, fallback string) string {
		if _, ok := cfg.Raw(transport + "_" + suffix); ok {
			return transport + "_" + suffix
		}
		return fallback
	}
	read := func(t string) Limits {
		num := func(suffix, fallback string) int {
			n, err := cfg.Int(param(t, suffix, fallback))
			errs = append(errs, err)
			return n
		}
		feedback := func(suffix, fallback string) Feedback {
			f, err := ParseFeedback(cfg.Get(param(t, suffix, fallback)))
			errs = append(errs, err)
			return f
		}
		return Limits{
			Concurrency:       num("destination_concurrency_limit", "default_destination_concurrency_limit"),
			Initial:           num("initial_destination_concurrency", "initial_destination_concurrency"),
			Recipients:        num("destination_recipient_limit", "default_destination_recipient_limit"),
			FailedCohortLimit: num("destination_concurrency_failed_cohort_limit", "default_destination_concurrency_failed_cohort_limit"),
			Positive:          feedback("destination_concurrency_positive_feedback", "default_destination_concurrency_positive_feedback"),
			Negative:          feedback("destination_concurrency_negative_feedback", "default_destination_concurrency_negative_feedback"),
		}
	}
	byName := make(map[string]Limits, len(transports))
	for _, t := range transports {
		byName[t] = read(t)
	}
	def := read("default")
	return func(t string) Limits {
		if l, ok := byName[t]; ok {
			return l
		}
		return def
	}, errors.Join(errs...)
}
