package storetest

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var reapTests = []test{
	{"OnlyExpiredLocks", testReapOnlyExpired},
	{"HeldUntilExpiry", testReapHeldUntilExpiry},
	{"ReapedIsClaimable", testReapClaimable},
	{"MaxDeliveries", testReapMaxDeliveries},
	{"ReleaseGivesDeliveryBack", testReapAfterRelease},
	{"Limit", testReapLimit},
}

// reap runs ReapExpired and fails the test on error.
func (h *harness) reap(limit int) store.ReapResult {
	h.t.Helper()
	r, err := h.s.ReapExpired(h.ctx, limit)
	if err != nil {
		h.t.Fatalf("ReapExpired(%d): %v", limit, err)
	}
	return r
}

func (h *harness) wantReap(limit int, want store.ReapResult) {
	h.t.Helper()
	if got := h.reap(limit); got != want {
		h.t.Fatalf("ReapExpired(%d) = %+v, want %+v", limit, got, want)
	}
}

func testReapOnlyExpired(t *testing.T, h *harness) {
	ids := h.addN(4, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	a := h.claimFor(store.DefaultQueue, 1, 10*time.Second)[0]
	b := h.claimFor(store.DefaultQueue, 1, 20*time.Second)[0]
	c := h.claimFor(store.DefaultQueue, 1, 60*time.Second)[0]
	d := h.claimFor(store.DefaultQueue, 1, 10*time.Second)[0]
	if a.ID != ids[0] || b.ID != ids[1] || c.ID != ids[2] || d.ID != ids[3] {
		t.Fatal("claims did not come in enqueue order")
	}
	h.settleOK(verdict(d, store.Complete)) // finished: its old lock is irrelevant
	h.wantReap(100, store.ReapResult{})

	h.clock.Advance(15 * time.Second)
	bBefore, cBefore := h.get(b.ID), h.get(c.ID)
	h.wantReap(100, store.ReapResult{Returned: 1})
	got := h.wantState(a.ID, store.StateAvailable)
	if got.LockToken != 0 {
		t.Errorf("reaped job kept its lock token %v", got.LockToken)
	}
	if got.Deliveries != 1 || got.Attempts != 0 {
		t.Errorf("reaped job: deliveries %d (want 1: the lost claim counted once), attempts %d (want 0)", got.Deliveries, got.Attempts)
	}
	h.unchanged(bBefore)
	h.unchanged(cBefore)
	h.wantState(d.ID, store.StateCompleted)

	h.clock.Advance(10 * time.Second)
	h.wantReap(100, store.ReapResult{Returned: 1})
	h.wantState(b.ID, store.StateAvailable)
	h.unchanged(cBefore)
}

func testReapHeldUntilExpiry(_ *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	held := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock - time.Millisecond)
	h.wantReap(100, store.ReapResult{})
	h.claimNone(store.DefaultQueue)
	h.settleOK(verdict(held, store.Complete))
}

func testReapClaimable(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	first := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(100, store.ReapResult{Returned: 1})
	second := h.claimID(store.DefaultQueue, id)
	if second.LockToken == first.LockToken || second.LockToken == 0 {
		t.Errorf("reclaimed job's token = %v, first delivery's %v; want a new one", second.LockToken, first.LockToken)
	}
	if second.Deliveries != 2 {
		t.Errorf("reclaimed job: deliveries %d, want 2", second.Deliveries)
	}
	if want := h.now().Add(defaultLock); !second.LockedUntil.Equal(want) {
		t.Errorf("reclaimed job: LockedUntil %v, want %v", second.LockedUntil, want)
	}
}

func testReapMaxDeliveries(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{MaxDeliveries: 3, MaxAttempts: 10})
	for n := 1; n <= 2; n++ {
		h.claimID(store.DefaultQueue, id)
		h.clock.Advance(defaultLock + time.Second)
		h.wantReap(100, store.ReapResult{Returned: 1})
		if got := h.wantState(id, store.StateAvailable); got.Deliveries != n {
			t.Fatalf("after lost delivery %d: deliveries %d", n, got.Deliveries)
		}
	}
	h.claimID(store.DefaultQueue, id)
	reapedAt := h.clock.Advance(defaultLock + time.Second)
	h.wantReap(100, store.ReapResult{DeadLettered: 1})
	got := h.wantState(id, store.StateDead)
	if got.DeadReason != store.DeadMaxDeliveries {
		t.Errorf("DeadReason = %q, want %q", got.DeadReason, store.DeadMaxDeliveries)
	}
	if !got.FinishedAt.Equal(reapedAt) || got.LockToken != 0 || got.Deliveries != 3 || got.Attempts != 0 {
		t.Errorf("poison job: finished %v (want %v), token %v, deliveries %d, attempts %d", got.FinishedAt, reapedAt, got.LockToken, got.Deliveries, got.Attempts)
	}
	if n := len(got.Errors); n == 0 || got.Errors[n-1].Message == "" || !got.Errors[n-1].At.Equal(reapedAt) {
		t.Errorf("error history = %+v, want a last entry at %v saying why", got.Errors, reapedAt)
	}
	h.clock.Advance(time.Hour)
	h.claimNone(store.DefaultQueue)
}

func testReapAfterRelease(_ *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{MaxDeliveries: 2})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, id), store.Release))
	h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(100, store.ReapResult{Returned: 1}) // one delivery lost, one given back
	h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(100, store.ReapResult{DeadLettered: 1})
	h.wantState(id, store.StateDead)
}

func testReapLimit(t *testing.T, h *harness) {
	h.addN(5, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	if n := len(h.claim(store.DefaultQueue, 5)); n != 5 {
		t.Fatalf("claimed %d jobs, want 5", n)
	}
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(2, store.ReapResult{Returned: 2})
	running := h.list(store.ListParams{States: []store.State{store.StateRunning}})
	if len(running) != 3 {
		t.Fatalf("%d jobs still running after reaping 2 of 5, want 3", len(running))
	}
	h.wantReap(2, store.ReapResult{Returned: 2})
	h.wantReap(10, store.ReapResult{Returned: 1})
	h.wantReap(10, store.ReapResult{})
	if n := len(h.claim(store.DefaultQueue, 10)); n != 5 {
		t.Errorf("claimed %d reaped jobs, want 5", n)
	}
}
