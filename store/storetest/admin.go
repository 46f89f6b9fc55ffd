package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var cancelTests = []test{
	{"LiveJobs", testCancelLive},
	{"HolderLosesLock", testCancelRunning},
	{"FinishedJobs", testCancelFinished},
	{"UnknownAndMixed", testCancelMixed},
	{"BatchTooLarge", testCancelBatchTooLarge},
}

var requeueTests = []test{
	{"DeadAndCancelled", testRequeue},
	{"WrongState", testRequeueWrongState},
	{"Unknown", testRequeueUnknown},
	{"UniqueKeyTaken", testRequeueDuplicate},
	{"BatchTooLarge", testRequeueBatchTooLarge},
}

var purgeTests = []test{
	{"DeadOnly", testPurge},
}

// cancel runs Cancel and returns the per-item errors.
func (h *harness) cancel(ids ...store.ID) []error {
	h.t.Helper()
	errs, err := h.s.Cancel(h.ctx, ids)
	if err != nil {
		h.t.Fatalf("Cancel: %v", err)
	}
	if len(errs) != len(ids) {
		h.t.Fatalf("Cancel of %d IDs returned %d results", len(ids), len(errs))
	}
	return errs
}

// requeue runs Requeue and returns the per-item errors.
func (h *harness) requeue(ids ...store.ID) []error {
	h.t.Helper()
	errs, err := h.s.Requeue(h.ctx, ids)
	if err != nil {
		h.t.Fatalf("Requeue: %v", err)
	}
	if len(errs) != len(ids) {
		h.t.Fatalf("Requeue of %d IDs returned %d results", len(ids), len(errs))
	}
	return errs
}

// wantStateError fails the test unless err is a *store.StateError about id in state st.
func wantStateError(t *testing.T, what string, err error, id store.ID, st store.State) {
	t.Helper()
	var se *store.StateError
	if !errors.As(err, &se) {
		t.Errorf("%s: %v, want a *store.StateError", what, err)
		return
	}
	if !errors.Is(err, store.ErrWrongState) || store.Code(err) != "wrong_state" {
		t.Errorf("%s: %v does not match ErrWrongState / code wrong_state", what, err)
	}
	if se.ID != id || se.State != st {
		t.Errorf("%s: StateError{ID %s, State %s}, want {ID %s, State %s}", what, se.ID, se.State, id, st)
	}
}

func testCancelLive(t *testing.T, h *harness) {
	sched := h.add(store.EnqueueParams{RunAt: h.now().Add(time.Minute)})
	running := h.add(store.EnqueueParams{})
	h.claimID(store.DefaultQueue, running)
	avail := h.add(store.EnqueueParams{})
	h.clock.Advance(time.Second)
	wantErrors(t, "cancel live jobs", h.cancel(sched, avail, running), nil, nil, nil)
	for _, id := range []store.ID{sched, avail, running} {
		got := h.wantState(id, store.StateCancelled)
		if !got.FinishedAt.Equal(h.now()) || got.LockToken != 0 {
			t.Errorf("cancelled job %s: finished %v (want %v), token %v", id, got.FinishedAt, h.now(), got.LockToken)
		}
	}
	h.clock.Advance(time.Hour)
	h.claimNone(store.DefaultQueue)
	h.wantReap(100, store.ReapResult{})
}

func testCancelRunning(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.cancelOK(id)
	cancelled := h.wantState(id, store.StateCancelled)
	wantErrors(t, "holder's settles after Cancel", h.settle(verdict(j, store.Complete), failed(j, "x", time.Time{}), verdict(j, store.Release)),
		store.ErrLockLost, store.ErrLockLost, store.ErrLockLost)
	wantErrors(t, "holder's renew after Cancel", h.renew(store.Renewal{ID: id, Token: j.LockToken, LockFor: time.Minute}), store.ErrLockLost)
	h.unchanged(cancelled)
}

func testCancelFinished(t *testing.T, h *harness) {
	for _, st := range []store.State{store.StateCompleted, store.StateCancelled, store.StateDead} {
		id := h.finish(store.EnqueueParams{}, st)
		before := h.get(id)
		h.clock.Advance(time.Second)
		errs := h.cancel(id)
		wantStateError(t, "cancel of a "+string(st)+" job", errs[0], id, st)
		h.unchanged(before)
	}
}

func testCancelMixed(t *testing.T, h *harness) {
	done := h.finish(store.EnqueueParams{}, store.StateCompleted)
	avail := h.add(store.EnqueueParams{})
	errs := h.cancel(avail, store.NewID(), done)
	wantErrors(t, "mixed cancel", errs, nil, store.ErrNotFound, store.ErrWrongState)
	h.wantState(avail, store.StateCancelled)
}

func testCancelBatchTooLarge(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	ids := make([]store.ID, store.MaxBatch+1)
	for i := range ids {
		ids[i] = id
	}
	if _, err := h.s.Cancel(h.ctx, ids); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Cancel of %d IDs = %v, want ErrTooLarge", len(ids), err)
	}
	h.wantState(id, store.StateAvailable)
}

func testRequeue(t *testing.T, h *harness) {
	dead := h.add(store.EnqueueParams{MaxAttempts: 2, Payload: []byte("p")})
	h.settleOK(failed(h.claimID(store.DefaultQueue, dead), "one", time.Time{}))
	h.settleOK(failed(h.claimID(store.DefaultQueue, dead), "two", time.Time{}))
	before := h.wantState(dead, store.StateDead)
	cancelled := h.add(store.EnqueueParams{})
	h.cancelOK(cancelled)

	h.clock.Advance(time.Minute)
	wantErrors(t, "requeue", h.requeue(dead, cancelled), nil, nil)
	got := h.wantState(dead, store.StateAvailable)
	if got.Attempts != 0 || got.Deliveries != 0 || got.LockToken != 0 {
		t.Errorf("requeued job: attempts %d, deliveries %d, token %v; want all zero", got.Attempts, got.Deliveries, got.LockToken)
	}
	if len(got.Errors) != 2 || got.Errors[0].Message != "one" || got.Errors[1].Message != "two" {
		t.Errorf("requeued job's error history = %+v, want the two failures kept", got.Errors)
	}
	if string(got.Payload) != "p" || got.MaxAttempts != before.MaxAttempts {
		t.Errorf("requeued job lost its payload or max attempts: %q, %d", got.Payload, got.MaxAttempts)
	}
	h.wantState(cancelled, store.StateAvailable)

	// Attempts really start again: one failure retries instead of dead-lettering.
	j := h.claimID(store.DefaultQueue, dead)
	if j.Deliveries != 1 {
		t.Errorf("first claim after requeue: deliveries %d, want 1", j.Deliveries)
	}
	h.settleOK(failed(j, "three", time.Time{}))
	if got := h.wantState(dead, store.StateAvailable); len(got.Errors) != 3 {
		t.Errorf("%d error entries after another failure, want 3", len(got.Errors))
	}
	h.claimID(store.DefaultQueue, dead)
	h.claimID(store.DefaultQueue, cancelled)
}

func testRequeueWrongState(t *testing.T, h *harness) {
	done := h.finish(store.EnqueueParams{}, store.StateCompleted)
	running := h.add(store.EnqueueParams{})
	h.claimID(store.DefaultQueue, running)
	avail := h.add(store.EnqueueParams{})
	sched := h.add(store.EnqueueParams{RunAt: h.now().Add(time.Hour)})
	ids := []store.ID{done, running, avail, sched}
	states := []store.State{store.StateCompleted, store.StateRunning, store.StateAvailable, store.StateScheduled}
	var befores []*store.Job
	for _, id := range ids {
		befores = append(befores, h.get(id))
	}
	errs := h.requeue(ids...)
	for i := range ids {
		wantStateError(t, "requeue of a "+string(states[i])+" job", errs[i], ids[i], states[i])
		h.unchanged(befores[i])
	}
}

func testRequeueUnknown(t *testing.T, h *harness) {
	dead := h.finish(store.EnqueueParams{}, store.StateDead)
	wantErrors(t, "requeue", h.requeue(store.NewID(), dead), store.ErrNotFound, nil)
	h.wantState(dead, store.StateAvailable)
}

func testRequeueDuplicate(t *testing.T, h *harness) {
	old := h.finish(store.EnqueueParams{UniqueKey: "k", Tenant: "t"}, store.StateDead)
	holder := h.add(store.EnqueueParams{UniqueKey: "k", Tenant: "t"})
	before := h.get(old)
	errs := h.requeue(old)
	wantErrors(t, "requeue while a live job holds the key", errs, store.ErrDuplicate)
	if c := store.Code(errs[0]); c != "duplicate" {
		t.Errorf("Code = %q, want duplicate", c)
	}
	h.unchanged(before)

	// Once the holder finishes, the requeue goes through and takes the key back.
	h.settleOK(verdict(h.claimID(store.DefaultQueue, holder), store.Complete))
	wantErrors(t, "requeue after the holder finished", h.requeue(old), nil)
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "k", Tenant: "t"})[0]; !r.Duplicate || r.ID != old {
		t.Errorf("enqueue after requeue = %+v, want duplicate of the requeued job %s", r, old)
	}
}

func testRequeueBatchTooLarge(t *testing.T, h *harness) {
	id := h.finish(store.EnqueueParams{}, store.StateDead)
	ids := make([]store.ID, store.MaxBatch+1)
	for i := range ids {
		ids[i] = id
	}
	if _, err := h.s.Requeue(h.ctx, ids); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Requeue of %d IDs = %v, want ErrTooLarge", len(ids), err)
	}
	h.wantState(id, store.StateDead)
}

// purge runs Purge and fails the test on error.
func (h *harness) purge(p store.PurgeParams) int {
	h.t.Helper()
	n, err := h.s.Purge(h.ctx, p)
	if err != nil {
		h.t.Fatalf("Purge(%+v): %v", p, err)
	}
	return n
}

func testPurge(t *testing.T, h *harness) {
	dead1a := h.finish(store.EnqueueParams{Queue: "q1"}, store.StateDead)
	dead1b := h.finish(store.EnqueueParams{Queue: "q1"}, store.StateDead)
	dead2a := h.finish(store.EnqueueParams{Queue: "q2"}, store.StateDead)
	dead2b := h.finish(store.EnqueueParams{Queue: "q2"}, store.StateDead)
	done := h.finish(store.EnqueueParams{Queue: "q1"}, store.StateCompleted)
	cancelled := h.finish(store.EnqueueParams{Queue: "q1"}, store.StateCancelled)
	avail := h.add(store.EnqueueParams{Queue: "q1"})
	running := h.add(store.EnqueueParams{Queue: "q2"})
	h.claimID("q2", running)
	keep := []store.ID{done, cancelled, avail, running}

	if n := h.purge(store.PurgeParams{Queue: "q1"}); n != 2 {
		t.Errorf("Purge(queue q1) = %d, want 2", n)
	}
	h.gone(dead1a)
	h.gone(dead1b)
	h.wantState(dead2a, store.StateDead)

	if n := h.purge(store.PurgeParams{IDs: []store.ID{dead2a, done, avail, running, store.NewID()}}); n != 1 {
		t.Errorf("Purge(IDs) = %d, want 1 (only the dead job)", n)
	}
	h.gone(dead2a)
	h.wantState(dead2b, store.StateDead)

	if n := h.purge(store.PurgeParams{Queue: "q1", IDs: []store.ID{dead2b}}); n != 0 {
		t.Errorf("Purge(queue q1, IDs in q2) = %d, want 0", n)
	}
	if n := h.purge(store.PurgeParams{}); n != 1 {
		t.Errorf("Purge(all) = %d, want 1", n)
	}
	h.gone(dead2b)
	if n := h.purge(store.PurgeParams{}); n != 0 {
		t.Errorf("Purge with no dead jobs = %d, want 0", n)
	}
	for _, id := range keep {
		h.get(id)
	}
}
