// Package storetest is the conformance suite every queue store dialect passes, against a real database:
// each dialect's TestConformance calls Run with a way to get a fresh migrated database and to open a
// store on it. It also holds the shared benchmarks.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/store"
)

// Harness tells the suite how to reach a dialect.
type Harness struct {
	// NewURL returns the database_url of a fresh database with the migrations applied.
	NewURL func(t testing.TB) string
	// Open opens a store on databaseURL; the suite closes it (Close may be called twice).
	Open func(t testing.TB, databaseURL string) store.Store
}

func (h Harness) fresh(t testing.TB) store.Store {
	s := h.Open(t, h.NewURL(t))
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs every conformance test as a subtest.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"EnqueueRoundTrip", testEnqueueRoundTrip},
		{"EnqueueSmallAndEmpty", testEnqueueSmallAndEmpty},
		{"DuplicateID", testDuplicateID},
		{"NotFound", testNotFound},
		{"ClaimLeases", testClaimLeases},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"LeaseExpiryReclaimed", testLeaseExpiry},
		{"LeaseRenewed", testLeaseRenew},
		{"StaleOwnerDoesNothing", testStaleOwner},
		{"CrashLosesNothing", testCrash},
		{"Defer", testDefer},
		{"Release", testRelease},
		{"CompleteRemovesMessage", testCompleteRemovesMessage},
		{"ConcurrentCompleteLastRecipients", testConcurrentComplete},
		{"NextDue", testNextDue},
		{"HoldNeverClaimed", testHold},
		{"EnqueueHeld", testEnqueueHeld},
		{"FilterRoundTrip", testFilterRoundTrip},
		{"DelayWarnedOnce", testDelayWarnedOnce},
		{"ClaimForcedExpiry", testClaimForcedExpiry},
		{"DeadDestinations", testDeadDestinations},
		{"NewBeforeRecentlyDeferred", testNewBeforeDeferred},
		{"VerifyCache", testVerifyCache},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

var idSeq struct {
	sync.Mutex
	n int
}

// queueID returns a new queue ID, unique within the test binary.
func queueID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("T%010dQ", idSeq.n)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// msg builds a message with n recipients rcptN@Example.ORG and the given content.
func msg(content []byte, n int) *store.NewMessage {
	m := &store.NewMessage{
		QueueID:    queueID(),
		Sender:     "alice@example.com",
		Arrival:    time.Now(),
		Size:       -1, // Enqueue must overwrite it
		ClientName: "client.example.net",
		ClientAddr: "192.0.2.7",
		Helo:       "client.example.net",
		Protocol:   "ESMTP",
		MessageID:  "<123@example.com>",
		BodyType:   "8BITMIME",
		SMTPUTF8:   true,
		EnvID:      "env-1",
		Ret:        "HDRS",
		Content:    bytes.NewReader(content),
	}
	for i := 0; i < n; i++ {
		m.Recipients = append(m.Recipients, store.NewRecipient{
			Address: fmt.Sprintf("rcpt%d@Example.ORG", i),
			Orig:    fmt.Sprintf("orig%d@example.org", i),
			Notify:  "SUCCESS,FAILURE",
			ORCPT:   fmt.Sprintf("rfc822;orig%d@example.org", i),
		})
	}
	return m
}

func enqueue(t testing.TB, s store.Store, content []byte, n int) *store.NewMessage {
	t.Helper()
	m := msg(content, n)
	if err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return m
}

func claim(t testing.TB, s store.Store, owner string, limit int, lease time.Duration, now time.Time) []store.ClaimedRecipient {
	t.Helper()
	got, err := s.RecipientsClaim(context.Background(), store.ClaimParams{Owner: owner, Limit: limit, Lease: lease, Now: now})
	if err != nil {
		t.Fatalf("RecipientsClaim(%s): %v", owner, err)
	}
	return got
}

func get(t testing.TB, s store.Store, id string) *store.Message {
	t.Helper()
	m, err := s.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatalf("MessageGet(%s): %v", id, err)
	}
	return m
}

func readContent(t testing.TB, s store.Store, id string) []byte {
	t.Helper()
	rc, err := s.ContentOpen(context.Background(), id)
	if err != nil {
		t.Fatalf("ContentOpen(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading content of %s: %v", id, err)
	}
	return b
}

func ids(cs []store.ClaimedRecipient) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sorted(xs []int64) []int64 {
	ys := slices.Clone(xs)
	slices.Sort(ys)
	return ys
}

func testEnqueueRoundTrip(t *testing.T, h Harness) {
	s := h.fresh(t)
	content := randomBytes(t, 1<<20+12345) // several chunks, the last one short
	before := store.DBTime(time.Now())
	m := enqueue(t, s, content, 3)
	after := store.DBTime(time.Now())
	if m.Size != int64(len(content)) {
		t.Errorf("Enqueue set Size = %d, want %d", m.Size, len(content))
	}
	got := get(t, s, m.QueueID)
	want := store.Message{
		QueueID: m.QueueID, Sender: m.Sender, Arrival: store.DBTime(m.Arrival), Size: int64(len(content)),
		ClientName: m.ClientName, ClientAddr: m.ClientAddr, Helo: m.Helo, Protocol: m.Protocol,
		MessageID: m.MessageID, BodyType: m.BodyType, SMTPUTF8: m.SMTPUTF8, EnvID: m.EnvID, Ret: m.Ret, NRcpt: 3,
	}
	gotFields := *got
	gotFields.Recipients, gotFields.CreatedAt = nil, time.Time{}
	if !gotFields.Arrival.Equal(want.Arrival) {
		t.Errorf("Arrival = %v, want %v", gotFields.Arrival, want.Arrival)
	}
	gotFields.Arrival = want.Arrival
	if fmt.Sprintf("%+v", gotFields) != fmt.Sprintf("%+v", want) {
		t.Errorf("MessageGet =\n %+v\nwant\n %+v", gotFields, want)
	}
	if got.CreatedAt.IsZero() {
		t.Errorf("CreatedAt is zero")
	}
	if len(got.Recipients) != 3 {
		t.Fatalf("got %d recipients, want 3", len(got.Recipients))
	}
	for i, r := range got.Recipients {
		nr := m.Recipients[i]
		if r.Address != nr.Address || r.Orig != nr.Orig || r.Notify != nr.Notify || r.ORCPT != nr.ORCPT {
			t.Errorf("recipient %d = %+v, want %+v", i, r, nr)
		}
		if r.Domain != "example.org" {
			t.Errorf("recipient %d Domain = %q, want lowercased example.org", i, r.Domain)
		}
		if r.State != store.StateQueued || r.Attempts != 0 || r.LastReason != "" || r.LeaseOwner != "" || !r.LeaseExpires.IsZero() {
			t.Errorf("recipient %d = %+v, want queued, no attempts, no lease", i, r)
		}
		if r.NextAttempt.Before(before) || r.NextAttempt.After(after) {
			t.Errorf("recipient %d NextAttempt = %v, want within enqueue [%v, %v]", i, r.NextAttempt, before, after)
		}
		if i > 0 && r.ID <= got.Recipients[i-1].ID {
			t.Errorf("recipient IDs not increasing in envelope order: %d after %d", r.ID, got.Recipients[i-1].ID)
		}
	}
	if b := readContent(t, s, m.QueueID); !bytes.Equal(b, content) {
		t.Errorf("content read back differs: %d bytes, want %d", len(b), len(content))
	}
}

func testEnqueueSmallAndEmpty(t *testing.T, h Harness) {
	s := h.fresh(t)
	for _, n := range []int{0, 1, 1000, store.ChunkSize, store.ChunkSize + 1, 2 * store.ChunkSize} {
		content := randomBytes(t, n)
		m := enqueue(t, s, content, 1)
		if b := readContent(t, s, m.QueueID); !bytes.Equal(b, content) {
			t.Errorf("size %d: content read back differs (%d bytes)", n, len(b))
		}
		if got := get(t, s, m.QueueID); got.Size != int64(n) {
			t.Errorf("size %d: stored Size = %d", n, got.Size)
		}
	}
	// A message with no content reader at all is an empty message.
	m := msg(nil, 1)
	m.Content = nil
	if err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatalf("Enqueue without content: %v", err)
	}
	if b := readContent(t, s, m.QueueID); len(b) != 0 {
		t.Errorf("content of message without content = %d bytes", len(b))
	}
}

func testDuplicateID(t *testing.T, h Harness) {
	s := h.fresh(t)
	content := []byte("Subject: first\r\n\r\nfirst\r\n")
	m := enqueue(t, s, content, 2)
	for _, size := range []int{10, 3 * store.ChunkSize} { // both the one-batch and the streaming path
		dup := msg(randomBytes(t, size), 5)
		dup.QueueID = m.QueueID
		err := s.Enqueue(context.Background(), dup)
		if !errors.Is(err, store.ErrDuplicateID) {
			t.Fatalf("second Enqueue with the same ID: err = %v, want ErrDuplicateID", err)
		}
	}
	got := get(t, s, m.QueueID)
	if len(got.Recipients) != 2 || got.NRcpt != 2 {
		t.Errorf("after duplicate: %d recipients, nrcpt %d; want 2 (nothing half-written)", len(got.Recipients), got.NRcpt)
	}
	if b := readContent(t, s, m.QueueID); !bytes.Equal(b, content) {
		t.Errorf("after duplicate: content changed")
	}
}

func testNotFound(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	if _, err := s.MessageGet(ctx, "NOSUCHID"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MessageGet(missing): err = %v, want ErrNotFound", err)
	}
	if _, err := s.ContentOpen(ctx, "NOSUCHID"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ContentOpen(missing): err = %v, want ErrNotFound", err)
	}
	if hd, ok := s.(store.Holder); ok {
		if _, err := hd.MessageHold(ctx, "NOSUCHID"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MessageHold(missing): err = %v, want ErrNotFound", err)
		}
	}
	// Empty batches are no-ops, not errors.
	if r, err := s.RecipientsComplete(ctx, "o", nil); err != nil || len(r) != 0 {
		t.Errorf("RecipientsComplete(nil) = %v, %v", r, err)
	}
	if err := s.RecipientsDefer(ctx, "o", nil); err != nil {
		t.Errorf("RecipientsDefer(nil) = %v", err)
	}
	if err := s.RecipientsRelease(ctx, "o", nil); err != nil {
		t.Errorf("RecipientsRelease(nil) = %v", err)
	}
}

func testClaimLeases(t *testing.T, h Harness) {
	s := h.fresh(t)
	m1 := enqueue(t, s, []byte("one"), 3)
	m2 := enqueue(t, s, []byte("two"), 2)
	now := time.Now()
	lease := 5 * time.Minute

	first := claim(t, s, "A", 2, lease, now)
	if len(first) != 2 {
		t.Fatalf("claim limit 2 returned %d rows", len(first))
	}
	rest := claim(t, s, "A", 100, lease, now)
	if len(rest) != 3 {
		t.Fatalf("second claim returned %d rows, want the 3 left", len(rest))
	}
	all := append(first, rest...)
	// Due order is arrival order: m1's recipients first.
	for i, c := range all {
		wantQ := m1.QueueID
		if i >= 3 {
			wantQ = m2.QueueID
		}
		if c.QueueID != wantQ {
			t.Errorf("claimed row %d from %s, want %s", i, c.QueueID, wantQ)
		}
	}
	c := all[0]
	if c.Sender != m1.Sender || c.NRcpt != 3 || c.Size != 3 || c.MessageID != m1.MessageID ||
		!c.Arrival.Equal(store.DBTime(m1.Arrival)) || c.Address != m1.Recipients[0].Address ||
		c.Orig != m1.Recipients[0].Orig || c.Notify != m1.Recipients[0].Notify ||
		c.ORCPT != m1.Recipients[0].ORCPT || c.Domain != "example.org" || c.Attempts != 0 {
		t.Errorf("claimed row = %+v, want fields of %+v", c, m1)
	}
	if again := claim(t, s, "B", 100, lease, now); len(again) != 0 {
		t.Errorf("claim by B while A's leases live returned %d rows", len(again))
	}
	exp := store.DBTime(now).Add(lease)
	for _, r := range get(t, s, m1.QueueID).Recipients {
		if r.State != store.StateActive || r.LeaseOwner != "A" || !r.LeaseExpires.Equal(exp) || !r.NextAttempt.Equal(exp) {
			t.Errorf("leased recipient = %+v; want active, owner A, lease and next attempt at %v", r, exp)
		}
	}
}

func testConcurrentClaimers(t *testing.T, h Harness) {
	s := h.fresh(t)
	const nmsg, nrcpt = 60, 10
	for i := 0; i < nmsg; i++ {
		enqueue(t, s, []byte("x"), nrcpt)
	}
	var (
		mu   sync.Mutex
		seen = map[int64]string{}
		wg   sync.WaitGroup
		errs = make(chan error, 8)
	)
	now := time.Now()
	for w := 0; w < 8; w++ {
		owner := fmt.Sprintf("node%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.RecipientsClaim(context.Background(), store.ClaimParams{Owner: owner, Limit: 7, Lease: time.Hour, Now: now})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					if prev, dup := seen[c.ID]; dup {
						errs <- fmt.Errorf("recipient %d claimed by %s and %s", c.ID, prev, owner)
					}
					seen[c.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != nmsg*nrcpt {
		t.Errorf("claimers got %d distinct recipients, want %d", len(seen), nmsg*nrcpt)
	}
}

func testLeaseExpiry(t *testing.T, h Harness) {
	s := h.fresh(t)
	m := enqueue(t, s, []byte("x"), 2)
	now := time.Now()
	a := claim(t, s, "A", 10, time.Minute, now)
	if len(a) != 2 {
		t.Fatalf("A claimed %d rows, want 2", len(a))
	}
	if b := claim(t, s, "B", 10, time.Minute, now.Add(59*time.Second)); len(b) != 0 {
		t.Fatalf("B claimed %d rows before A's lease expired", len(b))
	}
	b := claim(t, s, "B", 10, time.Minute, now.Add(61*time.Second))
	if !slices.Equal(sorted(ids(a)), sorted(ids(b))) {
		t.Fatalf("after expiry B claimed %v, want A's %v", ids(b), ids(a))
	}
	for i := range a {
		if a[i].TakenOver || !b[i].TakenOver {
			t.Errorf("recipient %d: taken over %v at A's claim, %v at B's; want false, true", a[i].ID, a[i].TakenOver, b[i].TakenOver)
		}
	}
	for _, r := range get(t, s, m.QueueID).Recipients {
		if r.LeaseOwner != "B" {
			t.Errorf("recipient %d lease owner %q, want B", r.ID, r.LeaseOwner)
		}
	}
	removed, err := s.RecipientsComplete(context.Background(), "B", ids(b))
	if err != nil || !slices.Equal(removed, []string{m.QueueID}) {
		t.Errorf("B's complete = %v, %v; want [%s]", removed, err, m.QueueID)
	}
}

func testLeaseRenew(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	enqueue(t, s, []byte("x"), 3)
	now := time.Now()
	a := claim(t, s, "A", 10, time.Minute, now)
	if len(a) != 3 {
		t.Fatalf("A claimed %d rows, want 3", len(a))
	}
	// A keeps two of them for another ten minutes.
	held, err := s.RecipientsRenew(ctx, "A", ids(a)[:2], now.Add(10*time.Minute))
	if err != nil || !slices.Equal(sorted(held), sorted(ids(a)[:2])) {
		t.Fatalf("renew = %v, %v; want %v", held, err, ids(a)[:2])
	}
	b := claim(t, s, "B", 10, time.Minute, now.Add(2*time.Minute))
	if len(b) != 1 || b[0].ID != a[2].ID {
		t.Fatalf("after the first lease ran out B claimed %v, want only the unrenewed %d", ids(b), a[2].ID)
	}
	// A renewing the row B took over gets it back as not held, and B keeps it.
	held, err = s.RecipientsRenew(ctx, "A", ids(a), now.Add(20*time.Minute))
	if err != nil || !slices.Equal(sorted(held), sorted(ids(a)[:2])) {
		t.Fatalf("renew after takeover = %v, %v; want %v", held, err, ids(a)[:2])
	}
	if c := claim(t, s, "C", 10, time.Minute, now.Add(150*time.Second)); len(c) != 0 {
		t.Fatalf("C claimed %v while A and B hold live leases", ids(c))
	}
}

func testStaleOwner(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	m := enqueue(t, s, []byte("x"), 1)
	now := time.Now()
	a := claim(t, s, "A", 10, time.Minute, now)
	b := claim(t, s, "B", 10, time.Minute, now.Add(2*time.Minute))
	if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID {
		t.Fatalf("claims: A %v, B %v; want the same one recipient", ids(a), ids(b))
	}
	removed, err := s.RecipientsComplete(ctx, "A", ids(a))
	if err != nil || len(removed) != 0 {
		t.Errorf("stale owner's complete = %v, %v; want nothing removed", removed, err)
	}
	if err := s.RecipientsDefer(ctx, "A", []store.Deferral{{ID: a[0].ID, Reason: "stale", NextAttempt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecipientsRelease(ctx, "A", ids(a)); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, m.QueueID)
	if len(got.Recipients) != 1 {
		t.Fatalf("recipient gone after stale owner's calls")
	}
	if r := got.Recipients[0]; r.State != store.StateActive || r.LeaseOwner != "B" || r.Attempts != 0 || r.LastReason != "" {
		t.Errorf("after stale owner's calls recipient = %+v; want untouched, held by B", r)
	}
}

func testCrash(t *testing.T, h Harness) {
	url := h.NewURL(t)
	s1 := h.Open(t, url)
	m := enqueue(t, s1, randomBytes(t, 300<<10), 4)
	now := time.Now()
	a := claim(t, s1, "crashed-node", 10, time.Minute, now)
	if len(a) != 4 {
		t.Fatalf("claimed %d rows, want 4", len(a))
	}
	s1.Close() // the node dies: no complete, no release

	s2 := h.Open(t, url)
	defer s2.Close()
	if got := claim(t, s2, "survivor", 10, time.Minute, now.Add(30*time.Second)); len(got) != 0 {
		t.Fatalf("survivor claimed %d rows while the dead node's lease was live", len(got))
	}
	got := claim(t, s2, "survivor", 10, time.Minute, now.Add(2*time.Minute))
	if !slices.Equal(sorted(ids(got)), sorted(ids(a))) {
		t.Fatalf("after lease expiry survivor claimed %v, want %v", ids(got), ids(a))
	}
	if b := readContent(t, s2, m.QueueID); len(b) != 300<<10 {
		t.Errorf("content after crash: %d bytes", len(b))
	}
}

func testDefer(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	m := enqueue(t, s, []byte("x"), 2)
	now := time.Now()
	a := claim(t, s, "A", 10, time.Minute, now)
	if len(a) != 2 {
		t.Fatalf("claimed %d rows", len(a))
	}
	next := now.Add(10 * time.Minute)
	reason := "451 4.3.0 try again later"
	if err := s.RecipientsDefer(ctx, "A", []store.Deferral{{ID: a[0].ID, Reason: reason, NextAttempt: next}}); err != nil {
		t.Fatal(err)
	}
	rs := get(t, s, m.QueueID).Recipients
	r := rs[0]
	if r.ID != a[0].ID {
		r = rs[1]
	}
	if r.State != store.StateDeferred || r.Attempts != 1 || r.LastReason != reason ||
		!r.NextAttempt.Equal(store.DBTime(next)) || r.LeaseOwner != "" || !r.LeaseExpires.IsZero() {
		t.Errorf("deferred recipient = %+v", r)
	}
	// Complete the other so that only the deferred one remains.
	if _, err := s.RecipientsComplete(ctx, "A", []int64{a[1].ID}); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "B", 10, time.Minute, now.Add(9*time.Minute)); len(got) != 0 {
		t.Errorf("deferred recipient claimed before its next attempt: %+v", got)
	}
	got := claim(t, s, "B", 10, time.Minute, now.Add(11*time.Minute))
	if len(got) != 1 || got[0].ID != a[0].ID || got[0].Attempts != 1 || got[0].LastReason != reason || got[0].TakenOver {
		t.Fatalf("claim after next attempt = %+v; want the deferred recipient with attempts 1", got)
	}
	// A second deferral counts again.
	if err := s.RecipientsDefer(ctx, "B", []store.Deferral{{ID: got[0].ID, Reason: "again", NextAttempt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, s, m.QueueID).Recipients[0]; r.Attempts != 2 || r.LastReason != "again" {
		t.Errorf("after second deferral: %+v", r)
	}
}

func testRelease(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	m := enqueue(t, s, []byte("x"), 2)
	now := time.Now()
	a := claim(t, s, "A", 10, time.Hour, now)
	// One recipient was tried before: release must put it back as deferred, the other as queued.
	if err := s.RecipientsDefer(ctx, "A", []store.Deferral{{ID: a[0].ID, Reason: "r", NextAttempt: now}}); err != nil {
		t.Fatal(err)
	}
	a2 := claim(t, s, "A", 10, time.Hour, time.Now())
	if len(a2) != 1 {
		t.Fatalf("reclaiming deferred recipient: %d rows", len(a2))
	}
	if err := s.RecipientsRelease(ctx, "A", []int64{a[0].ID, a[1].ID}); err != nil {
		t.Fatal(err)
	}
	for _, r := range get(t, s, m.QueueID).Recipients {
		want := store.StateQueued
		if r.ID == a[0].ID {
			want = store.StateDeferred
		}
		if r.State != want || r.LeaseOwner != "" || !r.LeaseExpires.IsZero() {
			t.Errorf("released recipient = %+v, want %s without lease", r, want)
		}
	}
	if got := claim(t, s, "B", 10, time.Hour, time.Now()); len(got) != 2 {
		t.Errorf("after release B claimed %d rows at once, want 2", len(got))
	}
}

func testCompleteRemovesMessage(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	m := enqueue(t, s, randomBytes(t, 600<<10), 2)
	other := enqueue(t, s, []byte("other"), 1)
	a := claim(t, s, "A", 10, time.Minute, time.Now())
	if len(a) != 3 {
		t.Fatalf("claimed %d rows", len(a))
	}
	removed, err := s.RecipientsComplete(ctx, "A", []int64{a[0].ID})
	if err != nil || len(removed) != 0 {
		t.Fatalf("completing 1 of 2: removed %v, %v", removed, err)
	}
	if got := get(t, s, m.QueueID); len(got.Recipients) != 1 || got.Recipients[0].ID != a[1].ID {
		t.Fatalf("after completing 1 of 2: %+v", got.Recipients)
	}
	removed, err = s.RecipientsComplete(ctx, "A", []int64{a[1].ID, a[2].ID})
	slices.Sort(removed)
	want := []string{m.QueueID, other.QueueID}
	slices.Sort(want)
	if err != nil || !slices.Equal(removed, want) {
		t.Fatalf("completing the rest: removed %v, %v; want %v", removed, err, want)
	}
	if _, err := s.MessageGet(ctx, m.QueueID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MessageGet after removal: %v, want ErrNotFound", err)
	}
	if _, err := s.ContentOpen(ctx, m.QueueID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ContentOpen after removal: %v, want ErrNotFound", err)
	}
	// The content rows went with the message: the same ID can be enqueued again and reads back only
	// the new content (a left-over chunk would collide or be read).
	again := msg([]byte("new"), 1)
	again.QueueID = m.QueueID
	if err := s.Enqueue(ctx, again); err != nil {
		t.Fatalf("re-enqueue of removed ID: %v", err)
	}
	if b := readContent(t, s, m.QueueID); string(b) != "new" {
		t.Errorf("content after re-enqueue = %d bytes, want just the new 3", len(b))
	}
}

// Two owners complete the last two recipients of many messages at the same time: every message must go
// exactly once, none left behind empty.
func testConcurrentComplete(t *testing.T, h Harness) {
	s := h.fresh(t)
	const n = 40
	var msgs []string
	for i := 0; i < n; i++ {
		msgs = append(msgs, enqueue(t, s, []byte("x"), 2).QueueID)
	}
	now := time.Now()
	var byOwner [2][]int64
	for i := 0; i < 2*n; i++ {
		got := claim(t, s, fmt.Sprint("owner", i%2), 1, time.Hour, now)
		if len(got) != 1 {
			t.Fatalf("claim %d: %d rows", i, len(got))
		}
		byOwner[i%2] = append(byOwner[i%2], got[0].ID)
	}
	// Per message, both owners complete at the same instant (released together by closing start).
	var removed []string
	for i := 0; i < n; i++ {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			start = make(chan struct{})
		)
		for o := 0; o < 2; o++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := s.RecipientsComplete(context.Background(), fmt.Sprint("owner", o), []int64{byOwner[o][i]})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				removed = append(removed, r...)
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
	}
	slices.Sort(removed)
	slices.Sort(msgs)
	if !slices.Equal(removed, msgs) {
		t.Errorf("removed %d IDs %v; want each of the %d messages once", len(removed), removed, n)
	}
	for _, id := range msgs {
		if _, err := s.MessageGet(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("message %s left behind: %v", id, err)
		}
	}
}

func testNextDue(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	if _, ok, err := s.NextDue(ctx); err != nil || ok {
		t.Fatalf("NextDue on empty queue: ok=%v err=%v", ok, err)
	}
	before := store.DBTime(time.Now())
	m := enqueue(t, s, []byte("x"), 1)
	after := store.DBTime(time.Now())
	due, ok, err := s.NextDue(ctx)
	if err != nil || !ok || due.Before(before) || due.After(after) {
		t.Fatalf("NextDue after enqueue = %v, %v, %v; want within [%v, %v]", due, ok, err, before, after)
	}
	now := time.Now()
	a := claim(t, s, "A", 10, 7*time.Minute, now)
	if due, ok, err := s.NextDue(ctx); err != nil || !ok || !due.Equal(store.DBTime(now).Add(7*time.Minute)) {
		t.Errorf("NextDue with a lease = %v, %v, %v; want the lease expiry", due, ok, err)
	}
	next := now.Add(42 * time.Minute)
	if err := s.RecipientsDefer(ctx, "A", []store.Deferral{{ID: a[0].ID, Reason: "x", NextAttempt: next}}); err != nil {
		t.Fatal(err)
	}
	if due, ok, err := s.NextDue(ctx); err != nil || !ok || !due.Equal(store.DBTime(next)) {
		t.Errorf("NextDue after deferral = %v, %v, %v; want %v", due, ok, err, store.DBTime(next))
	}
	if hd, ok := s.(store.Holder); ok {
		if _, err := hd.MessageHold(ctx, m.QueueID); err != nil {
			t.Fatal(err)
		}
		if due, ok, err := s.NextDue(ctx); err != nil || ok {
			t.Errorf("NextDue with only held mail = %v, %v, %v; want none", due, ok, err)
		}
	}
}

func testHold(t *testing.T, h Harness) {
	s := h.fresh(t)
	hd, ok := s.(store.Holder)
	if !ok {
		t.Fatalf("%s store does not implement store.Holder", s.Dialect())
	}
	ctx := context.Background()
	m := enqueue(t, s, []byte("x"), 3)
	free := enqueue(t, s, []byte("y"), 1)
	now := time.Now()
	// One of m's recipients is being delivered: hold leaves it to finish.
	busy := claim(t, s, "A", 1, time.Hour, now)
	if len(busy) != 1 || busy[0].QueueID != m.QueueID {
		t.Fatalf("claim: %+v", busy)
	}
	n, err := hd.MessageHold(ctx, m.QueueID)
	if err != nil || n != 2 {
		t.Fatalf("MessageHold = %d, %v; want 2 held", n, err)
	}
	got := claim(t, s, "B", 100, time.Hour, now.Add(365*24*time.Hour))
	var gotIDs []int64
	for _, c := range got {
		if c.QueueID == m.QueueID && c.ID != busy[0].ID {
			t.Errorf("held recipient %d claimed", c.ID)
		}
		gotIDs = append(gotIDs, c.ID)
	}
	if len(got) != 2 { // the free message's recipient and the busy one after its lease expired
		t.Errorf("claim a year later got %v, want the free message's and the expired lease's", gotIDs)
	}
	if _, err := s.RecipientsComplete(ctx, "B", ids(got)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageGet(ctx, free.QueueID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("free message not removed: %v", err)
	}
	n, err = hd.MessageRelease(ctx, m.QueueID)
	if err != nil || n != 2 {
		t.Fatalf("MessageRelease = %d, %v; want 2", n, err)
	}
	if got := claim(t, s, "C", 100, time.Hour, time.Now()); len(got) != 2 {
		t.Errorf("after release claimed %d, want 2", len(got))
	}
}

// BenchmarkEnqueue measures Enqueue of a 4 KiB message with 2 recipients, one commit each.
func BenchmarkEnqueue(b *testing.B, h Harness) {
	s := h.fresh(b)
	content := randomBytes(b, 4<<10)
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msg(content, 2)
		if err := s.Enqueue(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueParallel is BenchmarkEnqueue from concurrent clients, as smtpd sessions are: the
// servers can then share one log flush between several commits.
func BenchmarkEnqueueParallel(b *testing.B, h Harness) {
	s := h.fresh(b)
	content := randomBytes(b, 4<<10)
	b.SetBytes(int64(len(content)))
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Enqueue(context.Background(), msg(content, 2)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkClaimComplete measures claim + complete in batches of 100 recipients; reports per recipient.
func BenchmarkClaimComplete(b *testing.B, h Harness) {
	s := h.fresh(b)
	ctx := context.Background()
	content := []byte("Subject: bench\r\n\r\nbody\r\n")
	for i := 0; i < b.N; i++ {
		if err := s.Enqueue(ctx, msg(content, 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		got, err := s.RecipientsClaim(ctx, store.ClaimParams{Owner: "bench", Limit: 100, Lease: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatalf("claimed nothing after %d of %d", done, b.N)
		}
		if _, err := s.RecipientsComplete(ctx, "bench", ids(got)); err != nil {
			b.Fatal(err)
		}
		done += len(got)
	}
}

// testNewBeforeDeferred: a message enqueued with Due in the past (cleanup
// sets queue_run_delay) is claimed before deferred mail that became due
// after that, and after deferred mail that has waited longer.
func testNewBeforeDeferred(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	base := time.Now()
	recent, old := enqueue(t, s, []byte("x"), 1).QueueID, enqueue(t, s, []byte("x"), 1).QueueID
	got := claim(t, s, "n1", 2, time.Minute, time.Now())
	if len(got) != 2 {
		t.Fatalf("claimed %d recipients, want 2", len(got))
	}
	var ds []store.Deferral
	for _, r := range got {
		due := base.Add(-10 * time.Second)
		if r.QueueID == old {
			due = base.Add(-400 * time.Second)
		}
		ds = append(ds, store.Deferral{ID: r.ID, Reason: "later", NextAttempt: due})
	}
	if err := s.RecipientsDefer(ctx, "n1", ds); err != nil {
		t.Fatal(err)
	}
	n := msg([]byte("x"), 1)
	n.Due = base.Add(-300 * time.Second)
	if err := s.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	var order []string
	for i := 0; i < 3; i++ {
		got := claim(t, s, "n2", 1, time.Minute, base)
		if len(got) != 1 {
			t.Fatalf("claim %d: %d recipients", i, len(got))
		}
		order = append(order, got[0].QueueID)
	}
	if want := []string{old, n.QueueID, recent}; !slices.Equal(order, want) {
		t.Errorf("claimed %v, want %v (deferred 400 s ago, new, deferred 10 s ago)", order, want)
	}
}

// testVerifyCache: the address verification cache and probe messages. Of
// several callers claiming a probe at once exactly one wins; an entry is
// probed again only once its last probe is older than the caller's bound.
func testVerifyCache(t *testing.T, h Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	now := store.DBTime(time.Now())
	if _, found, err := s.VerifyGet(ctx, "nobody@example.org"); found || err != nil {
		t.Fatalf("VerifyGet on an empty cache: found %v, %v", found, err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won, err := s.VerifyProbeClaim(ctx, "Ann@Example.org", now, now.Add(-time.Hour))
			if err != nil {
				t.Error(err)
			}
			if won {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d callers won the probe, want 1", n)
	}
	e, found, err := s.VerifyGet(ctx, "ann@example.org")
	if err != nil || !found || e.Status != store.VerifyTodo || !e.Probed.Equal(now) {
		t.Fatalf("after the claim: %+v, %v, %v", e, found, err)
	}
	later := now.Add(time.Minute)
	if err := s.VerifyUpdate(ctx, "ann@example.org", store.VerifyBounce, "host x said: 550 5.1.1 no", later); err != nil {
		t.Fatal(err)
	}
	e, _, _ = s.VerifyGet(ctx, "ANN@example.org")
	if e.Status != store.VerifyBounce || e.Reason != "host x said: 550 5.1.1 no" || !e.Updated.Equal(later) || !e.Probed.Equal(now) {
		t.Errorf("after the update: %+v", e)
	}
	// Probed an hour ago at most: not again. Older than the bound: again.
	if won, err := s.VerifyProbeClaim(ctx, "ann@example.org", later, now.Add(-time.Hour)); won || err != nil {
		t.Errorf("fresh entry claimed again: %v, %v", won, err)
	}
	if won, err := s.VerifyProbeClaim(ctx, "ann@example.org", later, later); !won || err != nil {
		t.Errorf("stale entry not claimed: %v, %v", won, err)
	}
	if e, _, _ = s.VerifyGet(ctx, "ann@example.org"); e.Status != store.VerifyBounce || !e.Probed.Equal(later) {
		t.Errorf("a new probe keeps the last status: %+v", e)
	}

	m := msg([]byte("Subject: probe\r\n\r\n"), 1)
	m.VerifyProbe = true
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	c := claim(t, s, "A", 10, time.Minute, time.Now().Add(time.Second))
	if len(c) != 1 || !c[0].VerifyProbe {
		t.Errorf("claimed probe: %+v", c)
	}
}
