package storetest

import (
	"context"
	"testing"
	"time"

	"sqlmta/store"
)

// testDeadDestinations: a mark is written, replaced by a later one for the same destination, listed with
// expired marks included (the qmgr probes those), kept apart per transport, and deleted.
func testDeadDestinations(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	if got, err := s.DeadDestinationList(ctx); err != nil || len(got) != 0 {
		t.Fatalf("fresh list = %+v, %v; want none", got, err)
	}
	now := store.DBTime(time.Now())
	smtp := store.DeadDestination{Transport: "smtp", Nexthop: "example.com", Until: now.Add(5 * time.Minute),
		DSN: "4.4.1", Reason: "delivery temporarily suspended: connect to mx.example.com[192.0.2.1]:25: Connection refused"}
	relay := store.DeadDestination{Transport: "relay", Nexthop: "example.com", Until: now.Add(-time.Minute),
		DSN: "4.4.2", Reason: "delivery temporarily suspended: lost connection with mx.example.com[192.0.2.1] while receiving the initial server greeting"}
	for _, d := range []store.DeadDestination{smtp, relay} {
		if err := s.DeadDestinationSet(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// A second failure extends the mark and takes the new reason.
	smtp.Until = now.Add(10 * time.Minute)
	smtp.DSN, smtp.Reason = "4.7.0", "delivery temporarily suspended: host mx.example.com[192.0.2.1] refused to talk to me: 421 4.7.0 busy"
	if err := s.DeadDestinationSet(ctx, smtp); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeadDestinationList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DeadDestination{relay, smtp} // ordered by transport, then nexthop
	if len(got) != len(want) {
		t.Fatalf("list = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Transport != w.Transport || g.Nexthop != w.Nexthop || !g.Until.Equal(w.Until) || g.DSN != w.DSN || g.Reason != w.Reason {
			t.Errorf("mark %d = %+v, want %+v", i, g, w)
		}
	}
	if err := s.DeadDestinationDelete(ctx, "smtp", "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadDestinationDelete(ctx, "smtp", "example.com"); err != nil {
		t.Errorf("deleting an absent mark: %v", err)
	}
	got, err = s.DeadDestinationList(ctx)
	if err != nil || len(got) != 1 || got[0].Transport != "relay" {
		t.Errorf("after delete: %+v, %v; want only the relay mark", got, err)
	}
}
