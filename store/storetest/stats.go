package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var statsTests = []test{
	{"EmptyStore", testStatsEmpty},
	{"CountsAndAge", testStats},
	{"FinishedCapped", testStatsCapped},
}

var pruneTests = []test{
	{"Cutoffs", testPruneCutoffs},
	{"ZeroCutoffsKeep", testPruneZero},
	{"Limit", testPruneLimit},
}

// stats returns Stats by queue name.
func (h *harness) stats() map[string]store.QueueStats {
	h.t.Helper()
	qs, err := h.s.Stats(h.ctx)
	if err != nil {
		h.t.Fatalf("Stats: %v", err)
	}
	out := map[string]store.QueueStats{}
	for _, q := range qs {
		if _, dup := out[q.Queue]; dup {
			h.t.Fatalf("Stats lists queue %q twice", q.Queue)
		}
		out[q.Queue] = q
	}
	return out
}

func testStatsEmpty(t *testing.T, h *harness) {
	if qs := h.stats(); len(qs) != 0 {
		t.Errorf("Stats of an empty store lists %d queues", len(qs))
	}
}

func testStats(t *testing.T, h *harness) {
	// Queue a: one job in every state. Jobs that will be claimed go first.
	h.finish(store.EnqueueParams{Queue: "a"}, store.StateCompleted)
	h.finish(store.EnqueueParams{Queue: "a"}, store.StateDead)
	h.finish(store.EnqueueParams{Queue: "a"}, store.StateCancelled)
	h.add(store.EnqueueParams{Queue: "a"})
	h.claimFor("a", 1, time.Hour)
	h.add(store.EnqueueParams{Queue: "a"})
	h.add(store.EnqueueParams{Queue: "a", RunAt: h.now().Add(time.Hour)})
	h.clock.Advance(time.Minute)
	h.add(store.EnqueueParams{Queue: "a"})
	// Queue b: one available job, younger.
	h.clock.Advance(2 * time.Minute)
	h.add(store.EnqueueParams{Queue: "b"})
	// Queue c: paused, no jobs. Queue d: paused, then resumed, with a job.
	for _, q := range []string{"c", "d"} {
		if err := h.s.PauseQueue(h.ctx, q); err != nil {
			t.Fatalf("PauseQueue(%q): %v", q, err)
		}
	}
	if err := h.s.ResumeQueue(h.ctx, "d"); err != nil {
		t.Fatalf("ResumeQueue: %v", err)
	}
	h.add(store.EnqueueParams{Queue: "d", RunAt: h.now().Add(time.Hour)})
	h.clock.Advance(2 * time.Minute)

	qs := h.stats()
	want := map[string]struct {
		paused bool
		counts map[store.State]int
		oldest time.Duration
	}{
		"a": {false, map[store.State]int{
			store.StateScheduled: 1, store.StateAvailable: 2, store.StateRunning: 1,
			store.StateCompleted: 1, store.StateCancelled: 1, store.StateDead: 1,
		}, 5 * time.Minute},
		"b": {false, map[store.State]int{store.StateAvailable: 1}, 2 * time.Minute},
		"c": {true, nil, 0},
		"d": {false, map[store.State]int{store.StateScheduled: 1}, 0},
	}
	for name, w := range want {
		q, ok := qs[name]
		if !ok {
			t.Errorf("Stats does not list queue %q", name)
			continue
		}
		if q.Paused != w.paused {
			t.Errorf("queue %q: Paused = %v, want %v", name, q.Paused, w.paused)
		}
		for _, st := range store.States {
			if q.Counts[st] != w.counts[st] {
				t.Errorf("queue %q: %d %s jobs, want %d", name, q.Counts[st], st, w.counts[st])
			}
		}
		if q.OldestAvailable != w.oldest {
			t.Errorf("queue %q: OldestAvailable = %v, want %v", name, q.OldestAvailable, w.oldest)
		}
	}
	for name := range qs {
		if _, ok := want[name]; !ok {
			t.Errorf("Stats lists queue %q, which has neither jobs nor settings", name)
		}
	}

	// Once nothing waits, OldestAvailable is zero again.
	if n := len(h.claim("b", 10)); n != 1 {
		t.Fatalf("claimed %d jobs from b, want 1", n)
	}
	if q := h.stats()["b"]; q.OldestAvailable != 0 || q.Counts[store.StateRunning] != 1 {
		t.Errorf("queue b after its job was claimed: OldestAvailable %v, running %d", q.OldestAvailable, q.Counts[store.StateRunning])
	}
}

func testStatsCapped(t *testing.T, h *harness) {
	// A queue with StatsCountCap cancelled jobs is counted exactly; one
	// more and the count stops at the cap. Live states are never capped.
	ids := h.addN(store.StatsCountCap, func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "big"} })
	avail := h.addN(3, func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "big"} })
	h.cancelOK(ids...)
	h.finish(store.EnqueueParams{Queue: "small"}, store.StateDead)
	q := h.stats()["big"]
	if q.Counts[store.StateCancelled] != store.StatsCountCap || q.Capped != nil || q.Counts[store.StateAvailable] != 3 {
		t.Errorf("queue big at the cap: %d cancelled, %d available, capped %v; want %d, 3 and none",
			q.Counts[store.StateCancelled], q.Counts[store.StateAvailable], q.Capped, store.StatsCountCap)
	}
	h.cancelOK(avail[0])
	q = h.stats()["big"]
	if q.Counts[store.StateCancelled] != store.StatsCountCap || !slices.Equal(q.Capped, []store.State{store.StateCancelled}) || q.Counts[store.StateAvailable] != 2 {
		t.Errorf("queue big past the cap: %d cancelled, %d available, capped %v; want %d, 2 and [cancelled]",
			q.Counts[store.StateCancelled], q.Counts[store.StateAvailable], q.Capped, store.StatsCountCap)
	}
	if small := h.stats()["small"]; small.Counts[store.StateDead] != 1 || small.Capped != nil {
		t.Errorf("queue small: %d dead, capped %v; want 1 and none", small.Counts[store.StateDead], small.Capped)
	}
}

// prune runs Prune and fails the test on error.
func (h *harness) prune(p store.PruneParams) int {
	h.t.Helper()
	n, err := h.s.Prune(h.ctx, p)
	if err != nil {
		h.t.Fatalf("Prune(%+v): %v", p, err)
	}
	return n
}

func testPruneCutoffs(t *testing.T, h *harness) {
	t0 := h.now()
	completedOld := h.finish(store.EnqueueParams{}, store.StateCompleted) // finished at t0
	h.clock.Advance(time.Hour)
	cancelledOld := h.finish(store.EnqueueParams{}, store.StateCancelled) // t0+1h
	h.clock.Advance(time.Hour)
	deadOld := h.finish(store.EnqueueParams{}, store.StateDead) // t0+2h
	h.clock.Advance(time.Hour)
	completedNew := h.finish(store.EnqueueParams{}, store.StateCompleted) // t0+3h
	cancelledNew := h.finish(store.EnqueueParams{}, store.StateCancelled)
	deadNew := h.finish(store.EnqueueParams{}, store.StateDead)
	live := []store.ID{
		h.add(store.EnqueueParams{}),
		h.add(store.EnqueueParams{RunAt: t0.Add(-time.Hour)}),
		h.add(store.EnqueueParams{Queue: "other", RunAt: t0.Add(10 * time.Hour)}),
	}
	h.claimFor(store.DefaultQueue, 1, time.Hour)
	h.clock.Advance(time.Hour)

	// A cutoff equal to finished_at keeps the job: only "before" is deleted.
	if n := h.prune(store.PruneParams{CompletedBefore: t0}); n != 0 {
		t.Errorf("Prune(completed before %v) = %d, want 0", t0, n)
	}
	if n := h.prune(store.PruneParams{CompletedBefore: t0.Add(time.Minute)}); n != 1 {
		t.Errorf("Prune(completed before t0+1m) = %d, want 1", n)
	}
	h.gone(completedOld)
	h.wantState(cancelledOld, store.StateCancelled)

	n := h.prune(store.PruneParams{
		CompletedBefore: t0.Add(150 * time.Minute),
		CancelledBefore: t0.Add(150 * time.Minute),
		DeadBefore:      t0.Add(150 * time.Minute),
	})
	if n != 2 {
		t.Errorf("Prune(everything before t0+2h30m) = %d, want 2", n)
	}
	h.gone(cancelledOld)
	h.gone(deadOld)
	for _, id := range []store.ID{completedNew, cancelledNew, deadNew} {
		h.get(id)
	}

	far := h.now().Add(24 * time.Hour)
	if n := h.prune(store.PruneParams{CompletedBefore: far, CancelledBefore: far, DeadBefore: far}); n != 3 {
		t.Errorf("Prune(everything before tomorrow) = %d, want 3", n)
	}
	for _, id := range live {
		if st := h.get(id).State; !st.Live() {
			t.Errorf("live job %s is %s", id, st)
		}
	}
	if n := len(h.all()); n != len(live) {
		t.Errorf("store holds %d jobs after pruning, want the %d live ones", n, len(live))
	}
}

func testPruneZero(t *testing.T, h *harness) {
	done := h.finish(store.EnqueueParams{}, store.StateCompleted)
	cancelled := h.finish(store.EnqueueParams{}, store.StateCancelled)
	dead := h.finish(store.EnqueueParams{}, store.StateDead)
	h.clock.Advance(time.Hour)
	far := h.now().Add(time.Hour)
	cases := []struct {
		p    store.PruneParams
		kept []store.ID
		gone store.ID
	}{
		{store.PruneParams{CompletedBefore: far}, []store.ID{cancelled, dead}, done},
		{store.PruneParams{DeadBefore: far}, []store.ID{cancelled}, dead},
		{store.PruneParams{CancelledBefore: far}, nil, cancelled},
	}
	if n := h.prune(store.PruneParams{}); n != 0 {
		t.Errorf("Prune with zero cutoffs = %d, want 0", n)
	}
	for _, c := range cases {
		if n := h.prune(c.p); n != 1 {
			t.Errorf("Prune(%+v) = %d, want 1", c.p, n)
		}
		h.gone(c.gone)
		for _, id := range c.kept {
			h.get(id)
		}
	}
}

func testPruneLimit(t *testing.T, h *harness) {
	for range 5 {
		h.finish(store.EnqueueParams{}, store.StateCompleted)
	}
	h.clock.Advance(time.Hour)
	p := store.PruneParams{CompletedBefore: h.now(), Limit: 2}
	for _, want := range []int{2, 2, 1, 0} {
		if n := h.prune(p); n != want {
			t.Fatalf("Prune(limit 2) = %d, want %d", n, want)
		}
	}
	h.wantEmpty()
}
