package peers

import (
	"net/textproto"
	"strings"
	"testing"
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
