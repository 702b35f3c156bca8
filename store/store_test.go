package store

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	min, max := 300*time.Second, 4000*time.Second
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, min}, {1, min}, {2, 600 * time.Second}, {3, 1200 * time.Second}, {4, 2400 * time.Second},
		{5, max}, {6, max}, {1000, max},
	} {
		if got := Backoff(tc.attempts, min, max); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
	if got := Backoff(1, time.Hour, time.Minute); got != time.Minute {
		t.Errorf("Backoff with min > max = %v, want max", got)
	}
}

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{
		"User@Example.ORG": "example.org",
		"a@b@C.net":        "c.net",
		"postmaster":       "",
		"":                 "",
	} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}
