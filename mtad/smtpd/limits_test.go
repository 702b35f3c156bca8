package smtpd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlmta/internal/peers"
)

func (ts *testServer) sessionCount() int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.sessions)
}

// TestProcessLimitLeavesClientsWaiting checks default_process_limit as
// master(8) applies it: with every slot busy the server stops accepting, so
// a new client waits (no greeting, no 421) until a session ends or a reload
// raises the limit.
func TestProcessLimitLeavesClientsWaiting(t *testing.T) {
	ts := start(t, func(c *Config) {
		c.ProcessLimit = 2
		c.ServiceName = "smtp"
	})
	const banner = "220 mx.test ESMTP Postfix"
	a := ts.dial(t)
	a.expect(banner)
	b := ts.dial(t)
	b.expect(banner)
	c := ts.dial(t) // completes in the listen backlog
	ts.log.wait(t, `warning: service "smtp" (`+ts.addr+`) has reached its process limit "2": new clients may experience noticeable delays`)
	if n := ts.sessionCount(); n != 2 {
		t.Fatalf("%d sessions at the limit, want 2", n)
	}

	// A reload that raises the limit lets the waiting client in.
	cfg := baseConfig(ts.rec, ts.log)
	cfg.ProcessLimit = 3
	if err := ts.srv.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.expect(banner)

	d := ts.dial(t)
	waitFor(t, "the accept loop to hold at 3 sessions", func() bool { return ts.sessionCount() == 3 })
	a.cmd("QUIT", "221 2.0.0 Bye")
	d.expect(banner)
	d.cmd("NOOP", "250 2.0.0 Ok")
	if n := ts.sessionCount(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
	if got := strings.Count(ts.log.String(), "has reached its process limit"); got != 1 {
		t.Errorf("process limit warning logged %d times, want once (master repeats it every 1000s)", got)
	}
}

// fakeStatfs reports a file system with bsize-byte blocks, free of them
// available.
func fakeStatfs(bsize, free uint64) func(string) (uint64, uint64, error) {
	return func(string) (uint64, uint64, error) { return bsize, free, nil }
}

// TestQueueMinfree checks smtpd_check_queue's arithmetic: MAIL FROM is
// refused while free space (whole blocks) is at most queue_minfree or less
// than 1.5 × message_size_limit; EHLO still offers SIZE.
func TestQueueMinfree(t *testing.T) {
	const bs = 4096
	cases := []struct {
		name    string
		minfree int64
		limit   int64
		free    uint64 // blocks
		refused bool
	}{
		{"room for 1.5 x limit", 0, 10240000, 3751, false},          // 10240000/4096 = 2500 < 3751/1.5
		{"just under 1.5 x limit", 0, 10240000, 3750, true},         // 2500 >= 3750/1.5
		{"minfree reached", 1 << 20, 0, 256, true},                  // 256 >= 256
		{"minfree passed", 1 << 20, 0, 257, false},                  //
		{"minfree and limit", 10 << 20, 1 << 20, 2561, false},       // 2560 < 2561, 256 < 2561/1.5
		{"no limit, one block", 0, 0, 1, false},                     // 0 >= 0.67 is false
		{"no limit, file system full", 0, 0, 0, true},               //
		{"limit larger than minfree", 1 << 20, 10 << 20, 500, true}, // 2560 >= 500/1.5
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, func(c *Config) {
				c.QueueMinFree = tc.minfree
				c.MessageSizeLimit = tc.limit
				c.statfs = fakeStatfs(bs, tc.free)
			})
			c := ts.dial(t)
			c.expect("220 mx.test ESMTP Postfix")
			size := "SIZE"
			if tc.limit > 0 {
				size = "SIZE " + itoa64(tc.limit)
			}
			c.ehlo("client.test", size)
			if !tc.refused {
				c.cmd("MAIL FROM:<a@example.org> SIZE=100", "250 2.1.0 Ok")
				return
			}
			c.cmd("MAIL FROM:<a@example.org> SIZE=100", "452 4.3.1 Insufficient system storage")
			c.cmd("MAIL FROM:<a@example.org>", "452 4.3.1 Insufficient system storage")
			c.cmd("RCPT TO:<x@local.test>", "503 5.5.1 Error: need MAIL command")
			name := clientName(t, ts)
			ts.log.wait(t, "NOQUEUE: reject: MAIL from "+name+"[127.0.0.1]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<client.test>")
			ts.log.wait(t, "warning: not enough free space in mail queue: "+itoa64(int64(tc.free*bs))+" bytes < 1.5*message size limit")
		})
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// TestQueueMinfreeRealFileSystem runs the check against a real 2 MB tmpfs
// as the spool: too small for 1.5 × Postfix's default message_size_limit,
// large enough for a 1000-byte limit.
func TestQueueMinfreeRealFileSystem(t *testing.T) {
	// CI runs as root: there a test that cannot run is a failure.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		skip("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	for _, tc := range []struct {
		limit, minfree int64
		want           string
	}{
		{10240000, 0, "452 4.3.1 Insufficient system storage"},
		{1000, 0, "250 2.1.0 Ok"},
		{1000, 4 << 20, "452 4.3.1 Insufficient system storage"},
		{1000, 1 << 20, "250 2.1.0 Ok"},
	} {
		ts := start(t, func(c *Config) {
			c.SpoolDir = dir
			c.MessageSizeLimit = tc.limit
			c.QueueMinFree = tc.minfree
		})
		c := ts.dial(t)
		c.expect("220 mx.test ESMTP Postfix")
		c.cmd("HELO client.test", "250 mx.test")
		c.send("MAIL FROM:<a@example.org>")
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := c.tp.ReadLine(); err != nil || got != tc.want {
			t.Errorf("message_size_limit=%d queue_minfree=%d: got %q (%v), want %q", tc.limit, tc.minfree, got, err, tc.want)
		}
		c.cmd("QUIT", "221 2.0.0 Bye")
	}
}

// TestDifferentialQueueMinfree compares the refusal with a real Postfix
// 3.7 whose queue_minfree exceeds any disk: the replies of a whole session,
// and the reject and warning lines in its log.
func TestDifferentialQueueMinfree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	const huge = 1 << 60
	pf := peers.StartPostfix(t, peers.PostfixOptions{Relayhost: "[127.0.0.1]:9",
		ExtraMainCf: "mydestination = local.test\nmynetworks = 127.0.0.0/8\nmyhostname = mx.test\nqueue_minfree = " + itoa64(huge) + "\n"})
	ts := start(t, func(c *Config) { c.QueueMinFree = huge })
	raw := "EHLO client.test\r\nMAIL FROM:<a@example.org> SIZE=1000\r\nRCPT TO:<x@local.test>\r\nHELO again.test\r\nMAIL FROM:<>\r\n"
	want := transcript(t, pf.Addr(), "mx.test", raw)
	got := transcript(t, ts.addr, "mx.test", raw)
	if want != got {
		t.Errorf("postfix:\n%s\nsmtpd:\n%s", want, got)
	}
	// The log lines, with the client name and the byte count left out.
	lines := func(log string) []string {
		var out []string
		if i := strings.Index(log, "[127.0.0.1]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<client.test>"); i >= 0 {
			log = log[strings.LastIndex(log[:i], "\n")+1:] // Postfix's start-up probe came before
		}
		for _, l := range strings.Split(log, "\n") {
			if i := strings.Index(l, "reject: MAIL from "); i >= 0 {
				l = l[i:]
				l = l[:strings.Index(l, "from ")+5] + l[strings.Index(l, "[127.0.0.1]"):]
				out = append(out, l)
			}
			if i := strings.Index(l, "warning: not enough free space"); i >= 0 {
				l = l[i:]
				f := strings.Fields(l)
				f[8] = "N"
				out = append(out, strings.Join(f, " "))
			}
		}
		return out
	}
	waitFor(t, "postfix's reject lines", func() bool { return strings.Count(pf.Maillog(), "Insufficient system storage") >= 2 })
	ts.log.wait(t, "disconnect from ")
	if w, g := lines(pf.Maillog()), lines(ts.log.String()); strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("log lines differ:\npostfix:\n%s\nsmtpd:\n%s", strings.Join(w, "\n"), strings.Join(g, "\n"))
	}
}
