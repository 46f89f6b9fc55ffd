package storetest

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var claimTests = []test{
	{"ClaimedJob", testClaimFields},
	{"PriorityFirst", testClaimPriority},
	{"ThenRunAt", testClaimRunAt},
	{"ThenEnqueueOrder", testClaimEnqueueOrder},
	{"Limit", testClaimLimit},
	{"InvalidParams", testClaimInvalid},
	{"BoundsAccepted", testClaimBounds},
	{"ScheduledBecomesClaimable", testClaimScheduled},
	{"OrderAmongManyDueJobs", testClaimManyDue},
	{"OnlyItsQueue", testClaimOtherQueues},
	{"PausedQueue", testClaimPaused},
	{"PauseBeforeJobs", testClaimPausedEmpty},
	{"PauseInvalidQueue", testClaimPauseInvalid},
	{"ConcurrentClaimers", testClaimConcurrent},
}

func testClaimFields(t *testing.T, h *harness) {
	p := store.EnqueueParams{
		Queue: "q", Kind: "resize", Payload: []byte("img"), Priority: 3, Tenant: "t",
		UniqueKey: "u", OrderingKey: "o", MaxAttempts: 5, MaxDeliveries: 6,
	}
	id := h.add(p)
	h.clock.Advance(time.Second)
	const lockFor = 45 * time.Second
	jobs := h.claimFor("q", 1, lockFor)
	if len(jobs) != 1 {
		t.Fatalf("Claim returned %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	want := &store.Job{
		ID: id, Queue: "q", Kind: "resize", Payload: []byte("img"), Priority: 3, RunAt: epoch, State: store.StateRunning,
		Tenant: "t", UniqueKey: "u", OrderingKey: "o", MaxAttempts: 5, Deliveries: 1, MaxDeliveries: 6,
		LockToken: j.LockToken, LockedUntil: h.now().Add(lockFor), CreatedAt: epoch,
	}
	if j.LockToken == 0 {
		t.Error("claimed job has a zero LockToken")
	}
	if d := diffJobs(want, j); len(d) != 0 {
		t.Errorf("claimed job: %v", d)
	}
	if d := diffJobs(j, h.get(id)); len(d) != 0 {
		t.Errorf("Get after Claim differs from the claimed job: %v", d)
	}
}

// claimOrder claims one job at a time from queue until none is left and
// returns the IDs in the order they came.
func (h *harness) claimOrder(queue string) []store.ID {
	h.t.Helper()
	var ids []store.ID
	for {
		jobs := h.claim(queue, 1)
		if len(jobs) == 0 {
			return ids
		}
		ids = append(ids, jobs[0].ID)
	}
}

func (h *harness) wantOrder(got, want []store.ID, names map[store.ID]string) {
	h.t.Helper()
	name := func(ids []store.ID) []string {
		var s []string
		for _, id := range ids {
			s = append(s, names[id])
		}
		return s
	}
	if len(got) != len(want) {
		h.t.Fatalf("claimed %v, want %v", name(got), name(want))
	}
	for i := range got {
		if got[i] != want[i] {
			h.t.Fatalf("claimed %v, want %v", name(got), name(want))
		}
	}
}

func testClaimPriority(_ *testing.T, h *harness) {
	prios := []int{5, -5, 0, 100, -100, 0}
	ids := h.addN(len(prios), func(i int) store.EnqueueParams { return store.EnqueueParams{Priority: prios[i]} })
	names := map[store.ID]string{}
	for i, id := range ids {
		names[id] = string(rune('a'+i)) + "(" + strconv.Itoa(prios[i]) + ")"
	}
	want := []store.ID{ids[4], ids[1], ids[2], ids[5], ids[0], ids[3]}
	h.wantOrder(h.claimOrder(store.DefaultQueue), want, names)
}

func testClaimRunAt(_ *testing.T, h *harness) {
	t0 := h.now()
	a := h.add(store.EnqueueParams{RunAt: t0})
	b := h.add(store.EnqueueParams{RunAt: t0.Add(-time.Minute)})
	c := h.add(store.EnqueueParams{RunAt: t0.Add(10 * time.Second)})
	h.clock.Advance(20 * time.Second)
	d := h.add(store.EnqueueParams{})
	e := h.add(store.EnqueueParams{RunAt: t0.Add(5 * time.Second)})
	f := h.add(store.EnqueueParams{Priority: -1})
	names := map[store.ID]string{a: "a(t0)", b: "b(t0-1m)", c: "c(t0+10s)", d: "d(t0+20s)", e: "e(t0+5s)", f: "f(prio -1)"}
	h.wantOrder(h.claimOrder(store.DefaultQueue), []store.ID{f, b, a, e, c, d}, names)
}

func testClaimEnqueueOrder(_ *testing.T, h *harness) {
	ids := h.addN(30, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	for range 10 {
		ids = append(ids, h.add(store.EnqueueParams{}))
	}
	names := map[store.ID]string{}
	for i, id := range ids {
		names[id] = strconv.Itoa(i)
	}
	h.wantOrder(h.claimOrder(store.DefaultQueue), ids, names)
}

func testClaimLimit(t *testing.T, h *harness) {
	ids := h.addN(10, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	first := h.claim(store.DefaultQueue, 3)
	if len(first) != 3 {
		t.Fatalf("Claim(limit 3) returned %d jobs", len(first))
	}
	got := map[store.ID]bool{}
	for _, j := range first {
		got[j.ID] = true
	}
	for _, id := range ids[:3] {
		if !got[id] {
			t.Errorf("Claim(limit 3) did not return %s, one of the first three in line", id)
		}
	}
	// Limit 0 means the default, one job.
	def, err := h.s.Claim(h.ctx, store.ClaimParams{Queue: store.DefaultQueue, LockFor: defaultLock})
	if err != nil {
		t.Fatalf("Claim(limit 0): %v", err)
	}
	if len(def) != store.DefaultClaimLimit || def[0].ID != ids[3] {
		t.Fatalf("Claim(limit 0) returned %d jobs, want the next one", len(def))
	}
	rest := h.claim(store.DefaultQueue, 100)
	if len(rest) != 6 {
		t.Fatalf("Claim(limit 100) returned %d jobs, want the 6 left", len(rest))
	}
	for _, j := range rest {
		if got[j.ID] || j.ID == def[0].ID {
			t.Errorf("job %s was claimed twice", j.ID)
		}
		got[j.ID] = true
	}
	h.claimNone(store.DefaultQueue)
}

func testClaimInvalid(t *testing.T, h *harness) {
	before := h.get(h.add(store.EnqueueParams{}))
	cases := []struct {
		name string
		p    store.ClaimParams
	}{
		{"zero lock", store.ClaimParams{Queue: store.DefaultQueue, Limit: 1}},
		{"short lock", store.ClaimParams{Queue: store.DefaultQueue, Limit: 1, LockFor: store.MinLockDuration - time.Millisecond}},
		{"long lock", store.ClaimParams{Queue: store.DefaultQueue, Limit: 1, LockFor: store.MaxLockDuration + time.Second}},
		{"negative lock", store.ClaimParams{Queue: store.DefaultQueue, Limit: 1, LockFor: -time.Minute}},
		{"negative limit", store.ClaimParams{Queue: store.DefaultQueue, Limit: -1, LockFor: defaultLock}},
		{"limit too high", store.ClaimParams{Queue: store.DefaultQueue, Limit: store.MaxClaim + 1, LockFor: defaultLock}},
		{"no queue", store.ClaimParams{Limit: 1, LockFor: defaultLock}},
		{"bad queue", store.ClaimParams{Queue: "no such queue!", Limit: 1, LockFor: defaultLock}},
	}
	for _, c := range cases {
		jobs, err := h.s.Claim(h.ctx, c.p)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Claim = %d jobs, %v; want ErrInvalid", c.name, len(jobs), err)
			continue
		}
		if ve := (*store.ValidationError)(nil); !errors.As(err, &ve) {
			t.Errorf("%s: error %v has no *store.ValidationError", c.name, err)
		}
		if len(jobs) != 0 {
			t.Errorf("%s: refused Claim returned %d jobs", c.name, len(jobs))
		}
	}
	h.unchanged(before)
}

func testClaimBounds(t *testing.T, h *harness) {
	h.addN(3, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	short := h.claimFor(store.DefaultQueue, store.MaxClaim, store.MinLockDuration)
	if len(short) != 3 {
		t.Fatalf("Claim(MaxClaim, MinLockDuration) returned %d jobs, want 3", len(short))
	}
	if want := h.now().Add(store.MinLockDuration); !short[0].LockedUntil.Equal(want) {
		t.Errorf("LockedUntil = %v, want %v", short[0].LockedUntil, want)
	}
	id := h.add(store.EnqueueParams{})
	long := h.claimFor(store.DefaultQueue, 1, store.MaxLockDuration)
	if len(long) != 1 || long[0].ID != id {
		t.Fatalf("Claim(MaxLockDuration) returned %d jobs", len(long))
	}
	if want := h.now().Add(store.MaxLockDuration); !long[0].LockedUntil.Equal(want) {
		t.Errorf("LockedUntil = %v, want %v", long[0].LockedUntil, want)
	}
}

func testClaimScheduled(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{RunAt: h.now().Add(10 * time.Second)})
	h.claimNone(store.DefaultQueue)
	h.clock.Advance(10*time.Second - time.Millisecond)
	h.claimNone(store.DefaultQueue)
	h.wantState(id, store.StateScheduled)
	h.clock.Advance(time.Millisecond)
	j := h.claimID(store.DefaultQueue, id)
	if j.State != store.StateRunning || j.Deliveries != 1 {
		t.Errorf("claimed scheduled job: state %s, deliveries %d", j.State, j.Deliveries)
	}
}

// testClaimManyDue: however many scheduled jobs come due at once, a claim
// still hands out the best one by priority then run_at.
func testClaimManyDue(t *testing.T, h *harness) {
	const many = 2 * store.MaxClaim
	t0 := h.now()
	h.addN(many, func(int) store.EnqueueParams { return store.EnqueueParams{RunAt: t0.Add(time.Second)} })
	urgent := h.add(store.EnqueueParams{RunAt: t0.Add(2 * time.Second), Priority: -1})
	h.clock.Advance(3 * time.Second)
	if j := h.claimOne(store.DefaultQueue); j.ID != urgent {
		t.Fatalf("claimed a job of priority %d due at %v; want the priority -1 job among %d due jobs", j.Priority, j.RunAt, many+1)
	}
	if n := len(h.claim(store.DefaultQueue, store.MaxClaim)); n != store.MaxClaim {
		t.Errorf("claimed %d of %d due jobs, want %d", n, many, store.MaxClaim)
	}
}

func testClaimOtherQueues(_ *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{Queue: "q1"})
	b := h.add(store.EnqueueParams{})
	h.claimNone("q2")
	h.claimNone("q1x")
	h.claimID("q1", a)
	h.claimNone("q1")
	h.claimID(store.DefaultQueue, b)
}

func testClaimPaused(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{Queue: "q"})
	other := h.add(store.EnqueueParams{Queue: "other"})
	before := h.get(id)
	for range 2 { // pausing twice is the same as once
		if err := h.s.PauseQueue(h.ctx, "q"); err != nil {
			t.Fatalf("PauseQueue: %v", err)
		}
	}
	h.claimNone("q")
	h.unchanged(before)
	h.claimID("other", other)
	if err := h.s.ResumeQueue(h.ctx, "q"); err != nil {
		t.Fatalf("ResumeQueue: %v", err)
	}
	h.claimID("q", id)
}

func testClaimPausedEmpty(t *testing.T, h *harness) {
	if err := h.s.PauseQueue(h.ctx, "fresh"); err != nil {
		t.Fatalf("PauseQueue of a queue without jobs: %v", err)
	}
	if err := h.s.ResumeQueue(h.ctx, "never-paused"); err != nil {
		t.Fatalf("ResumeQueue of a queue without jobs: %v", err)
	}
	id := h.add(store.EnqueueParams{Queue: "fresh"})
	h.claimNone("fresh")
	if err := h.s.ResumeQueue(h.ctx, "fresh"); err != nil {
		t.Fatalf("ResumeQueue: %v", err)
	}
	h.claimID("fresh", id)
}

func testClaimPauseInvalid(t *testing.T, h *harness) {
	for _, q := range []string{"", "bad queue", strings.Repeat("q", store.MaxNameLen+1)} {
		if err := h.s.PauseQueue(h.ctx, q); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PauseQueue(%q) = %v, want ErrInvalid", q, err)
		}
		if err := h.s.ResumeQueue(h.ctx, q); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ResumeQueue(%q) = %v, want ErrInvalid", q, err)
		}
	}
}

func testClaimConcurrent(t *testing.T, h *harness) {
	const jobs, workers, batch = 1000, 8, 16
	ids := h.addN(jobs, func(int) store.EnqueueParams { return store.EnqueueParams{Kind: "load"} })
	var (
		mu      sync.Mutex // guards claims, tokens, errs
		claims  = map[store.ID]int{}
		tokens  = map[store.LockToken]bool{}
		errs    []error
		wg      sync.WaitGroup
		startCh = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-startCh
			for {
				got, err := h.s.Claim(h.ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: batch, LockFor: time.Minute, Worker: "w" + strconv.Itoa(w)})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if len(got) == 0 {
					return
				}
				vs := make([]store.Verdict, len(got))
				mu.Lock()
				for i, j := range got {
					claims[j.ID]++
					if tokens[j.LockToken] {
						errs = append(errs, errors.New("lock token "+j.LockToken.String()+" handed out twice"))
					}
					tokens[j.LockToken] = true
					vs[i] = verdict(j, store.Complete)
				}
				mu.Unlock()
				res, err := h.s.Settle(h.ctx, vs)
				if err == nil {
					err = errors.Join(res...)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	close(startCh)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent claimers: %v", err)
	}
	for _, id := range ids {
		if n := claims[id]; n != 1 {
			t.Errorf("job %s was claimed %d times, want once", id, n)
		}
	}
	if len(claims) != jobs {
		t.Errorf("%d distinct jobs claimed, want %d", len(claims), jobs)
	}
	done := h.list(store.ListParams{States: []store.State{store.StateCompleted}, Limit: store.MaxListLimit})
	if len(done) != jobs {
		t.Errorf("%d jobs completed, want %d", len(done), jobs)
	}
}
