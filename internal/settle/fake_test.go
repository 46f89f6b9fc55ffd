package settle

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// waitTimeout bounds how long a test waits for something that should happen
// promptly. It is generous on purpose: tests never assert a tight time bound.
const waitTimeout = 10 * time.Second

// fakeStore is an in-memory store that keeps the part of the contract the
// settler relies on: Settle is fenced by lock tokens per item, refuses
// batches over store.MaxBatch as a whole, and honours ctx. Tests can block
// calls, inject whole-call failures and expire locks. Other Store methods
// are not implemented (the nil embedded interface panics if they are called).
type fakeStore struct {
	store.Store

	mu       sync.Mutex // guards the fields below
	jobs     map[store.ID]*fakeJob
	calls    []int   // size of each Settle call that reached the store, failed ones included
	failures []error // returned by the next calls, in order, before any item is applied
	gate     chan struct{}
	entered  chan int // when set, receives each call's size as the call starts
}

type fakeJob struct {
	state   store.State
	token   store.LockToken
	settles int // verdicts applied to this job
}

func newFakeStore() *fakeStore { return &fakeStore{jobs: make(map[store.ID]*fakeJob)} }

// claim makes n running jobs and returns a Complete verdict for each.
func (f *fakeStore) claim(n int) []store.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := make([]store.Verdict, n)
	for i := range vs {
		id, tok := store.NewID(), store.NewLockToken()
		f.jobs[id] = &fakeJob{state: store.StateRunning, token: tok}
		vs[i] = store.Verdict{ID: id, Token: tok, Outcome: store.Complete}
	}
	return vs
}

// expire does what the reaper does to a job whose lock expired: its token
// goes stale.
func (f *fakeStore) expire(id store.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.state, j.token = store.StateAvailable, 0
}

// block makes Settle calls wait until the returned release func is called.
func (f *fakeStore) block() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.gate = nil
			f.mu.Unlock()
			close(gate)
		})
	}
}

func (f *fakeStore) failNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, errs...)
}

func (f *fakeStore) callSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.calls...)
}

func (f *fakeStore) job(id store.ID) fakeJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.jobs[id]
}

func (f *fakeStore) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if entered != nil {
		select {
		case entered <- len(vs):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(vs)); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, len(vs))
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return nil, err
	}
	errs := make([]error, len(vs))
	for i, v := range vs {
		j, ok := f.jobs[v.ID]
		switch {
		case !ok:
			errs[i] = store.ErrNotFound
		case j.state != store.StateRunning || j.token != v.Token:
			errs[i] = store.ErrLockLost
		default:
			j.state, j.token = store.StateCompleted, 0
			j.settles++
		}
	}
	return errs, nil
}

// result is one OnResult call.
type result struct {
	v   store.Verdict
	err error
}

// recorder collects OnResult calls for tests to wait on.
type recorder struct{ ch chan result }

func newRecorder() *recorder { return &recorder{ch: make(chan result, 1<<16)} }

func (r *recorder) onResult(v store.Verdict, _ any, err error) { r.ch <- result{v, err} }

// wait returns the next n results, failing the test if they do not come.
func (r *recorder) wait(t testing.TB, n int) map[store.ID]error {
	t.Helper()
	got := make(map[store.ID]error, n)
	timeout := time.After(waitTimeout)
	for len(got) < n {
		select {
		case res := <-r.ch:
			if _, dup := got[res.v.ID]; dup {
				t.Fatalf("verdict for job %s reported twice", res.v.ID)
			}
			got[res.v.ID] = res.err
		case <-timeout:
			t.Fatalf("got %d of %d results", len(got), n)
		}
	}
	return got
}

// none fails the test if any result is waiting to be read.
func (r *recorder) none(t testing.TB) {
	t.Helper()
	select {
	case res := <-r.ch:
		t.Fatalf("unexpected extra result for job %s: %v", res.v.ID, res.err)
	default:
	}
}

// newTestLogger returns a logger writing text records to w, guarded by mu.
func newTestLogger(mu *sync.Mutex, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
