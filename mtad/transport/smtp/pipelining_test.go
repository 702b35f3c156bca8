package smtp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sqlmta/internal/peers"
	"sqlmta/mtad/transport"
)

// scriptServer is a raw SMTP server that keeps its replies until a command
// that ends a group (DATA, RSET, QUIT, NOOP) arrives, which RFC 2920 allows
// a PIPELINING server to do. A client that waits for each reply before its
// next command stalls against it; the server notes the stall and hangs up.
// Without pipelining it answers every command at once.
type scriptServer struct {
	port       int
	pipelining bool
	answer     func(cmd string) string // reply line(s) without the final CRLF

	mu      sync.Mutex
	batches [][]string // the commands of each flush of replies, in order
	bodies  []string
	stalled bool
	conns   int
	remotes []string // client addresses, one per connection
}

func startScriptServer(t *testing.T, pipelining bool, answer func(string) string) *scriptServer {
	t.Helper()
	ss := &scriptServer{pipelining: pipelining, answer: answer}
	ss.port = peers.ServeTCP(t, func(c net.Conn) {
		ss.mu.Lock()
		ss.conns++
		ss.remotes = append(ss.remotes, c.RemoteAddr().String())
		ss.mu.Unlock()
		ss.serve(c)
	})
	return ss
}

func (ss *scriptServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	w.WriteString("220 mx.test ESMTP\r\n")
	w.Flush()
	var held []string
	var replies []string
	flush := func() {
		// Recorded before the replies go out: a client that has its reply
		// may return, and the test read the batches, at once.
		ss.mu.Lock()
		ss.batches = append(ss.batches, held)
		ss.mu.Unlock()
		for _, rep := range replies {
			w.WriteString(rep + "\r\n")
		}
		w.Flush()
		held, replies = nil, nil
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			if len(held) > 0 {
				ss.mu.Lock()
				ss.stalled = true
				ss.mu.Unlock()
			}
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(cmd, " ", 2)[0])
		held = append(held, cmd)
		var rep string
		switch verb {
		case "EHLO":
			rep = "250-mx.test\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES"
			if ss.pipelining {
				rep = strings.Replace(rep, "250-SIZE", "250-PIPELINING\r\n250-SIZE", 1)
			}
		case "QUIT":
			rep = "221 2.0.0 Bye"
		case "RSET", "NOOP":
			rep = "250 2.0.0 Ok"
		default:
			rep = ss.answer(cmd)
		}
		replies = append(replies, rep)
		if !ss.pipelining || verb != "MAIL" && verb != "RCPT" {
			flush()
		}
		if verb == "QUIT" {
			return
		}
		if verb == "DATA" && strings.HasPrefix(rep, "354") {
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			ss.mu.Lock()
			ss.bodies = append(ss.bodies, body.String())
			ss.mu.Unlock()
			held = append(held, ".")
			replies = append(replies, ss.answer("."))
			flush()
		}
	}
}

// transactions returns the flushed batches from MAIL onwards, one string
// per batch ("MAIL|RCPT|RCPT|DATA"), verbs only.
func (ss *scriptServer) transactions() []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []string
	for _, b := range ss.batches {
		var verbs []string
		for _, c := range b {
			verbs = append(verbs, strings.ToUpper(strings.SplitN(c, " ", 2)[0]))
		}
		if v := strings.Join(verbs, "|"); v != "EHLO" && v != "QUIT" {
			out = append(out, v)
		}
	}
	return out
}

func rcptAnswers(m map[string]string) func(string) string {
	return func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "MAIL"):
			return "250 2.1.0 Ok"
		case strings.HasPrefix(cmd, "RCPT"):
			addr := strings.TrimPrefix(strings.SplitN(cmd, ">", 2)[0], "RCPT TO:<")
			if rep, ok := m[addr]; ok {
				return rep
			}
			return "250 2.1.5 Ok"
		case cmd == "DATA":
			return "354 End data with <CR><LF>.<CR><LF>"
		case cmd == ".":
			return "250 2.0.0 Ok: queued as ABC123"
		}
		return "502 5.5.2 Error: command not recognized"
	}
}

// TestPipelining: against a server that answers nothing before DATA, MAIL,
// every RCPT and DATA go in one group and each recipient gets its own
// reply, as Postfix's smtp(8) does it.
func TestPipelining(t *testing.T) {
	ss := startScriptServer(t, true, rcptAnswers(map[string]string{
		"bad@dest.test":  "550 5.1.1 <bad@dest.test>: Recipient address rejected: User unknown",
		"full@dest.test": "452 4.2.2 <full@dest.test>: Mailbox full",
	}))
	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ss.port)
	res := tr.Deliver(context.Background(), message(nexthop, "good@dest.test", "bad@dest.test", "full@dest.test", "good2@dest.test"))
	want := []struct {
		st   transport.Status
		text string
	}{
		{transport.Sent, "250 2.0.0 Ok: queued as ABC123"},
		{transport.Bounced, "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@dest.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)"},
		{transport.Deferred, "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full@dest.test>: Mailbox full (in reply to RCPT TO command)"},
		{transport.Sent, "250 2.0.0 Ok: queued as ABC123"},
	}
	for i, w := range want {
		if r := res[i]; r.Status != w.st || r.Text != w.text {
			t.Errorf("recipient %d: got %+v, want %v %q", i, r, w.st, w.text)
		}
	}
	// A second message on the cached session is pipelined as well.
	if r := tr.Deliver(context.Background(), message(nexthop, "c@dest.test"))[0]; r.Status != transport.Sent || r.ConnUse != 2 {
		t.Errorf("second message: %+v", r)
	}
	tr.Close()
	waitFor(t, "the transactions", func() bool { return len(ss.transactions()) >= 4 })
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conns != 1 {
		t.Errorf("%d connections, want 1", ss.conns)
	}
	if ss.stalled {
		t.Error("the client waited for a reply before DATA")
	}
	ss.mu.Unlock()
	got := strings.Join(ss.transactions(), " / ")
	ss.mu.Lock()
	if want := "MAIL|RCPT|RCPT|RCPT|RCPT|DATA / . / MAIL|RCPT|DATA / ."; got != want {
		t.Errorf("groups %q, want %q", got, want)
	}
	if len(ss.bodies) != 2 || !strings.Contains(ss.bodies[0], "\r\n..leading dot\r\n") {
		t.Errorf("bodies %q (dots must be doubled on the wire)", ss.bodies)
	}
}

// TestPipeliningMailRefused: the RCPT and DATA replies after a refused MAIL
// are read and dropped; every recipient gets the MAIL FROM reply and the
// session stays usable.
func TestPipeliningMailRefused(t *testing.T) {
	var mu sync.Mutex
	first, refused := true, false
	ss := startScriptServer(t, true, func(cmd string) string {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(cmd, "MAIL") && first:
			first, refused = false, true
			return "553 5.7.1 <alice@sender.test>: Sender address rejected: Access denied"
		case strings.HasPrefix(cmd, "RCPT") && refused:
			return "503 5.5.1 Error: need MAIL command"
		case cmd == "DATA" && refused:
			refused = false
			return "503 5.5.1 Error: need RCPT command"
		}
		return rcptAnswers(nil)(cmd)
	})
	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ss.port)
	res := tr.Deliver(context.Background(), message(nexthop, "a@dest.test", "b@dest.test"))
	want := "host 127.0.0.1[127.0.0.1] said: 553 5.7.1 <alice@sender.test>: Sender address rejected: Access denied (in reply to MAIL FROM command)"
	for _, r := range res {
		if r.Status != transport.Bounced || r.DSN != "5.7.1" || r.Text != want {
			t.Errorf("got %+v, want %q", r, want)
		}
	}
	if r := tr.Deliver(context.Background(), message(nexthop, "c@dest.test"))[0]; r.Status != transport.Sent || r.ConnUse != 2 {
		t.Errorf("next message on the same session: %+v", r)
	}
	if got, want := strings.Join(ss.transactions(), " / "), "MAIL|RCPT|RCPT|DATA / RSET / MAIL|RCPT|DATA / ."; got != want {
		t.Errorf("groups %q, want %q", got, want)
	}
}

// TestPipeliningAllRefusedDataAccepted: a server that accepts DATA after
// refusing every recipient gets an empty message (RFC 2920), and the
// refusals stand.
func TestPipeliningAllRefusedDataAccepted(t *testing.T) {
	ss := startScriptServer(t, true, rcptAnswers(map[string]string{
		"a@dest.test": "550 5.1.1 <a@dest.test>: User unknown",
	}))
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	res := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", ss.port), "a@dest.test"))
	if r := res[0]; r.Status != transport.Bounced || r.DSN != "5.1.1" || !strings.HasSuffix(r.Text, "(in reply to RCPT TO command)") {
		t.Errorf("got %+v", r)
	}
	waitFor(t, "the empty message", func() bool { ss.mu.Lock(); defer ss.mu.Unlock(); return len(ss.bodies) == 1 })
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.bodies[0] != "" {
		t.Errorf("body %q, want empty", ss.bodies[0])
	}
}

// TestNoPipelining: without PIPELINING each command waits for its reply,
// and the client stops as Postfix does: no RCPT after a refused MAIL, no
// DATA when every recipient was refused.
func TestNoPipelining(t *testing.T) {
	var mu sync.Mutex
	refuseMail := true
	ss := startScriptServer(t, false, func(cmd string) string {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(cmd, "MAIL") && refuseMail {
			refuseMail = false
			return "451 4.3.0 Try later"
		}
		return rcptAnswers(map[string]string{"bad@dest.test": "550 5.1.1 User unknown"})(cmd)
	})
	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ss.port)
	if r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]; r.Status != transport.Deferred || !strings.HasSuffix(r.Text, "(in reply to MAIL FROM command)") {
		t.Errorf("refused MAIL: %+v", r)
	}
	if r := tr.Deliver(context.Background(), message(nexthop, "bad@dest.test"))[0]; r.Status != transport.Bounced {
		t.Errorf("refused RCPT: %+v", r)
	}
	res := tr.Deliver(context.Background(), message(nexthop, "a@dest.test", "bad@dest.test"))
	if res[0].Status != transport.Sent || res[1].Status != transport.Bounced {
		t.Errorf("mixed: %+v", res)
	}
	want := "MAIL / RSET / MAIL / RCPT / RSET / MAIL / RCPT / RCPT / DATA / ."
	if got := strings.Join(ss.transactions(), " / "); got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// TestPipeliningMailRefusedDataAccepted: a sloppy server refuses MAIL but
// accepts the pipelined RCPT and DATA; the client ends the empty body so
// that the session is in step again, and reuses it.
func TestPipeliningMailRefusedDataAccepted(t *testing.T) {
	var mu sync.Mutex
	first := true
	ss := startScriptServer(t, true, func(cmd string) string {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(cmd, "MAIL") && first {
			first = false
			return "550 5.7.1 Sender refused"
		}
		return rcptAnswers(nil)(cmd)
	})
	tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
	defer tr.Close()
	nexthop := fmt.Sprintf("[127.0.0.1]:%d", ss.port)
	if r := tr.Deliver(context.Background(), message(nexthop, "a@dest.test"))[0]; r.Status != transport.Bounced ||
		!strings.HasSuffix(r.Text, "(in reply to MAIL FROM command)") {
		t.Errorf("refused MAIL: %+v", r)
	}
	if r := tr.Deliver(context.Background(), message(nexthop, "b@dest.test"))[0]; r.Status != transport.Sent || r.ConnUse != 2 {
		t.Errorf("next message on the same session: %+v", r)
	}
	if got, want := strings.Join(ss.transactions(), " / "), "MAIL|RCPT|DATA / . / RSET / MAIL|RCPT|DATA / ."; got != want {
		t.Errorf("groups %q, want %q", got, want)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.bodies) != 2 || ss.bodies[0] != "" {
		t.Errorf("bodies %q, want an empty one first", ss.bodies)
	}
}

// TestPipeliningIntoPostfix: a real Postfix 3.7 smtpd, which offers
// PIPELINING and here also applies reject_unauth_pipelining, takes the
// pipelined transaction without complaint, refuses one recipient, and
// relays the message for the others.
func TestPipeliningIntoPostfix(t *testing.T) {
	sink := peers.StartSink(t, peers.SinkOptions{})
	pf := peers.StartPostfix(t, peers.PostfixOptions{
		Relayhost: fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		ExtraMainCf: "smtpd_recipient_restrictions = check_recipient_access inline:{ bad@dest.test=REJECT }, " +
			"permit_mynetworks, reject_unauth_destination\n" +
			"smtpd_data_restrictions = reject_unauth_pipelining\n",
	})
	tr := New(Config{HeloName: "client.test"})
	defer tr.Close()
	res := tr.Deliver(context.Background(), message(pf.Addr(), "good1@dest.test", "bad@dest.test", "good2@dest.test"))
	wantBad := "host 127.0.0.1[127.0.0.1] said: 554 5.7.1 <bad@dest.test>: Recipient address rejected: Access denied (in reply to RCPT TO command)"
	if res[0].Status != transport.Sent || res[2].Status != transport.Sent || !strings.Contains(res[0].Text, "queued as") {
		t.Errorf("good recipients: %+v / %+v", res[0], res[2])
	}
	if r := res[1]; r.Status != transport.Bounced || r.DSN != "5.7.1" || r.Text != wantBad {
		t.Errorf("refused recipient: %+v, want %q", r, wantBad)
	}
	peers.WaitFor(t, 30*time.Second, func() bool { return sink.Count() == 1 }, "Postfix to relay the message")
	if log := pf.Maillog(); strings.Contains(log, "improper command pipelining") || !strings.Contains(log, "status=sent") {
		t.Errorf("Postfix's log:\n%s", log)
	}
}

// TestVerifyProbeEndsAtRcpt: an address verification probe sends MAIL and
// RCPT (pipelined with a closing RSET, or one by one), never DATA, and
// leaves the session clean.
func TestVerifyProbeEndsAtRcpt(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		ss := startScriptServer(t, pipelining, rcptAnswers(map[string]string{"bad@dest.test": "550 5.1.1 <bad@dest.test>: User unknown"}))
		tr := New(Config{HeloName: "client.test", IdleTimeout: time.Minute})
		d := message(fmt.Sprintf("[127.0.0.1]:%d", ss.port), "good@dest.test", "bad@dest.test")
		d.VerifyOnly = true
		res := tr.Deliver(context.Background(), d)
		if res[0].Status != transport.Sent || res[0].Text != "250 2.1.5 Ok" || res[1].Status != transport.Bounced {
			t.Errorf("pipelining %v: %+v", pipelining, res)
		}
		tr.Close()
		want := "MAIL|RCPT|RCPT|RSET"
		if !pipelining {
			want = "MAIL / RCPT / RCPT / RSET"
		}
		waitFor(t, "the session to end", func() bool { return strings.HasSuffix(strings.Join(ss.transactions(), " / "), "RSET") })
		if got := strings.Join(ss.transactions(), " / "); got != want {
			t.Errorf("pipelining %v: commands %q, want %q", pipelining, got, want)
		}
		ss.mu.Lock()
		if len(ss.bodies) != 0 {
			t.Errorf("pipelining %v: a body was sent", pipelining)
		}
		ss.mu.Unlock()
	}
}

// TestBindAddress: smtp_bind_address makes connections to IPv4 servers
// come from that address.
func TestBindAddress(t *testing.T) {
	ss := startScriptServer(t, true, rcptAnswers(nil))
	tr := New(Config{HeloName: "client.test", BindAddress: net.ParseIP("127.0.0.7")})
	defer tr.Close()
	if r := tr.Deliver(context.Background(), message(fmt.Sprintf("[127.0.0.1]:%d", ss.port), "a@dest.test"))[0]; r.Status != transport.Sent {
		t.Fatalf("delivery: %+v", r)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.remotes) != 1 || !strings.HasPrefix(ss.remotes[0], "127.0.0.7:") {
		t.Errorf("connections came from %v, want 127.0.0.7", ss.remotes)
	}
}
