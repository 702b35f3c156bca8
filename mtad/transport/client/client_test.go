package client

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"sqlmta/mtad/transport"
)

func TestBatch(t *testing.T) {
	d := &transport.Delivery{Recipients: []transport.Recipient{{ID: 1, Address: "a@x"}, {ID: 2, Address: "b<@x"}, {ID: 3, Address: "c@x"}}}
	b := NewBatch(d)
	if len(b.Pending) != 2 || b.Pending[0] != 0 || b.Pending[1] != 2 {
		t.Fatalf("Pending = %v, want [0 2]", b.Pending)
	}
	if r := b.Res[1]; r.RecipientID != 2 || r.Status != transport.Bounced || r.DSN != "5.1.3" || r.Relay != "none" {
		t.Errorf("bad address: %+v", r)
	}
	setupDone := b.Start.Add(time.Millisecond)
	b.SetAll(b.Pending, "4.4.2", "lost", "h[1.2.3.4]:24", 2, setupDone)
	for _, i := range []int{0, 2} {
		r := b.Res[i]
		if r.RecipientID != d.Recipients[i].ID || r.Status != transport.Deferred || r.ConnUse != 2 || r.ConnSetup != time.Millisecond {
			t.Errorf("result %d: %+v", i, r)
		}
	}
}

func TestDialErrText(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	if got := DialErrText(err); got != "Connection refused" {
		t.Errorf("refused: %q", got)
	}
	_, err = net.Dial("unix", "/nonexistent/socket")
	if got := DialErrText(err); got != "No such file or directory" {
		t.Errorf("missing socket: %q", got)
	}
}

func TestSource(t *testing.T) {
	s := &Source{R: io.MultiReader(strings.NewReader("abc"), errReader{})}
	if _, err := io.ReadAll(s); err == nil || s.Err == nil {
		t.Errorf("read error not kept: %v, %v", err, s.Err)
	}
	s = &Source{R: strings.NewReader("abc")}
	if _, err := io.ReadAll(s); err != nil || s.Err != nil {
		t.Errorf("EOF taken for an error: %v, %v", err, s.Err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

func TestASCIIChecks(t *testing.T) {
	if !PrintableASCII("rfc822;a+2Bb@x") || PrintableASCII("a b") || PrintableASCII("é") {
		t.Error("PrintableASCII wrong")
	}
	d := &transport.Delivery{Sender: "a@x", Recipients: []transport.Recipient{{Address: "b@x"}}}
	if NeedsUTF8(d) {
		t.Error("ASCII envelope needs SMTPUTF8")
	}
	d.Recipients = append(d.Recipients, transport.Recipient{Address: "jörg@x"})
	if !NeedsUTF8(d) {
		t.Error("UTF-8 recipient does not need SMTPUTF8")
	}
}
