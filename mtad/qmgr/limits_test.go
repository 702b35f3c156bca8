package qmgr

import (
	"strings"
	"testing"

	"sqlmta/config"
)

// TestConfigLimits: per-transport parameters win over the default_ ones,
// local keeps its own defaults (2 at once, 1 recipient), and a transport
// main.cf does not name falls back to the defaults.
func TestConfigLimits(t *testing.T) {
	cfg, err := config.Parse("main.cf", strings.NewReader(`
default_destination_concurrency_limit = 10
relay_destination_recipient_limit = 7
relay_destination_concurrency_negative_feedback = 1/concurrency
slow_initial_destination_concurrency = 2
slow_destination_concurrency_failed_cohort_limit = 3
`))
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ConfigLimits(cfg, []string{"smtp", "relay", "local", "slow"})
	if err != nil {
		t.Fatal(err)
	}
	fb1 := Feedback{Base: 1}
	for name, want := range map[string]Limits{
		"smtp":    {Concurrency: 10, Initial: 5, Recipients: 50, FailedCohortLimit: 1, Positive: fb1, Negative: fb1},
		"relay":   {Concurrency: 10, Initial: 5, Recipients: 7, FailedCohortLimit: 1, Positive: fb1, Negative: Feedback{Base: 1, Per: "concurrency"}},
		"local":   {Concurrency: 2, Initial: 5, Recipients: 1, FailedCohortLimit: 1, Positive: fb1, Negative: fb1},
		"slow":    {Concurrency: 10, Initial: 2, Recipients: 50, FailedCohortLimit: 3, Positive: fb1, Negative: fb1},
		"unnamed": {Concurrency: 10, Initial: 5, Recipients: 50, FailedCohortLimit: 1, Positive: fb1, Negative: fb1},
	} {
		if got := lim(name); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	bad, _ := config.Parse("main.cf", strings.NewReader("smtp_destination_concurrency_positive_feedback = lots\n"))
	if _, err := ConfigLimits(bad, []string{"smtp"}); err == nil {
		t.Error("a bad feedback value was accepted")
	}
}
