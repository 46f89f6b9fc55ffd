// Package signal provides wake-up broadcasts: a waiter takes a channel, and
// the next Fire closes it. Signals are hints that something changed, never
// the change itself, so a missed or spurious wake-up costs one extra look.
package signal

import "sync"

// Signal is a broadcast that wakes every current waiter. The zero value is
// ready to use. It is safe for concurrent use.
type Signal struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

// C returns a channel closed by the next Fire.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes every waiter that called C before it.
func (s *Signal) Fire() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Set is a family of signals keyed by name (such as a queue).
type Set struct {
	mu sync.Mutex // guards m
	m  map[string]*Signal
}

// Get returns the signal for key, creating it on first use.
func (s *Set) Get(key string) *Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*Signal)
	}
	sig, ok := s.m[key]
	if !ok {
		sig = new(Signal)
		s.m[key] = sig
	}
	return sig
}

// Fire fires the signal for key if anyone ever asked for it.
func (s *Set) Fire(key string) {
	s.mu.Lock()
	sig := s.m[key]
	s.mu.Unlock()
	if sig != nil {
		sig.Fire()
	}
}
