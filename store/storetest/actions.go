package storetest

import (
	"context"
	"testing"
	"time"

	"sqlmta/store"
)

// testEnqueueHeld: a message enqueued with Hold (a HOLD action) is never claimed, however late, and is
// not due; MessageRelease makes it claimable at once.
func testEnqueueHeld(t *testing.T, h Harness) {
	s := h.fresh(t)
	hd, ok := s.(store.Holder)
	if !ok {
		t.Fatalf("%s store does not implement store.Holder", s.Dialect())
	}
	ctx := context.Background()
	m := msg([]byte("held"), 2)
	m.Hold = true
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := s.MessageGet(ctx, m.QueueID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Recipients {
		if r.State != store.StateHold {
			t.Errorf("recipient %s in state %q, want hold", r.Address, r.State)
		}
	}
	if c := claim(t, s, "A", 100, time.Hour, time.Now().Add(365*24*time.Hour)); len(c) != 0 {
		t.Fatalf("held message claimed: %+v", c)
	}
	if due, ok, err := s.NextDue(ctx); err != nil || ok {
		t.Errorf("NextDue with only held mail = %v, %v, %v; want none", due, ok, err)
	}
	n, err := hd.MessageRelease(ctx, m.QueueID)
	if err != nil || n != 2 {
		t.Fatalf("MessageRelease = %d, %v; want 2", n, err)
	}
	c := claim(t, s, "A", 100, time.Hour, time.Now())
	if len(c) != 2 || c[0].QueueID != m.QueueID {
		t.Fatalf("after release claimed %+v, want the message's 2 recipients", c)
	}
	if c[0].Attempts != 0 {
		t.Errorf("released recipient has %d attempts", c[0].Attempts)
	}
}

// testFilterRoundTrip: the content filter comes back from MessageGet and with every claimed recipient;
// a message without one says "".
func testFilterRoundTrip(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	filtered := msg([]byte("f"), 2)
	filtered.Filter = "smtp:[127.0.0.1]:10025"
	if err := s.Enqueue(ctx, filtered); err != nil {
		t.Fatal(err)
	}
	plain := enqueue(t, s, []byte("p"), 1)
	got, err := s.MessageGet(ctx, filtered.QueueID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Filter != filtered.Filter {
		t.Errorf("MessageGet Filter = %q, want %q", got.Filter, filtered.Filter)
	}
	if got, err := s.MessageGet(ctx, plain.QueueID); err != nil {
		t.Fatal(err)
	} else if got.Filter != "" {
		t.Errorf("plain message Filter = %q, want empty", got.Filter)
	}
	c := claim(t, s, "A", 100, time.Hour, time.Now())
	if len(c) != 3 {
		t.Fatalf("claimed %d, want 3", len(c))
	}
	for _, r := range c {
		want := ""
		if r.QueueID == filtered.QueueID {
			want = filtered.Filter
		}
		if r.Filter != want {
			t.Errorf("claimed %s of %s: Filter %q, want %q", r.Address, r.QueueID, r.Filter, want)
		}
	}
}
