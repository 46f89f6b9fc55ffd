package crashtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/spoolrun/spool/store"
)

// errOutage is what flakyStore's calls return while the store is down: an
// error the worker cannot tell from a lost connection or a failed disk.
var errOutage = errors.New("crashtest: store unreachable (injected outage)")

// The worker's store calls that flakyStore can fail and counts.
const (
	opClaim  = "claim"
	opSettle = "settle"
	opRenew  = "renew"
	opReap   = "reap"
)

// flakyStore wraps a real store for the worker. While down is set, the calls
// a worker makes on its own (Claim, Settle, Renew, ReapExpired) fail as a
// whole with errOutage and change nothing; otherwise they pass through. It
// counts calls and items either way, and keeps the store's in-process
// notifications (store.Notifier) so the worker still wakes on new work.
type flakyStore struct {
	store.Store
	down atomic.Bool

	mu       sync.Mutex     // guards the fields below
	calls    map[string]int // calls that reached the real store
	items    map[string]int // items (jobs claimed, verdicts, renewals, jobs reaped) in those calls
	failures map[string]int // calls refused with errOutage
	changed  chan struct{}  // capacity 1: a count changed
}

func newFlakyStore(st store.Store) *flakyStore {
	return &flakyStore{Store: st, calls: map[string]int{}, items: map[string]int{},
		failures: map[string]int{}, changed: make(chan struct{}, 1)}
}

// pass records a call; it returns errOutage when the store is down.
func (f *flakyStore) pass(op string) error {
	down := f.down.Load()
	f.mu.Lock()
	if down {
		f.failures[op]++
	} else {
		f.calls[op]++
	}
	f.mu.Unlock()
	f.notify()
	if down {
		return errOutage
	}
	return nil
}

func (f *flakyStore) count(op string, items int) {
	f.mu.Lock()
	f.items[op] += items
	f.mu.Unlock()
	f.notify()
}

func (f *flakyStore) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// stats returns a copy of the counters.
func (f *flakyStore) stats() (calls, items, failures map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		c := make(map[string]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		return c
	}
	return cp(f.calls), cp(f.items), cp(f.failures)
}

func (f *flakyStore) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	if err := f.pass(opClaim); err != nil {
		return nil, err
	}
	jobs, err := f.Store.Claim(ctx, p)
	f.count(opClaim, len(jobs))
	return jobs, err
}

func (f *flakyStore) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	if err := f.pass(opSettle); err != nil {
		return nil, err
	}
	errs, err := f.Store.Settle(ctx, vs)
	if err == nil {
		f.count(opSettle, len(vs))
	}
	return errs, err
}

func (f *flakyStore) Renew(ctx context.Context, rs []store.Renewal) ([]error, error) {
	if err := f.pass(opRenew); err != nil {
		return nil, err
	}
	errs, err := f.Store.Renew(ctx, rs)
	if err == nil {
		f.count(opRenew, len(rs))
	}
	return errs, err
}

func (f *flakyStore) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	if err := f.pass(opReap); err != nil {
		return store.ReapResult{}, err
	}
	r, err := f.Store.ReapExpired(ctx, limit)
	f.count(opReap, r.Returned+r.DeadLettered)
	return r, err
}

// flakyStore forwards the wrapped store's capabilities (the embedded
// Capabilities method): notifications wake the worker instead of polling.
