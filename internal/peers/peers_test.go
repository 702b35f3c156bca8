package peers

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMessageID(t *testing.T) {
	for _, tc := range []struct {
		line string
		id   string
		ok   bool
	}{
		{"Message-Id: <1.2.3@vm>\n", "<1.2.3@vm>", true},
		{"MESSAGE-ID:<x@y>\r\n", "<x@y>", true},
		{"message-id: <a@b>\n", "<a@b>", true},
		{"X-Message-Id: <a@b>\n", "", false},
		{"Message-Idx: <a@b>\n", "", false},
		{"Message\n", "", false},
	} {
		id, ok := messageID([]byte(tc.line))
		if id != tc.id || ok != tc.ok {
			t.Errorf("messageID(%q) = %q, %v; want %q, %v", tc.line, id, ok, tc.id, tc.ok)
		}
	}
}

func TestSinkCountsAcrossRestart(t *testing.T) {
	sink := StartSink(t, SinkOptions{})
	if got := sink.Count(); got != 0 {
		t.Fatalf("fresh sink: Count() = %d, want 0", got)
	}
	RunSource(t, sink.Addr(), "-s", "5", "-m", "20", "-l", "1000")
	WaitFor(t, 30*time.Second, func() bool { return sink.Count() >= 20 }, "20 messages in the sink")
	if got := sink.Count(); got != 20 {
		t.Fatalf("after the first run: Count() = %d, want 20", got)
	}

	sink.Stop()
	if portOpen(sink.Port()) {
		t.Fatalf("port %d still accepts connections after Stop", sink.Port())
	}
	sink.Start()
	RunSource(t, sink.Addr(), "-s", "5", "-m", "20", "-l", "1000")
	WaitFor(t, 30*time.Second, func() bool { return sink.Count() >= 40 }, "40 messages in the sink")

	ids := sink.MessageIDs()
	if len(ids) != 40 {
		t.Fatalf("MessageIDs() has %d entries, want 40", len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !strings.HasPrefix(id, "<") || seen[id] {
			t.Errorf("bad or duplicate Message-Id %q", id)
		}
		seen[id] = true
	}
}

func TestSinkOnGivenPort(t *testing.T) {
	port := FreePort(t)
	sink := StartSink(t, SinkOptions{Port: port})
	if sink.Port() != port || sink.Addr() != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("sink on %s, want port %d", sink.Addr(), port)
	}
}

// A sink told to reject RCPT with 4xx accepts no message: smtp-source fails and nothing is dumped.
func TestSinkArgsSoftReject(t *testing.T) {
	sink := StartSink(t, SinkOptions{Args: []string{"-r", "RCPT"}})
	c, err := net.Dial("tcp", sink.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	read := func() string {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading from sink: %v", err)
		}
		return string(buf[:n])
	}
	say := func(s string) string {
		if _, err := c.Write([]byte(s + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return read()
	}
	read() // greeting
	say("HELO test")
	say("MAIL FROM:<a@example.org>")
	if r := say("RCPT TO:<b@example.org>"); !strings.HasPrefix(r, "4") {
		t.Fatalf("RCPT reply %q, want 4xx", r)
	}
	say("QUIT")
	if got := sink.Count(); got != 0 {
		t.Fatalf("Count() = %d, want 0", got)
	}
}

func TestWaitForReturnsWhenTrue(t *testing.T) {
	n := 0
	WaitFor(t, 10*time.Second, func() bool { n++; return n == 3 }, "third call")
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestPollGivesUp(t *testing.T) {
	if poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("poll reported success for a condition that never holds")
	}
}

func TestPostfixRelaysIntoSink(t *testing.T) {
	sink := StartSink(t, SinkOptions{})
	pf := StartPostfix(t, PostfixOptions{Relayhost: "[127.0.0.1]:" + strconv.Itoa(sink.Port())})
	RunSource(t, pf.Addr(), "-s", "10", "-m", "100", "-l", "2000")
	WaitFor(t, 60*time.Second, func() bool { return sink.Count() >= 100 }, "100 messages relayed by Postfix")
	if got := sink.Count(); got != 100 {
		t.Fatalf("Count() = %d, want 100 (duplicates?)", got)
	}
	if !strings.Contains(pf.Maillog(), "status=sent") {
		t.Errorf("maillog has no status=sent line:\n%s", tail(pf.Maillog(), 20))
	}
	pf.Stop()
	if portOpen(pf.Port()) {
		t.Fatalf("Postfix port %d still open after Stop", pf.Port())
	}
}
