package storetest

import (
	"context"
	"testing"
	"time"

	"sqlmta/store"
)

// testDelayWarnedOnce: the delay-warning mark flips once, shows in the claim, and can be cleared again
// (a warning that could not be sent).
func testDelayWarnedOnce(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	now := time.Now()
	m := enqueue(t, s, []byte("x\r\n"), 2)
	other := enqueue(t, s, []byte("y\r\n"), 1)
	c := claim(t, s, "node", 10, time.Minute, now.Add(time.Second))
	if len(c) != 3 {
		t.Fatalf("claim: %+v", c)
	}
	for _, r := range c {
		if r.DelayWarned || r.ExpireForced {
			t.Errorf("new recipient claimed with DelayWarned %v, ExpireForced %v", r.DelayWarned, r.ExpireForced)
		}
	}
	set := func(id string, warned bool) bool {
		t.Helper()
		changed, err := s.MessageDelayWarnedSet(ctx, id, warned)
		if err != nil {
			t.Fatalf("MessageDelayWarnedSet(%s, %v): %v", id, warned, err)
		}
		return changed
	}
	if !set(m.QueueID, true) {
		t.Errorf("first mark did not change it")
	}
	if set(m.QueueID, true) {
		t.Errorf("second mark changed it again: two nodes would both warn")
	}
	var ds []store.Deferral
	for _, r := range c {
		ds = append(ds, store.Deferral{ID: r.ID, Reason: "r", NextAttempt: now})
	}
	if err := s.RecipientsDefer(ctx, "node", ds); err != nil {
		t.Fatal(err)
	}
	c = claim(t, s, "node", 10, time.Minute, now.Add(2*time.Second))
	if len(c) != 3 {
		t.Fatalf("second claim: %+v", c)
	}
	for _, r := range c {
		if want := r.QueueID == m.QueueID; r.DelayWarned != want {
			t.Errorf("recipient of %s claimed with DelayWarned %v, want %v", r.QueueID, r.DelayWarned, want)
		}
	}
	if !set(m.QueueID, false) || set(m.QueueID, false) {
		t.Errorf("clearing the mark did not change it exactly once")
	}
	if !set(other.QueueID, true) {
		t.Errorf("mark of the other message did not change it")
	}
	if set("NOSUCHID", true) {
		t.Errorf("marking a missing message changed something")
	}
}

// testClaimForcedExpiry: postsuper -e's mark reaches the qmgr with the claimed recipients.
func testClaimForcedExpiry(t *testing.T, h Harness) {
	s := h.fresh(t)
	as, ok := s.(store.AdminStore)
	if !ok {
		t.Skip("no store.Admin")
	}
	ctx := context.Background()
	expired := enqueue(t, s, []byte("x\r\n"), 2)
	enqueue(t, s, []byte("y\r\n"), 1) // not expired
	if got, _, err := as.Admin().MessagesExpire(ctx, []string{expired.QueueID}, false); err != nil || len(got) != 1 {
		t.Fatalf("MessagesExpire = %v, %v", got, err)
	}
	c := claim(t, s, "node", 10, time.Minute, time.Now().Add(time.Second))
	if len(c) != 3 {
		t.Fatalf("claim: %+v", c)
	}
	for _, r := range c {
		if want := r.QueueID == expired.QueueID; r.ExpireForced != want {
			t.Errorf("recipient of %s claimed with ExpireForced %v, want %v", r.QueueID, r.ExpireForced, want)
		}
	}
}
