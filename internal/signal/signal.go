// Package signal provides wake-up broadcasts: a waiter takes a channel, and
// the next Fire closes it. Signals are hints that something changed, never
// the change itself, so a missed or spurious wake-up costs one extra look.
package signal

import (
	"sync"
	"sync/atomic"
)

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

// Keyed is a family of signals keyed by K (such as a job ID) that exist only
// while someone waits: Watch creates one, and it is forgotten when it fires
// or when its last waiter releases it. Firing a key nobody watches costs a
// map lookup; firing when nobody watches anything costs an atomic load. The
// zero value is ready to use. It is safe for concurrent use.
type Keyed[K comparable] struct {
	watched atomic.Int64 // len(m), read without the lock by Fire
	mu      sync.Mutex   // guards m
	m       map[K]*keyedSignal
}

type keyedSignal struct {
	ch   chan struct{}
	refs int // waiters that have not released; guarded by Keyed.mu
}

// Watch returns a channel closed by the next Fire of k (or FireAll), and a
// release func to call once no longer waiting. Calling release more than
// once is harmless.
func (s *Keyed[K]) Watch(k K) (<-chan struct{}, func()) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[K]*keyedSignal)
	}
	e := s.m[k]
	if e == nil {
		e = &keyedSignal{ch: make(chan struct{})}
		s.m[k] = e
		s.watched.Store(int64(len(s.m)))
	}
	e.refs++
	s.mu.Unlock()
	var once sync.Once
	return e.ch, func() {
		once.Do(func() {
			s.mu.Lock()
			e.refs--
			if e.refs == 0 && s.m[k] == e {
				delete(s.m, k)
				s.watched.Store(int64(len(s.m)))
			}
			s.mu.Unlock()
		})
	}
}

// Fire wakes the waiters of each key given.
func (s *Keyed[K]) Fire(keys ...K) {
	if s.watched.Load() == 0 {
		return
	}
	s.mu.Lock()
	for _, k := range keys {
		if e := s.m[k]; e != nil {
			close(e.ch)
			delete(s.m, k)
		}
	}
	s.watched.Store(int64(len(s.m)))
	s.mu.Unlock()
}

// FireAll wakes every waiter of every key.
func (s *Keyed[K]) FireAll() {
	s.mu.Lock()
	for _, e := range s.m {
		close(e.ch)
	}
	clear(s.m)
	s.watched.Store(0)
	s.mu.Unlock()
}

// Len returns how many keys are watched.
func (s *Keyed[K]) Len() int { return int(s.watched.Load()) }

// FireAll fires every signal of the set.
func (s *Set) FireAll() {
	s.mu.Lock()
	sigs := make([]*Signal, 0, len(s.m))
	for _, sig := range s.m {
		sigs = append(sigs, sig)
	}
	s.mu.Unlock()
	for _, sig := range sigs {
		sig.Fire()
	}
}
