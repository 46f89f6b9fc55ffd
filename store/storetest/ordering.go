package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var orderingTests = []test{
	{"OneAtATime", testOrderingOneAtATime},
	{"EnqueueOrderBeatsPriority", testOrderingBeatsPriority},
	{"OnePerKeyPerClaim", testOrderingOnePerKey},
	{"TenantsIndependent", testOrderingTenants},
	{"WaitsWhileFirstRetries", testOrderingRetry},
	{"WaitsForScheduledFirst", testOrderingScheduledFirst},
	{"FinishedFirstFreesNext", testOrderingFinished},
	{"ReleasedOrReapedFirstKeepsTurn", testOrderingKeepsTurn},
	{"SpansQueues", testOrderingSpansQueues},
	{"RequeuedEarlierWaitsForRunning", testOrderingRequeuedEarlier},
	{"DeadHolderBlocksKey", testOrderingDeadHolderBlocks},
	{"DeadHolderRequeuedRunsFirst", testOrderingDeadHolderRequeued},
	{"DeadHolderPurgedFreesNext", testOrderingDeadHolderPurged},
	{"DeadHolderBlocksOnlyLaterJobs", testOrderingDeadHolderLater},
}

// claimSet claims up to limit jobs of queue and returns them by ID.
func (h *harness) claimSet(queue string, limit int) map[store.ID]*store.Job {
	h.t.Helper()
	set := map[store.ID]*store.Job{}
	for _, j := range h.claim(queue, limit) {
		set[j.ID] = j
	}
	return set
}

func testOrderingOneAtATime(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k"})
	b := h.add(store.EnqueueParams{OrderingKey: "k"})
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("claimed %d jobs, want only the first of the key", len(got))
	}
	h.claimNone(store.DefaultQueue)
	h.settleOK(verdict(got[a], store.Complete))
	h.claimID(store.DefaultQueue, b)
}

func testOrderingBeatsPriority(_ *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", Priority: 50})
	b := h.add(store.EnqueueParams{OrderingKey: "k", Priority: -50})
	j := h.claimID(store.DefaultQueue, a)
	h.claimNone(store.DefaultQueue)
	h.settleOK(verdict(j, store.Complete))
	h.claimID(store.DefaultQueue, b)
}

func testOrderingOnePerKey(t *testing.T, h *harness) {
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	var ps []store.EnqueueParams
	for range 3 {
		for _, k := range keys {
			ps = append(ps, store.EnqueueParams{OrderingKey: k})
		}
		ps = append(ps, store.EnqueueParams{}, store.EnqueueParams{})
	}
	res := h.enqueue(ps...)
	first := map[string]store.ID{}
	for i, r := range res {
		if k := ps[i].OrderingKey; k != "" && first[k].IsZero() {
			first[k] = r.ID
		}
	}
	got := h.claim(store.DefaultQueue, 100)
	if len(got) != len(keys)+6 {
		t.Errorf("claimed %d jobs, want %d (one per key and every job without a key)", len(got), len(keys)+6)
	}
	seen := map[string]bool{}
	for _, j := range got {
		if j.OrderingKey == "" {
			continue
		}
		if seen[j.OrderingKey] {
			t.Errorf("two jobs with ordering key %q in one claim", j.OrderingKey)
		}
		seen[j.OrderingKey] = true
		if j.ID != first[j.OrderingKey] {
			t.Errorf("key %q: claimed %s, want the first enqueued, %s", j.OrderingKey, j.ID, first[j.OrderingKey])
		}
	}
	h.claimNone(store.DefaultQueue)
}

func testOrderingTenants(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", Tenant: "t1"})
	b := h.add(store.EnqueueParams{OrderingKey: "k", Tenant: "t2"})
	c := h.add(store.EnqueueParams{OrderingKey: "k"})
	d := h.add(store.EnqueueParams{OrderingKey: "k", Tenant: "t1"})
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 3 || got[a] == nil || got[b] == nil || got[c] == nil {
		t.Fatalf("claimed %d jobs, want the first of the key in each of three tenants", len(got))
	}
	if got[d] != nil {
		t.Fatal("claimed the second job of tenant t1's key while the first is running")
	}
}

func testOrderingRetry(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k"})
	b := h.add(store.EnqueueParams{OrderingKey: "k"})
	j := h.claimID(store.DefaultQueue, a)
	h.settleOK(failed(j, "boom", h.now().Add(time.Minute)))
	h.wantState(a, store.StateScheduled)
	h.claimNone(store.DefaultQueue)
	h.clock.Advance(time.Minute)
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("after the retry time: claimed %d jobs, want only the retried first job", len(got))
	}
	h.settleOK(verdict(got[a], store.Complete))
	h.claimID(store.DefaultQueue, b)
}

func testOrderingScheduledFirst(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", RunAt: h.now().Add(time.Hour)})
	b := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.claimNone(store.DefaultQueue)
	h.clock.Advance(time.Hour)
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("claimed %d jobs, want only the first of the key", len(got))
	}
	h.settleOK(verdict(got[a], store.Complete))
	h.claimID(store.DefaultQueue, b)
}

func testOrderingFinished(t *testing.T, h *harness) {
	ends := []struct {
		name string
		end  func(j *store.Job)
	}{
		{"cancelled by Cancel", func(j *store.Job) { h.cancelOK(j.ID) }},
		{"cancel verdict", func(j *store.Job) { h.settleOK(verdict(j, store.Cancel)) }},
		{"dead-lettered", func(j *store.Job) { h.settleOK(verdict(j, store.DeadLetter)) }},
		{"out of attempts", func(j *store.Job) { h.settleOK(failed(j, "last", time.Time{})) }},
	}
	for _, e := range ends {
		key := "key " + e.name
		a := h.add(store.EnqueueParams{OrderingKey: key, MaxAttempts: 1})
		b := h.add(store.EnqueueParams{OrderingKey: key})
		e.end(h.claimID(store.DefaultQueue, a))
		if st := h.get(a).State; !st.Finished() {
			t.Fatalf("%s: first job is %s, want finished", e.name, st)
		}
		h.settleOK(verdict(h.claimID(store.DefaultQueue, b), store.Complete))
	}
}

func testOrderingKeepsTurn(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.add(store.EnqueueParams{OrderingKey: "k"})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.Release))
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("after release: claimed %d jobs, want only the released first job", len(got))
	}
	h.clock.Advance(defaultLock + time.Second)
	if r, err := h.s.ReapExpired(h.ctx, 10); err != nil || r.Returned != 1 {
		t.Fatalf("ReapExpired = %+v, %v; want one returned", r, err)
	}
	got = h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("after reaping: claimed %d jobs, want only the reaped first job", len(got))
	}
}

// testOrderingSpansQueues: the key is (tenant, ordering key); the queue is not part of it.
func testOrderingSpansQueues(_ *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{Queue: "q1", OrderingKey: "k", Tenant: "t"})
	b := h.add(store.EnqueueParams{Queue: "q2", OrderingKey: "k", Tenant: "t"})
	h.claimNone("q2")
	h.settleOK(verdict(h.claimID("q1", a), store.Complete))
	h.claimID("q2", b)
}

// testOrderingRequeuedEarlier: a dead job requeued while a later job of its
// key runs has the smaller id, so it is next in line, but it must not run
// until the running one settles: never two running jobs of one key.
func testOrderingRequeuedEarlier(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", MaxAttempts: 1})
	b := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.DeadLetter))
	jb := h.claimID(store.DefaultQueue, b)
	if errs, err := h.s.Requeue(h.ctx, []store.ID{a}); err != nil || errs[0] != nil {
		t.Fatalf("Requeue = %v, %v", errs, err)
	}
	h.claimNone(store.DefaultQueue)
	h.settleOK(verdict(jb, store.Complete))
	h.claimID(store.DefaultQueue, a)
}

// testOrderingDeadHolderBlocks: a job with HoldKeyWhenDead that dies, by
// any road to dead, keeps the later jobs of its key (and only of its key and
// tenant) from running; Cancel refuses it, so it keeps blocking.
func testOrderingDeadHolderBlocks(t *testing.T, h *harness) {
	deaths := []struct {
		name string
		die  func(j *store.Job)
	}{
		{"dead-lettered", func(j *store.Job) { h.settleOK(verdict(j, store.DeadLetter)) }},
		{"out of attempts", func(j *store.Job) { h.settleOK(failed(j, "last", time.Time{})) }},
		{"out of deliveries", func(*store.Job) {
			h.clock.Advance(defaultLock + time.Second)
			h.wantReap(10, store.ReapResult{DeadLettered: 1})
		}},
	}
	for _, d := range deaths {
		key := "key " + d.name
		a := h.add(store.EnqueueParams{OrderingKey: key, HoldKeyWhenDead: true, MaxAttempts: 1, MaxDeliveries: 1})
		b := h.add(store.EnqueueParams{OrderingKey: key})
		otherTenant := h.add(store.EnqueueParams{OrderingKey: key, Tenant: "t2"})
		otherKey := h.add(store.EnqueueParams{OrderingKey: key + " too"})
		got := h.claimSet(store.DefaultQueue, 10)
		if len(got) != 3 || got[a] == nil || got[otherTenant] == nil || got[otherKey] == nil {
			t.Fatalf("%s: claimed %d jobs, want the first of each key", d.name, len(got))
		}
		h.settleOK(verdict(got[otherTenant], store.Complete), verdict(got[otherKey], store.Complete))
		d.die(got[a])
		if j := h.wantState(a, store.StateDead); !j.HoldKeyWhenDead {
			t.Fatalf("%s: the dead job lost HoldKeyWhenDead", d.name)
		}
		h.claimNone(store.DefaultQueue)
		// A later job of another key still runs.
		h.settleOK(verdict(h.claimID(store.DefaultQueue, h.add(store.EnqueueParams{OrderingKey: key + " later"})), store.Complete))
		h.claimNone(store.DefaultQueue)
		if errs := h.cancel(a); !errors.As(errs[0], new(*store.StateError)) {
			t.Fatalf("%s: Cancel of the dead holder = %v, want a *StateError", d.name, errs[0])
		}
		h.claimNone(store.DefaultQueue)
		h.wantState(b, store.StateAvailable)
		// Unblock it for the next death.
		if n, err := h.s.Purge(h.ctx, store.PurgeParams{IDs: []store.ID{a}}); err != nil || n != 1 {
			t.Fatalf("%s: Purge = %d, %v", d.name, n, err)
		}
		h.settleOK(verdict(h.claimID(store.DefaultQueue, b), store.Complete))
	}
}

// testOrderingDeadHolderRequeued: requeueing the dead holder puts it back
// first in its line: it runs before the jobs it blocked, and again blocks
// them if it dies again.
func testOrderingDeadHolderRequeued(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", HoldKeyWhenDead: true, MaxAttempts: 1})
	b := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.DeadLetter))
	h.claimNone(store.DefaultQueue)
	if errs := h.requeue(a); errs[0] != nil {
		t.Fatalf("Requeue: %v", errs[0])
	}
	got := h.claimSet(store.DefaultQueue, 10)
	if len(got) != 1 || got[a] == nil {
		t.Fatalf("after Requeue: claimed %d jobs, want only the requeued holder", len(got))
	}
	h.settleOK(verdict(got[a], store.DeadLetter))
	h.claimNone(store.DefaultQueue)
	if errs := h.requeue(a); errs[0] != nil {
		t.Fatalf("Requeue: %v", errs[0])
	}
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.Complete))
	h.claimID(store.DefaultQueue, b)
}

// testOrderingDeadHolderPurged: purging the dead holder, by ID or by queue,
// lets the next job of its key run, and wakes its queue's waiters.
func testOrderingDeadHolderPurged(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{Queue: "q", OrderingKey: "k", HoldKeyWhenDead: true})
	b := h.add(store.EnqueueParams{Queue: "q", OrderingKey: "k", HoldKeyWhenDead: true})
	c := h.add(store.EnqueueParams{Queue: "q", OrderingKey: "k"})
	h.settleOK(verdict(h.claimID("q", a), store.DeadLetter))
	h.claimNone("q")
	var wake <-chan struct{}
	if n := h.s.Capabilities().Notifier; n != nil {
		wake = n.Available("q")
	}
	if n, err := h.s.Purge(h.ctx, store.PurgeParams{IDs: []store.ID{a}}); err != nil || n != 1 {
		t.Fatalf("Purge by ID = %d, %v", n, err)
	}
	if wake != nil {
		h.wantClosed("Available after purging a dead holder", wake)
	}
	h.gone(a)
	h.settleOK(verdict(h.claimID("q", b), store.DeadLetter))
	h.claimNone("q")
	if n, err := h.s.Purge(h.ctx, store.PurgeParams{Queue: "q"}); err != nil || n != 1 {
		t.Fatalf("Purge of the queue = %d, %v", n, err)
	}
	h.claimID("q", c)
}

// testOrderingDeadHolderLater: a dead holder blocks the jobs after it in
// its line, not an earlier job that was requeued behind its back; a dead
// job without HoldKeyWhenDead blocks nothing.
func testOrderingDeadHolderLater(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{OrderingKey: "k", MaxAttempts: 1})
	b := h.add(store.EnqueueParams{OrderingKey: "k", HoldKeyWhenDead: true})
	c := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.DeadLetter))
	h.settleOK(verdict(h.claimID(store.DefaultQueue, b), store.DeadLetter))
	h.claimNone(store.DefaultQueue)
	if errs := h.requeue(a); errs[0] != nil {
		t.Fatalf("Requeue: %v", errs[0])
	}
	h.settleOK(verdict(h.claimID(store.DefaultQueue, a), store.Complete))
	h.claimNone(store.DefaultQueue)
	h.wantState(c, store.StateAvailable)
}
