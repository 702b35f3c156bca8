// Package connpool keeps idle, clean client sessions per destination, like
// Postfix's scache: a session is handed to the next delivery for the same
// next hop instead of paying for connect, greeting and EHLO/LHLO again. An
// idle session is closed after the idle timeout
// (smtp_connection_cache_time_limit, lmtp_connection_cache_time_limit),
// because servers drop idle clients and holding their slots is rude.
package connpool

import (
	"sync"
	"time"
)

// Conn is a cached session. Quit ends it politely (QUIT, then close).
type Conn interface {
	Quit()
}

// Pool holds idle sessions by destination key. It is safe for concurrent use.
type Pool[C Conn] struct {
	mu      sync.Mutex
	idle    map[string][]*entry[C]
	max     int
	timeout time.Duration
	closed  bool
}

type entry[C Conn] struct {
	c     C
	timer *time.Timer
}

// New returns a pool that keeps at most max idle sessions per key (max < 0
// disables caching) for at most timeout each.
func New[C Conn](max int, timeout time.Duration) *Pool[C] {
	return &Pool[C]{idle: make(map[string][]*entry[C]), max: max, timeout: timeout}
}

// Get takes the most recently used idle session for key.
func (p *Pool[C]) Get(key string) (C, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	if len(l) == 0 {
		var zero C
		return zero, false
	}
	e := l[len(l)-1]
	p.setList(key, l[:len(l)-1])
	// If the timer already fired, its callback will not find e in the
	// list and leaves it alone.
	e.timer.Stop()
	return e.c, true
}

// Put caches c under key, or ends it when the pool is full or closed.
func (p *Pool[C]) Put(key string, c C) {
	p.mu.Lock()
	if p.closed || p.max < 0 || len(p.idle[key]) >= p.max {
		p.mu.Unlock()
		c.Quit()
		return
	}
	e := &entry[C]{c: c}
	p.idle[key] = append(p.idle[key], e)
	e.timer = time.AfterFunc(p.timeout, func() {
		if p.remove(key, e) {
			c.Quit()
		}
	})
	p.mu.Unlock()
}

// remove takes e out of the idle list; false if someone else took it.
func (p *Pool[C]) remove(key string, e *entry[C]) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	for i, x := range l {
		if x == e {
			p.setList(key, append(l[:i:i], l[i+1:]...))
			return true
		}
	}
	return false
}

func (p *Pool[C]) setList(key string, l []*entry[C]) {
	if len(l) == 0 {
		delete(p.idle, key)
		return
	}
	p.idle[key] = l
}

// Idle is the number of cached sessions for key.
func (p *Pool[C]) Idle(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[key])
}

// Close ends every idle session and refuses new ones.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	p.closed = true
	var all []*entry[C]
	for _, l := range p.idle {
		all = append(all, l...)
	}
	p.idle = make(map[string][]*entry[C])
	p.mu.Unlock()
	for _, e := range all {
		e.timer.Stop()
		e.c.Quit()
	}
}
