package peers

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDovecotSpeaksLMTP checks the peer itself: both listeners answer LHLO,
// and an unknown user is refused at RCPT with Dovecot's own text.
func TestDovecotSpeaksLMTP(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []string{"ann@example.org"}})
	for _, target := range []struct{ network, addr string }{{"tcp", d.Addr()}, {"unix", d.Socket()}} {
		c, err := textproto.Dial(target.network, target.addr)
		if err != nil {
			t.Fatal(err)
		}
		step := func(want int, format string, args ...any) string {
			t.Helper()
			id, err := c.Cmd(format, args...)
			if err != nil {
				t.Fatal(err)
			}
			c.StartResponse(id)
			defer c.EndResponse(id)
			_, msg, err := c.ReadResponse(want)
			if err != nil {
				t.Fatalf("%s %s: %q: %v", target.network, format, msg, err)
			}
			return msg
		}
		if _, _, err := c.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		if ext := step(250, "LHLO test"); !strings.Contains(ext, "PIPELINING") {
			t.Errorf("LHLO reply %q lacks PIPELINING", ext)
		}
		step(250, "MAIL FROM:<>")
		step(250, "RCPT TO:<ann@example.org>")
		id, _ := c.Cmd("RCPT TO:<nobody@example.org>")
		c.StartResponse(id)
		code, msg, _ := c.ReadResponse(250)
		c.EndResponse(id)
		if code != 550 || !strings.Contains(msg, "User doesn't exist") {
			t.Errorf("unknown user: %d %q", code, msg)
		}
		step(221, "QUIT")
		c.Close()
	}
}

// TestDovecotAuth checks the auth service on both listeners, and that
// Restart drops its clients and comes back, quickly even with a client
// connected.
func TestDovecotAuth(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Passwords: map[string]string{"ann@example.org": "secret"}})
	resp := base64.StdEncoding.EncodeToString([]byte("\x00ann@example.org\x00secret"))
	auth := func(network, addr string) net.Conn {
		t.Helper()
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "VERSION\t1\t0\nCPID\t%d\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=\trip=\tresp=%s\n", os.Getpid(), resp)
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s %s: %v after %q", network, addr, err, lines)
			}
			lines = append(lines, strings.TrimSuffix(l, "\n"))
			if strings.HasPrefix(l, "OK\t") || strings.HasPrefix(l, "FAIL\t") {
				break
			}
		}
		if !strings.Contains(strings.Join(lines, "\n"), "\nMECH\tPLAIN\tplaintext\n") || lines[len(lines)-1] != "OK\t1\tuser=ann@example.org" {
			t.Errorf("%s %s: %q", network, addr, lines)
		}
		return c
	}
	auth("tcp", d.AuthAddr()).Close()
	c := auth("unix", d.AuthSocket())
	defer c.Close()

	start := time.Now()
	d.Restart()
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("restart took %v", el)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("the auth connection outlived the restart: %v", err)
	}
	auth("unix", d.AuthSocket()).Close()
	lmtp, err := textproto.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer lmtp.Close()
	if _, _, err := lmtp.ReadResponse(220); err != nil {
		t.Fatalf("LMTP after the restart: %v", err)
	}
}
