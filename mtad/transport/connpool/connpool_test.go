package connpool

import (
	"sync/atomic"
	"testing"
	"time"
)

type fakeConn struct{ quits *atomic.Int32 }

func (c *fakeConn) Quit() { c.quits.Add(1) }

func TestPoolReuseLimitAndClose(t *testing.T) {
	var quits atomic.Int32
	p := New[*fakeConn](2, time.Hour)
	a, b, c := &fakeConn{&quits}, &fakeConn{&quits}, &fakeConn{&quits}
	p.Put("k", a)
	p.Put("k", b)
	p.Put("k", c) // over the limit: ended at once
	if quits.Load() != 1 || p.Idle("k") != 2 {
		t.Fatalf("after three puts: quits=%d idle=%d, want 1 and 2", quits.Load(), p.Idle("k"))
	}
	if got, ok := p.Get("k"); !ok || got != b {
		t.Errorf("Get = %p, %v; want the most recent session %p", got, ok, b)
	}
	if _, ok := p.Get("other"); ok {
		t.Error("Get on another key found a session")
	}
	p.Close()
	if quits.Load() != 2 || p.Idle("k") != 0 {
		t.Errorf("after Close: quits=%d idle=%d, want 2 and 0", quits.Load(), p.Idle("k"))
	}
	p.Put("k", b) // closed: ended at once
	if quits.Load() != 3 {
		t.Errorf("Put after Close: quits=%d, want 3", quits.Load())
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	var quits atomic.Int32
	p := New[*fakeConn](4, 10*time.Millisecond)
	p.Put("k", &fakeConn{&quits})
	deadline := time.Now().Add(10 * time.Second)
	for quits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if quits.Load() != 1 || p.Idle("k") != 0 {
		t.Errorf("after the idle timeout: quits=%d idle=%d, want 1 and 0", quits.Load(), p.Idle("k"))
	}
}
