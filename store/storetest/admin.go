package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"sqlmta/store"
)

// RunAdmin runs the conformance tests of store.Admin as subtests.
func RunAdmin(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"ScanQueues", testScanQueues},
		{"ScanPages", testScanPages},
		{"Delete", testAdminDelete},
		{"HoldRelease", testAdminHoldRelease},
		{"Requeue", testAdminRequeue},
		{"Expire", testAdminExpire},
		{"Flush", testAdminFlush},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func adminOf(t testing.TB, s store.Store) store.Admin {
	t.Helper()
	as, ok := s.(store.AdminStore)
	if !ok {
		t.Fatalf("%s store does not implement store.AdminStore", s.Dialect())
	}
	return as.Admin()
}

// scanAll returns the scanned messages by queue ID, and the IDs in scan order.
func scanAll(t testing.TB, a store.Admin, p store.ScanParams) (map[string]*store.QueuedMessage, []string) {
	t.Helper()
	got := map[string]*store.QueuedMessage{}
	var order []string
	err := a.MessagesScan(context.Background(), p, func(m *store.QueuedMessage) error {
		got[m.QueueID] = m
		order = append(order, m.QueueID)
		return nil
	})
	if err != nil {
		t.Fatalf("MessagesScan: %v", err)
	}
	return got, order
}

// queueFixture builds one message per queue: active (live lease), deferred (2 recipients, tried, due in an
// hour), hold and incoming. It returns their IDs in that order.
func queueFixture(t testing.TB, s store.Store, a store.Admin) (active, deferred, hold, incoming string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	m1 := enqueue(t, s, []byte("one\r\n"), 1)
	if c := claim(t, s, "node-a", 1, time.Hour, now.Add(time.Second)); len(c) != 1 || c[0].QueueID != m1.QueueID {
		t.Fatalf("claim of the first message: %+v", c)
	}
	m2 := enqueue(t, s, []byte("two\r\n"), 2)
	c := claim(t, s, "node-b", 2, time.Minute, now.Add(2*time.Second))
	if len(c) != 2 || c[0].QueueID != m2.QueueID {
		t.Fatalf("claim of the second message: %+v", c)
	}
	if err := s.RecipientsDefer(ctx, "node-b", []store.Deferral{
		{ID: c[0].ID, Reason: "connect to mx[192.0.2.1]:25: Connection refused", NextAttempt: now.Add(time.Hour)},
		{ID: c[1].ID, Reason: "other reason", NextAttempt: now.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	m3 := enqueue(t, s, []byte("three\r\n"), 1)
	if got, err := a.MessagesHold(ctx, []string{m3.QueueID}); err != nil || !slices.Equal(got, []string{m3.QueueID}) {
		t.Fatalf("MessagesHold = %v, %v", got, err)
	}
	m4 := enqueue(t, s, []byte("four\r\n"), 1)
	return m1.QueueID, m2.QueueID, m3.QueueID, m4.QueueID
}

func testScanQueues(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	active, deferred, hold, incoming := queueFixture(t, s, a)
	got, order := scanAll(t, a, store.ScanParams{})
	if want := []string{active, deferred, hold, incoming}; !slices.Equal(order, want) {
		t.Fatalf("scan order = %v, want %v", order, want)
	}
	for id, q := range map[string]string{active: store.QueueActive, deferred: store.QueueDeferred, hold: store.QueueHold, incoming: store.QueueIncoming} {
		if got[id].Queue != q {
			t.Errorf("%s: queue %q, want %q", id, got[id].Queue, q)
		}
	}
	d := got[deferred]
	if len(d.Recipients) != 2 || d.Recipients[0].LastReason != "connect to mx[192.0.2.1]:25: Connection refused" ||
		d.Recipients[1].LastReason != "other reason" || d.Recipients[0].Attempts != 1 || d.NRcpt != 2 || d.Size != 5 ||
		d.Sender != "alice@example.com" || d.ForcedExpire {
		t.Errorf("deferred message scanned as %+v", d)
	}
	// Filtering by queue.
	_, order = scanAll(t, a, store.ScanParams{Queues: []string{store.QueueHold, store.QueueDeferred}})
	if want := []string{deferred, hold}; !slices.Equal(order, want) {
		t.Errorf("scan of hold+deferred = %v, want %v", order, want)
	}
	// Once the lease has expired the message is simply waiting again: incoming (never tried).
	got, _ = scanAll(t, a, store.ScanParams{Now: time.Now().Add(2 * time.Hour)})
	if got[active].Queue != store.QueueIncoming {
		t.Errorf("message with an expired lease: queue %q, want incoming", got[active].Queue)
	}
	// An error from fn stops the scan.
	stop := errors.New("stop")
	n := 0
	err := a.MessagesScan(context.Background(), store.ScanParams{Page: 1}, func(*store.QueuedMessage) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("scan with failing fn: err %v after %d calls, want stop after 1", err, n)
	}
}

func testScanPages(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	var want []string
	for i := 0; i < 23; i++ {
		want = append(want, enqueue(t, s, []byte("x\r\n"), 1+i%3).QueueID)
	}
	for _, page := range []int{1, 7, 23, 1000} {
		got, order := scanAll(t, a, store.ScanParams{Page: page})
		if !slices.Equal(order, want) {
			t.Fatalf("page %d: scan order %v, want %v", page, order, want)
		}
		for i, id := range want {
			if len(got[id].Recipients) != 1+i%3 {
				t.Errorf("page %d: %s has %d recipients, want %d", page, id, len(got[id].Recipients), 1+i%3)
			}
		}
	}
}

func testAdminDelete(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	ctx := context.Background()
	active, deferred, hold, incoming := queueFixture(t, s, a)
	got, err := a.MessagesDelete(ctx, []string{deferred, "NOSUCHID", active, deferred})
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedStrings(active, deferred); !slices.Equal(got, want) {
		t.Errorf("MessagesDelete = %v, want %v", got, want)
	}
	for _, id := range []string{active, deferred} {
		if _, err := s.MessageGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MessageGet(%s) after delete: %v, want ErrNotFound", id, err)
		}
		if _, err := s.ContentOpen(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ContentOpen(%s) after delete: %v, want ErrNotFound", id, err)
		}
	}
	// The node that held the deleted active message completes it: nothing is left to do, and no error.
	if removed, err := s.RecipientsComplete(ctx, "node-a", []int64{1, 2, 3}); err != nil || len(removed) != 0 {
		t.Errorf("completion after delete: %v, %v", removed, err)
	}
	_, order := scanAll(t, a, store.ScanParams{})
	if want := []string{hold, incoming}; !slices.Equal(order, want) {
		t.Errorf("left after delete: %v, want %v", order, want)
	}
	if got, err := a.MessagesDelete(ctx, []string{active}); err != nil || len(got) != 0 {
		t.Errorf("second delete = %v, %v; want nothing", got, err)
	}
}

func testAdminHoldRelease(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	ctx := context.Background()
	active, deferred, hold, incoming := queueFixture(t, s, a)
	got, err := a.MessagesHold(ctx, []string{active, deferred, hold, incoming})
	if err != nil {
		t.Fatal(err)
	}
	// The active message's only recipient is under a live lease: left alone. hold was held already.
	if want := sortedStrings(deferred, incoming); !slices.Equal(got, want) {
		t.Errorf("MessagesHold = %v, want %v", got, want)
	}
	if c := claim(t, s, "node-c", 10, time.Minute, time.Now().Add(3*time.Hour)); len(c) != 1 || c[0].QueueID != active {
		t.Errorf("claim after hold got %+v; want only the active message's expired lease", c)
	}
	before := store.DBTime(time.Now())
	got, err = a.MessagesRelease(ctx, []string{deferred, incoming, hold, "NOSUCHID"})
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedStrings(deferred, hold, incoming); !slices.Equal(got, want) {
		t.Errorf("MessagesRelease = %v, want %v", got, want)
	}
	for id, state := range map[string]string{deferred: store.StateDeferred, incoming: store.StateQueued} {
		for _, r := range get(t, s, id).Recipients {
			if r.State != state || r.NextAttempt.Before(before) || r.NextAttempt.After(time.Now()) {
				t.Errorf("%s after release: %+v, want %s and due now", id, r, state)
			}
		}
	}
	if got, err := a.MessagesRelease(ctx, []string{deferred}); err != nil || len(got) != 0 {
		t.Errorf("second release = %v, %v; want nothing", got, err)
	}
}

func testAdminRequeue(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	ctx := context.Background()
	active, deferred, hold, _ := queueFixture(t, s, a)
	if _, _, err := a.MessagesExpire(ctx, []string{deferred}, false); err != nil {
		t.Fatal(err)
	}
	got, err := a.MessagesRequeue(ctx, []string{active, deferred, hold})
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedStrings(deferred, hold); !slices.Equal(got, want) {
		t.Errorf("MessagesRequeue = %v, want %v (the live lease is left alone)", got, want)
	}
	all, _ := scanAll(t, a, store.ScanParams{})
	for _, id := range []string{deferred, hold} {
		m := all[id]
		if m.Queue != store.QueueIncoming || m.ForcedExpire {
			t.Errorf("%s after requeue: queue %s, forced expire %v; want incoming, not expired", id, m.Queue, m.ForcedExpire)
		}
		for _, r := range m.Recipients {
			if r.State != store.StateQueued || r.Attempts != 0 || r.LastReason != "" || r.NextAttempt.After(time.Now()) {
				t.Errorf("%s recipient after requeue: %+v", id, r)
			}
		}
	}
	if all[active].Queue != store.QueueActive {
		t.Errorf("active message after requeue: %s", all[active].Queue)
	}
}

func testAdminExpire(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	ctx := context.Background()
	_, deferred, hold, incoming := queueFixture(t, s, a)
	expired, released, err := a.MessagesExpire(ctx, []string{deferred, hold, "NOSUCHID"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedStrings(deferred, hold); !slices.Equal(expired, want) || len(released) != 0 {
		t.Errorf("MessagesExpire = %v, %v; want %v and none released", expired, released, want)
	}
	all, _ := scanAll(t, a, store.ScanParams{})
	if !all[deferred].ForcedExpire || !all[hold].ForcedExpire || all[incoming].ForcedExpire {
		t.Errorf("forced expiry flags: deferred %v, hold %v, incoming %v", all[deferred].ForcedExpire, all[hold].ForcedExpire, all[incoming].ForcedExpire)
	}
	if all[hold].Queue != store.QueueHold {
		t.Errorf("expired held message left hold: %s", all[hold].Queue)
	}
	for _, r := range all[deferred].Recipients {
		if r.NextAttempt.After(time.Now()) {
			t.Errorf("expired message not due now: %+v", r)
		}
	}
	// -f: already expired (not counted again) but released from hold.
	expired, released, err = a.MessagesExpire(ctx, []string{hold, incoming}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(expired, []string{incoming}) || !slices.Equal(released, []string{hold}) {
		t.Errorf("MessagesExpire with release = %v, %v; want [%s], [%s]", expired, released, incoming, hold)
	}
}

func testAdminFlush(t *testing.T, h Harness) {
	s := h.fresh(t)
	a := adminOf(t, s)
	ctx := context.Background()
	now := time.Now()
	// Three deferred messages due in an hour: rcpt0@example.org each.
	var ms []string
	for i := 0; i < 3; i++ {
		m := enqueue(t, s, []byte("x\r\n"), 1)
		c := claim(t, s, "node", 1, time.Minute, now.Add(time.Second))
		if len(c) != 1 {
			t.Fatalf("claim: %+v", c)
		}
		if err := s.RecipientsDefer(ctx, "node", []store.Deferral{{ID: c[0].ID, Reason: "r", NextAttempt: now.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m.QueueID)
	}
	if _, err := a.MessagesHold(ctx, []string{ms[2]}); err != nil {
		t.Fatal(err)
	}
	due := func(id string) bool { return !get(t, s, id).Recipients[0].NextAttempt.After(time.Now()) }
	if n, err := a.RecipientsFlush(ctx, store.FlushParams{Site: "other.example"}); err != nil || n != 0 {
		t.Errorf("flush of another site = %d, %v; want 0", n, err)
	}
	if n, err := a.RecipientsFlush(ctx, store.FlushParams{QueueID: ms[0]}); err != nil || n != 1 || !due(ms[0]) || due(ms[1]) {
		t.Errorf("flush of %s = %d, %v; due: %v %v", ms[0], n, err, due(ms[0]), due(ms[1]))
	}
	if n, err := a.RecipientsFlush(ctx, store.FlushParams{Site: "EXAMPLE.org"}); err != nil || n != 1 || !due(ms[1]) {
		t.Errorf("flush of site example.org = %d, %v; want 1 (the held one stays)", n, err)
	}
	if n, err := a.RecipientsFlush(ctx, store.FlushParams{}); err != nil || n != 0 {
		t.Errorf("flush of everything = %d, %v; want 0 left to change", n, err)
	}
	if r := get(t, s, ms[2]).Recipients[0]; r.State != store.StateHold {
		t.Errorf("held recipient after flush: %+v", r)
	}
	// The flushed attempt says so (defer_transports let it through); its
	// deferral clears the mark, so the next attempt is an ordinary one.
	c := claim(t, s, "node", 10, time.Minute, time.Now().Add(time.Second))
	if len(c) != 2 || !c[0].Flushed || !c[1].Flushed {
		t.Fatalf("claim after flush: %+v", c)
	}
	if err := s.RecipientsDefer(ctx, "node", []store.Deferral{{ID: c[0].ID, Reason: "r", NextAttempt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if c := claim(t, s, "node2", 10, time.Minute, time.Now().Add(time.Second)); len(c) != 1 || c[0].Flushed {
		t.Errorf("claim after the flushed attempt was deferred: %+v", c)
	}
}

func sortedStrings(xs ...string) []string {
	ys := slices.Clone(xs)
	slices.Sort(ys)
	return ys
}
