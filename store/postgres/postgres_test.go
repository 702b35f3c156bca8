package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/testdb"
	"sqlmta/store"
	"sqlmta/store/postgres"
	"sqlmta/store/storetest"
)

var harness = storetest.Harness{
	NewURL: func(t testing.TB) string {
		url := testdb.PostgresURL(t)
		if err := postgres.Migrate(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		return url
	},
	Open: func(t testing.TB, url string) store.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	},
}

func TestConformance(t *testing.T) { storetest.Run(t, harness) }

func TestMapConformance(t *testing.T) { storetest.RunMaps(t, harness) }

func BenchmarkEnqueue(b *testing.B)         { storetest.BenchmarkEnqueue(b, harness) }
func BenchmarkEnqueueParallel(b *testing.B) { storetest.BenchmarkEnqueueParallel(b, harness) }
func BenchmarkClaimComplete(b *testing.B)   { storetest.BenchmarkClaimComplete(b, harness) }

// TestNotifications: an enqueue by one node wakes another node's listener,
// and the channel closes when the listener's context ends.
func TestNotifications(t *testing.T) {
	url := harness.NewURL(t)
	a, b := harness.Open(t, url), harness.Open(t, url)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	wakes := a.(store.Notifier).Notifications(ctx)
	// The listener may not have run LISTEN yet: enqueue until a wake-up comes.
	deadline := time.After(10 * time.Second)
	for i := 0; ; i++ {
		m := &store.NewMessage{QueueID: fmt.Sprintf("N%d", i), Sender: "a@b", Arrival: time.Now(),
			Content: strings.NewReader("x\r\n"), Recipients: []store.NewRecipient{{Address: "c@d"}}}
		if err := b.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wakes:
			cancel()
			for range wakes { // drains, then ends when the channel closes
			}
			return
		case <-deadline:
			t.Fatal("no notification within 10 s of enqueueing")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
