package smtp

import (
	"sync"
	"time"
)

// pool keeps idle, clean sessions per destination, like Postfix's scache:
// a session is handed to the next delivery for the same nexthop instead of
// paying for connect, greeting, EHLO and TLS again. An idle session is
// closed after the idle timeout (smtp_connection_cache_time_limit), because
// servers drop idle clients and holding their slots is rude.
type pool struct {
	mu      sync.Mutex
	idle    map[string][]*session
	max     int
	timeout time.Duration
	closed  bool
}

func newPool(max int, timeout time.Duration) *pool {
	return &pool{idle: make(map[string][]*session), max: max, timeout: timeout}
}

// candidates lists key's idle sessions, the most recently used first, for
// a caller that must choose among them (SMTP AUTH credentials) before it
// takes one.
func (p *pool) candidates(key string) []*session {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	out := make([]*session, len(l))
	for i, s := range l {
		out[len(l)-1-i] = s
	}
	return out
}

// take removes s from the idle list for use; false if it is gone already
// (taken by another delivery or timed out).
func (p *pool) take(s *session) bool {
	if !p.remove(s) {
		return false
	}
	// If the timer already fired, its callback will not find s in the
	// list and leaves it alone.
	s.idleTimer.Stop()
	return true
}

// put caches s, or closes it when the pool is full or closed.
func (p *pool) put(s *session) {
	p.mu.Lock()
	if p.closed || p.max < 0 || len(p.idle[s.key]) >= p.max {
		p.mu.Unlock()
		s.quit()
		return
	}
	p.idle[s.key] = append(p.idle[s.key], s)
	s.idleTimer = time.AfterFunc(p.timeout, func() {
		if p.remove(s) {
			s.quit()
		}
	})
	p.mu.Unlock()
}

// remove takes s out of the idle list; false if someone else took it.
func (p *pool) remove(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[s.key]
	for i, x := range l {
		if x == s {
			p.idle[s.key] = append(l[:i], l[i+1:]...)
			if len(p.idle[s.key]) == 0 {
				delete(p.idle, s.key)
			}
			return true
		}
	}
	return false
}

// idleCount is the number of cached sessions for key (tests, metrics).
func (p *pool) idleCount(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[key])
}

// close QUITs every idle session and refuses new ones.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*session
	for _, l := range p.idle {
		all = append(all, l...)
	}
	p.idle = make(map[string][]*session)
	p.mu.Unlock()
	for _, s := range all {
		s.idleTimer.Stop()
		s.quit()
	}
}
