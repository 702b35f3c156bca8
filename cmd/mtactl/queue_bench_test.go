package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/config"
	"sqlmta/store"
)

// BenchmarkMailq100k lists a queue of 100,000 one-recipient messages as mailq does, on each database.
// first-ms is how long the first message took to reach the output (the listing streams).
//
//	go test -run '^$' -bench BenchmarkMailq100k -benchtime 3x ./cmd/mtactl
func BenchmarkMailq100k(b *testing.B) {
	const n = 100_000
	for _, db := range queueDBs {
		b.Run(db.name, func(b *testing.B) {
			dir, _, st := queueSetup(b, db.url(b))
			fill(b, st, n)
			cfg, err := config.Load(dir)
			if err != nil {
				b.Fatal(err)
			}
			e := &queueEnv{cfg: cfg, st: st, admin: st.(store.AdminStore).Admin()}
			b.ResetTimer()
			var first time.Duration
			for i := 0; i < b.N; i++ {
				w := &firstWrite{start: time.Now()}
				if err := e.list(context.Background(), w, false); err != nil {
					b.Fatal(err)
				}
				if !strings.Contains(string(w.tail), fmt.Sprintf("in %d Requests.", n)) {
					b.Fatalf("listing ends %q", w.tail)
				}
				first += w.first
			}
			b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-ms")
		})
	}
}

// firstWrite records when the first bytes arrived and keeps the last ones.
type firstWrite struct {
	start time.Time
	first time.Duration
	tail  []byte
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.first == 0 {
		w.first = time.Since(w.start)
	}
	w.tail = append(w.tail[:0], p[max(0, len(p)-64):]...)
	return len(p), nil
}

var _ io.Writer = (*firstWrite)(nil)

// fill enqueues n messages from 8 goroutines.
func fill(b *testing.B, st store.Store, n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				m := &store.NewMessage{QueueID: fmt.Sprintf("B%09d", i), Sender: "sender@example.org", Arrival: time.Now(),
					Content:    strings.NewReader("Subject: bench\r\n\r\nbody\r\n"),
					Recipients: []store.NewRecipient{{Address: fmt.Sprintf("rcpt%d@example.net", i)}}}
				if err := st.Enqueue(context.Background(), m); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
