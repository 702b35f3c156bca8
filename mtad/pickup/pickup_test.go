package pickup

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"sqlmta/mtad/pickup/maildrop"
)

func TestContent(t *testing.T) {
	p := &Pickup{}
	for _, c := range []struct {
		fullName, in, want string
	}{
		{"", "Subject: x\n\nbody\nlast", "Subject: x\r\n\r\nbody\r\nlast\r\n"},
		{"Alice Q", "Subject: x\n\nbody\n", "From: Alice Q <alice>\r\nSubject: x\r\n\r\nbody\r\n"},
		{"Q, Alice", "Subject: x\n\n", "From: \"Q, Alice\" <alice>\r\nSubject: x\r\n\r\n"},
		{"Alice Q", "from: other@example.com\n\nbody\n", "from: other@example.com\r\n\r\nbody\r\n"},
		{"", "already\r\ncrlf\r\n", "already\r\ncrlf\r\n"},
	} {
		md := &maildrop.Envelope{Sender: "alice", FullName: c.fullName}
		got, err := io.ReadAll(iotest.OneByteReader(p.content(bufio.NewReader(strings.NewReader(c.in)), md)))
		if err != nil || string(got) != c.want {
			t.Errorf("content(%q, %q) = %q, %v; want %q", c.fullName, c.in, got, err, c.want)
		}
	}
}
