package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/internal/testdb"
	"sqlmta/store"
	"sqlmta/store/open"
)

// TestSeveralNodes runs three mtad nodes on one PostgreSQL and on one
// MariaDB database. 10,000 messages sent through all three arrive at the
// sink exactly once; then, with 10,000 more queued, one node is killed
// with SIGKILL in the middle of delivery and the others take its work over
// when its leases expire: nothing is lost.
func TestSeveralNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("several nodes and 20,000 messages")
	}
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"postgres", testdb.PostgresURL}, {"mysql", testdb.MySQLURL}} {
		t.Run(db.name, func(t *testing.T) {
			url := db.url(t)
			sink := peers.StartSink(t, peers.SinkOptions{})
			var nodes []*daemon
			for i := 0; i < 3; i++ {
				nodes = append(nodes, startDaemon(t, url,
					fmt.Sprintf("relayhost = [127.0.0.1]:%d", sink.Port()),
					"qmgr_lease_time = 10s", // short, for the takeover; long enough for a loaded CI machine
					"minimal_backoff_time = 1s",
					"maximal_backoff_time = 2s",
				))
			}
			st, err := open.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()

			const n = 10000
			sendThrough(t, nodes, n)
			waitQueueEmpty(t, st, 180*time.Second)
			if got, ids := sink.Count(), uniq(sink.MessageIDs()); got != n || ids != n {
				t.Fatalf("sink got %d messages, %d distinct; want %d exactly once\n%s", got, ids, n, twiceSent(nodes))
			}

			// The same again with the sink down, so that all of it is queued,
			// then the sink up and node 0 killed while delivering.
			sink.Stop()
			sendThrough(t, nodes, n)
			sink.Start()
			peers.WaitFor(t, 120*time.Second, func() bool { return sink.Count() >= n+n/5 }, "deliveries under way")
			if err := nodes[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-nodes[0].exited
			nodes[0].cmd = nil // nothing left to stop
			waitQueueEmpty(t, st, 180*time.Second)
			if ids := uniq(sink.MessageIDs()); ids != 2*n {
				t.Fatalf("after SIGKILL: %d distinct messages at the sink, want %d (lost %d)", ids, 2*n, 2*n-ids)
			}
			t.Logf("after SIGKILL: %d deliveries for %d messages (%d duplicates from the killed node's deliveries in flight)",
				sink.Count(), 2*n, sink.Count()-2*n)
		})
	}
}

// sendThrough sends n messages with Postfix's smtp-source, split across the
// nodes, all at once.
func sendThrough(t *testing.T, nodes []*daemon, n int) {
	t.Helper()
	bin := peers.Require(t, "smtp-source")
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	outs := make([][]byte, len(nodes))
	for i, d := range nodes {
		count := n / len(nodes)
		if i == 0 {
			count += n % len(nodes)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			outs[i], errs[i] = exec.CommandContext(ctx, bin, "-s", "5", "-m", fmt.Sprint(count), "-l", "1000",
				"-f", "sender@example.org", "-t", "rcpt@example.net", d.addr).CombinedOutput()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("smtp-source to node %d: %v\n%s", i, err, outs[i])
		}
	}
}

// waitQueueEmpty waits until no recipient is left in the shared queue.
func waitQueueEmpty(t *testing.T, st store.Store, timeout time.Duration) {
	t.Helper()
	peers.WaitFor(t, timeout, func() bool {
		_, ok, err := st.NextDue(context.Background())
		return err == nil && !ok
	}, "an empty queue")
}

// twiceSent shows, for a few queue IDs that more than one delivery sent,
// every log line about them from every node.
func twiceSent(nodes []*daemon) string {
	sent := regexp.MustCompile(`: ([0-9A-F]+): to=<.*status=sent`)
	count := map[string]int{}
	for _, d := range nodes {
		for _, m := range sent.FindAllStringSubmatch(d.maillog(), -1) {
			count[m[1]]++
		}
	}
	var b strings.Builder
	for i, d := range nodes {
		warnings := 0
		for _, line := range strings.Split(d.maillog(), "\n") {
			// The NIS warning of the default alias_maps says nothing about the queue.
			if strings.Contains(line, "warning:") && !strings.Contains(line, "dict_nis_init") && warnings < 10 {
				warnings++
				fmt.Fprintf(&b, "node %d: %s\n", i, line)
			}
		}
	}
	shown := 0
	for id, c := range count {
		if c < 2 || shown == 3 {
			continue
		}
		shown++
		for i, d := range nodes {
			for _, line := range strings.Split(d.maillog(), "\n") {
				if strings.Contains(line, id) {
					fmt.Fprintf(&b, "node %d: %s\n", i, line)
				}
			}
		}
	}
	return b.String()
}

func uniq(ids []string) int {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}
