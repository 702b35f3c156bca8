package node

import (
	"testing"
	"time"

	"sqlmta/store"
)

// TestVerifierStale: Postfix's cache times (positive 31d/7d, negative
// 3d/3h); a lost probe is sent again after the negative refresh time; with
// address_verify_negative_cache = no a negative answer is never reused.
func TestVerifierStale(t *testing.T) {
	v := &verifier{posExpire: 31 * 24 * time.Hour, posRefresh: 7 * 24 * time.Hour,
		negExpire: 3 * 24 * time.Hour, negRefresh: 3 * time.Hour, negCache: true}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		e                store.VerifyEntry
		expired, refresh bool
	}{
		{store.VerifyEntry{Status: store.VerifyOK, Updated: ago(time.Hour), Probed: ago(time.Hour)}, false, false},
		{store.VerifyEntry{Status: store.VerifyOK, Updated: ago(8 * 24 * time.Hour), Probed: ago(8 * 24 * time.Hour)}, false, true},
		{store.VerifyEntry{Status: store.VerifyOK, Updated: ago(32 * 24 * time.Hour), Probed: ago(time.Hour)}, true, false},
		{store.VerifyEntry{Status: store.VerifyBounce, Updated: ago(time.Hour), Probed: ago(time.Hour)}, false, false},
		{store.VerifyEntry{Status: store.VerifyBounce, Updated: ago(4 * time.Hour), Probed: ago(4 * time.Hour)}, false, true},
		{store.VerifyEntry{Status: store.VerifyDefer, Updated: ago(4 * 24 * time.Hour), Probed: ago(time.Hour)}, true, false},
		{store.VerifyEntry{Status: store.VerifyTodo, Updated: ago(time.Minute), Probed: ago(time.Minute)}, false, false},
		{store.VerifyEntry{Status: store.VerifyTodo, Updated: ago(4 * time.Hour), Probed: ago(4 * time.Hour)}, false, true},
	} {
		if expired, refresh := v.stale(tc.e, now); expired != tc.expired || refresh != tc.refresh {
			t.Errorf("%+v: expired %v refresh %v, want %v %v", tc.e, expired, refresh, tc.expired, tc.refresh)
		}
	}
	v.negCache = false
	if expired, refresh := v.stale(store.VerifyEntry{Status: store.VerifyBounce, Updated: now, Probed: now}, now); !expired || !refresh {
		t.Error("without a negative cache a bounce is reused")
	}
}
