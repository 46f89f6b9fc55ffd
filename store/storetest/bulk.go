package storetest

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// bulkTests check a store's store.BulkStore: counts with a cap, and
// cancel, requeue and delete over a filter with the per-job calls'
// semantics. They run when the backend declares Features.Bulk.
var bulkTests = []test{
	{"Count", testBulkCount},
	{"CountInvalid", testBulkCountInvalid},
	{"CancelLive", testBulkCancel},
	{"CancelHolderLosesLock", testBulkCancelRunning},
	{"CancelStates", testBulkCancelStates},
	{"CancelNextOfKeyRuns", testBulkCancelOrdering},
	{"TenantExact", testBulkTenantExact},
	{"RequeueDeadAndCancelled", testBulkRequeue},
	{"RequeueKeyHeldByLiveJob", testBulkRequeueLiveHolder},
	{"RequeueKeyHeldInWindow", testBulkRequeueWindow},
	{"RequeueOnePerKey", testBulkRequeueOnePerKey},
	{"RequeueHolderAmongSelected", testBulkRequeueHolderSelected},
	{"DeleteNotRunning", testBulkDelete},
	{"DeleteDeadHeadFreesKey", testBulkDeleteDeadHead},
	{"DeleteLiveHeadFreesKey", testBulkDeleteLiveHead},
	{"DeleteReleasesSchedule", testBulkDeleteSchedule},
	{"Filters", testBulkFilters},
	{"Invalid", testBulkInvalid},
}

func (h *harness) bulkStore() store.BulkStore {
	h.t.Helper()
	bs := h.s.Capabilities().Bulk
	if bs == nil {
		h.t.Fatal("the backend declares Features.Bulk, but Capabilities().Bulk is nil")
	}
	return bs
}

// bulk runs a bulk action and fails the test on an error.
func (h *harness) bulk(a store.BulkAction, f store.ListParams) int {
	h.t.Helper()
	n, err := h.bulkStore().BulkJobs(h.ctx, a, f)
	if err != nil {
		h.t.Fatalf("BulkJobs(%s, %+v): %v", a, f, err)
	}
	return n
}

// wantBulk runs a bulk action and fails the test unless it changed want jobs.
func (h *harness) wantBulk(a store.BulkAction, f store.ListParams, want int) {
	h.t.Helper()
	if n := h.bulk(a, f); n != want {
		h.t.Fatalf("BulkJobs(%s, %+v) = %d, want %d", a, f, n, want)
	}
}

// count runs CountJobs and fails the test on an error.
func (h *harness) count(f store.ListParams) (int, bool) {
	h.t.Helper()
	n, capped, err := h.bulkStore().CountJobs(h.ctx, f)
	if err != nil {
		h.t.Fatalf("CountJobs(%+v): %v", f, err)
	}
	return n, capped
}

// snapshot returns every job by ID, to check later that a call left
// them as they were.
func (h *harness) snapshot(ids ...store.ID) []*store.Job {
	h.t.Helper()
	out := make([]*store.Job, len(ids))
	for i, id := range ids {
		out[i] = h.get(id)
	}
	return out
}

func (h *harness) unchangedAll(before []*store.Job) {
	h.t.Helper()
	for _, j := range before {
		h.unchanged(j)
	}
}

// mixed fills queue q of tenant with one job in every state and returns
// them by state. Run before any other job of q is available.
func (h *harness) mixed(q, tenant string) map[store.State]store.ID {
	h.t.Helper()
	p := store.EnqueueParams{Queue: q, Tenant: tenant}
	out := map[store.State]store.ID{
		store.StateCompleted: h.finish(p, store.StateCompleted),
		store.StateDead:      h.finish(p, store.StateDead),
		store.StateCancelled: h.finish(p, store.StateCancelled),
	}
	out[store.StateRunning] = h.add(p)
	h.claimID(q, out[store.StateRunning])
	out[store.StateAvailable] = h.add(p)
	sched := p
	sched.RunAt = h.now().Add(time.Hour)
	out[store.StateScheduled] = h.add(sched)
	return out
}

func testBulkCount(t *testing.T, h *harness) {
	h.finish(store.EnqueueParams{Queue: "a"}, store.StateDead)
	h.addN(30, func(i int) store.EnqueueParams {
		return store.EnqueueParams{Queue: []string{"a", "b", "c"}[i%3]}
	})
	for _, c := range []struct {
		name   string
		f      store.ListParams
		n      int
		capped bool
	}{
		{"everything", store.ListParams{}, 31, false},
		{"a queue", store.ListParams{Queue: "a"}, 11, false},
		{"a queue and state", store.ListParams{Queue: "a", States: []store.State{store.StateDead}}, 1, false},
		{"under the cap", store.ListParams{Queue: "b", Limit: 11}, 10, false},
		{"at the cap", store.ListParams{Queue: "b", Limit: 10}, 10, false},
		{"over the cap", store.ListParams{Queue: "b", Limit: 9}, 9, true},
		{"cap of one", store.ListParams{Limit: 1}, 1, true},
		{"none", store.ListParams{Queue: "z", Limit: 5}, 0, false},
		{"cursor, order and cap ignored but the cap", store.ListParams{Queue: "c", After: store.NewID(), Newest: true, Limit: 100}, 10, false},
	} {
		if n, capped := h.count(c.f); n != c.n || capped != c.capped {
			t.Errorf("%s: CountJobs = %d, capped %v; want %d, %v", c.name, n, capped, c.n, c.capped)
		}
	}
}

func testBulkCountInvalid(t *testing.T, h *harness) {
	h.add(store.EnqueueParams{})
	for _, f := range []store.ListParams{
		{Limit: -1},
		{States: []store.State{"bogus"}},
		{CreatedAfter: h.now().Add(time.Second), CreatedBefore: h.now()},
	} {
		if _, _, err := h.bulkStore().CountJobs(h.ctx, f); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CountJobs(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

func testBulkCancel(t *testing.T, h *harness) {
	q := h.mixed("q", "")
	other := h.mixed("other", "")
	keep := h.snapshot(q[store.StateCompleted], q[store.StateDead], q[store.StateCancelled],
		other[store.StateScheduled], other[store.StateAvailable], other[store.StateRunning])
	h.clock.Advance(time.Second)
	h.wantBulk(store.BulkCancel, store.ListParams{Queue: "q"}, 3)
	for _, st := range []store.State{store.StateScheduled, store.StateAvailable, store.StateRunning} {
		got := h.wantState(q[st], store.StateCancelled)
		if !got.FinishedAt.Equal(h.now()) || got.LockToken != 0 || !got.LockedUntil.IsZero() {
			t.Errorf("cancelled %s job: finished %v (want %v), token %v, locked until %v", st, got.FinishedAt, h.now(), got.LockToken, got.LockedUntil)
		}
	}
	h.unchangedAll(keep)
	h.wantBulk(store.BulkCancel, store.ListParams{Queue: "q"}, 0) // nothing live is left
	h.clock.Advance(2 * time.Hour)
	h.claimNone("q")
}

func testBulkCancelRunning(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.wantBulk(store.BulkCancel, store.ListParams{States: []store.State{store.StateRunning}}, 1)
	cancelled := h.wantState(id, store.StateCancelled)
	wantErrors(t, "holder's settles after a bulk cancel", h.settle(verdict(j, store.Complete), failed(j, "x", time.Time{}), verdict(j, store.Release)),
		store.ErrLockLost, store.ErrLockLost, store.ErrLockLost)
	wantErrors(t, "holder's renew after a bulk cancel", h.renew(store.Renewal{ID: id, Token: j.LockToken, LockFor: time.Minute}), store.ErrLockLost)
	h.unchanged(cancelled)
	h.clock.Advance(time.Hour)
	h.wantReap(100, store.ReapResult{})
}

func testBulkCancelStates(_ *testing.T, h *harness) {
	q := h.mixed(store.DefaultQueue, "")
	all := h.snapshot(q[store.StateScheduled], q[store.StateRunning], q[store.StateCompleted], q[store.StateDead], q[store.StateCancelled])
	h.wantBulk(store.BulkCancel, store.ListParams{States: []store.State{store.StateAvailable, store.StateDead}}, 1)
	h.wantState(q[store.StateAvailable], store.StateCancelled)
	h.unchangedAll(all)
	h.wantBulk(store.BulkCancel, store.ListParams{States: []store.State{store.StateCompleted, store.StateDead}}, 0)
	h.unchangedAll(all)
}

func testBulkCancelOrdering(_ *testing.T, h *harness) {
	head := h.add(store.EnqueueParams{OrderingKey: "k", Kind: "head"})
	next := h.add(store.EnqueueParams{OrderingKey: "k", Kind: "next"})
	h.claimID(store.DefaultQueue, head)
	h.claimNone(store.DefaultQueue) // next waits for head
	h.wantBulk(store.BulkCancel, store.ListParams{Kind: "head"}, 1)
	h.claimID(store.DefaultQueue, next)
}

func testBulkTenantExact(t *testing.T, h *harness) {
	t1 := h.mixed("q", "t1")
	var others []store.ID
	for i, tenant := range []string{"", "t10", "t", "T1"} {
		for _, id := range h.mixed("q"+strconv.Itoa(i), tenant) {
			others = append(others, id)
		}
	}
	keep := h.snapshot(others...)
	h.wantBulk(store.BulkCancel, store.ListParams{Tenant: "t1"}, 3)
	if n, _ := h.count(store.ListParams{Tenant: "t1", States: []store.State{store.StateCancelled}}); n != 4 {
		t.Errorf("tenant t1 has %d cancelled jobs after a bulk cancel, want 4", n)
	}
	h.wantBulk(store.BulkRequeue, store.ListParams{Tenant: "t1"}, 5)
	h.wantBulk(store.BulkDelete, store.ListParams{Tenant: "t1"}, 6)
	for _, id := range t1 {
		h.gone(id)
	}
	h.unchangedAll(keep)
}

func testBulkRequeue(t *testing.T, h *harness) {
	dead := h.add(store.EnqueueParams{MaxAttempts: 2, Payload: []byte("p")})
	h.settleOK(failed(h.claimID(store.DefaultQueue, dead), "one", time.Time{}))
	h.settleOK(failed(h.claimID(store.DefaultQueue, dead), "two", time.Time{}))
	h.wantState(dead, store.StateDead)
	q := h.mixed(store.DefaultQueue, "")
	other := h.finish(store.EnqueueParams{Queue: "other"}, store.StateDead)
	keep := h.snapshot(q[store.StateCompleted], q[store.StateRunning], q[store.StateAvailable], q[store.StateScheduled], other)

	h.clock.Advance(time.Minute)
	h.wantBulk(store.BulkRequeue, store.ListParams{Queue: store.DefaultQueue}, 3)
	got := h.wantState(dead, store.StateAvailable)
	if got.Attempts != 0 || got.Deliveries != 0 || got.LockToken != 0 || !got.FinishedAt.IsZero() || got.DeadReason != "" || !got.RunAt.Equal(h.now()) {
		t.Errorf("requeued job: attempts %d, deliveries %d, token %v, finished %v, dead reason %q, run at %v; want zeros and run at %v",
			got.Attempts, got.Deliveries, got.LockToken, got.FinishedAt, got.DeadReason, got.RunAt, h.now())
	}
	if len(got.Errors) != 2 || got.Errors[0].Message != "one" || got.Errors[1].Message != "two" || string(got.Payload) != "p" {
		t.Errorf("requeued job's history %+v, payload %q: want both failures and the payload kept", got.Errors, got.Payload)
	}
	h.wantState(q[store.StateDead], store.StateAvailable)
	h.wantState(q[store.StateCancelled], store.StateAvailable)
	h.unchangedAll(keep)
	// Attempts really start again: one failure retries instead of dead-lettering.
	h.settleOK(verdict(h.claimOne(store.DefaultQueue), store.Complete)) // the available job of mixed
	j := h.claimID(store.DefaultQueue, dead)
	h.settleOK(failed(j, "three", time.Time{}))
	h.wantState(dead, store.StateAvailable)
}

func testBulkRequeueLiveHolder(_ *testing.T, h *harness) {
	old := h.finish(store.EnqueueParams{UniqueKey: "k", Tenant: "t"}, store.StateDead)
	h.add(store.EnqueueParams{UniqueKey: "k", Tenant: "t"}) // holds k, live
	free := h.finish(store.EnqueueParams{Queue: "q1", UniqueKey: "k", Tenant: "u"}, store.StateDead)
	plain := h.finish(store.EnqueueParams{Queue: "q2"}, store.StateDead)
	before := h.get(old)
	h.wantBulk(store.BulkRequeue, store.ListParams{}, 2)
	h.unchanged(before)
	h.wantState(free, store.StateAvailable)
	h.wantState(plain, store.StateAvailable)
}

func testBulkRequeueWindow(t *testing.T, h *harness) {
	// A dead job with k and no window gave k up when it died; a later job
	// keeps k for an hour from its creation, completed or not.
	target := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	h.clock.Advance(time.Minute)
	created := h.now()
	holder := h.add(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, holder), store.Complete))
	before := h.get(target)
	h.clock.Advance(30 * time.Minute)
	h.wantBulk(store.BulkRequeue, store.ListParams{UniqueKey: "k"}, 0)
	h.unchanged(before)

	// Past the window, the holder gives the key up and the requeue takes it.
	h.clock.Set(created.Add(time.Hour))
	h.wantBulk(store.BulkRequeue, store.ListParams{UniqueKey: "k"}, 1)
	h.wantState(target, store.StateAvailable)
	h.wantState(holder, store.StateCompleted)
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0]; !r.Duplicate || r.ID != target {
		t.Errorf("enqueue after the bulk requeue = %+v, want a duplicate of the requeued job %s", r, target)
	}
}

func testBulkRequeueOnePerKey(_ *testing.T, h *harness) {
	first := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	second := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateCancelled)
	third := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	keep := h.snapshot(second, third)
	h.wantBulk(store.BulkRequeue, store.ListParams{}, 1)
	h.wantState(first, store.StateAvailable)
	h.unchangedAll(keep)
	// The key is held again: the others stay as they are on another try.
	h.wantBulk(store.BulkRequeue, store.ListParams{}, 0)
	h.unchangedAll(keep)
}

func testBulkRequeueHolderSelected(_ *testing.T, h *harness) {
	// An early dead job with k and no window, then a later one that keeps
	// k for an hour after it dies: the later one holds the key, so it is
	// the one requeued, although it comes second in ID order.
	early := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	late := h.finish(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour}, store.StateDead)
	before := h.get(early)
	h.wantBulk(store.BulkRequeue, store.ListParams{UniqueKey: "k"}, 1)
	h.wantState(late, store.StateAvailable)
	h.unchanged(before)
}

func testBulkDelete(_ *testing.T, h *harness) {
	q := h.mixed("q", "")
	other := h.mixed("other", "")
	keep := h.snapshot(q[store.StateRunning])
	for _, id := range other {
		keep = append(keep, h.get(id))
	}
	h.wantBulk(store.BulkDelete, store.ListParams{Queue: "q"}, 5)
	for st, id := range q {
		if st != store.StateRunning {
			h.gone(id)
		}
	}
	h.unchangedAll(keep)
	h.wantBulk(store.BulkDelete, store.ListParams{Queue: "q", States: []store.State{store.StateRunning}}, 0)
	h.unchangedAll(keep)
}

func testBulkDeleteDeadHead(_ *testing.T, h *harness) {
	head := h.add(store.EnqueueParams{OrderingKey: "k", HoldKeyWhenDead: true})
	next := h.add(store.EnqueueParams{OrderingKey: "k"})
	h.settleOK(verdict(h.claimID(store.DefaultQueue, head), store.DeadLetter))
	h.claimNone(store.DefaultQueue) // the dead head holds k
	h.wantBulk(store.BulkDelete, store.ListParams{States: []store.State{store.StateDead}}, 1)
	h.gone(head)
	h.claimID(store.DefaultQueue, next)
}

func testBulkDeleteLiveHead(_ *testing.T, h *harness) {
	head := h.add(store.EnqueueParams{OrderingKey: "k", Kind: "head", RunAt: h.now().Add(time.Hour)})
	next := h.add(store.EnqueueParams{OrderingKey: "k", Kind: "next"})
	h.claimNone(store.DefaultQueue) // next waits for the scheduled head
	h.wantBulk(store.BulkDelete, store.ListParams{Kind: "head"}, 1)
	h.gone(head)
	h.claimID(store.DefaultQueue, next)
}

func testBulkDeleteSchedule(t *testing.T, h *harness) {
	if !h.b.Features.Schedules {
		t.Skip("the backend keeps no schedules")
	}
	sc := store.Schedule{ID: "poll", Spec: "@every 1m", Mode: store.ModeFixedDelay, Queue: "sched", Kind: "poll"}
	h.clock.Set(h.upsert(sc)[0].NextRunAt)
	run := h.fireRuns(1).Runs[0].JobID
	if got := h.getSched("", "poll"); !got.NextRunAt.IsZero() || got.LiveJobID != run {
		t.Fatalf("fixed delay with a live run: next %s, live %s; want none and %s", got.NextRunAt, got.LiveJobID, run)
	}
	done := h.clock.Advance(1500 * time.Millisecond)
	h.wantBulk(store.BulkDelete, store.ListParams{Queue: "sched"}, 1)
	h.gone(run)
	want := schedule.ReleaseNext(done, time.Minute)
	if got := h.getSched("", "poll"); !got.NextRunAt.Equal(want) || !got.LiveJobID.IsZero() {
		t.Errorf("after its run was deleted at %s: next %s live %s, want next %s and no live run", done, got.NextRunAt, got.LiveJobID, want)
	}
	h.clock.Set(want)
	h.fireRuns(1)
}

func testBulkFilters(t *testing.T, h *harness) {
	at := h.now()
	a := h.add(store.EnqueueParams{Kind: "a", UniqueKey: "u1", OrderingKey: "o1"})
	h.clock.Advance(time.Second)
	b := h.add(store.EnqueueParams{Kind: "b", OrderingKey: "o2"})
	c := h.add(store.EnqueueParams{Kind: "a", UniqueKey: "u2"})
	for _, tc := range []struct {
		name string
		f    store.ListParams
		want []store.ID
	}{
		{"kind", store.ListParams{Kind: "a"}, []store.ID{a, c}},
		{"unique key", store.ListParams{UniqueKey: "u2"}, []store.ID{c}},
		{"ordering key", store.ListParams{OrderingKey: "o1"}, []store.ID{a}},
		{"created after", store.ListParams{CreatedAfter: at.Add(time.Millisecond)}, []store.ID{b, c}},
		{"created before", store.ListParams{CreatedBefore: at.Add(time.Millisecond)}, []store.ID{a}},
	} {
		if n, _ := h.count(tc.f); n != len(tc.want) {
			t.Errorf("%s: CountJobs = %d, want %d", tc.name, n, len(tc.want))
		}
	}
	h.wantBulk(store.BulkCancel, store.ListParams{CreatedAfter: at.Add(time.Millisecond), Kind: "a"}, 1)
	h.wantState(c, store.StateCancelled)
	h.wantState(a, store.StateAvailable)
	h.wantState(b, store.StateAvailable)
}

func testBulkInvalid(t *testing.T, h *harness) {
	q := h.mixed(store.DefaultQueue, "")
	all := h.snapshot(q[store.StateScheduled], q[store.StateAvailable], q[store.StateRunning], q[store.StateCompleted], q[store.StateDead], q[store.StateCancelled])
	for _, c := range []struct {
		a store.BulkAction
		f store.ListParams
	}{
		{"purge", store.ListParams{}},
		{"", store.ListParams{}},
		{store.BulkDelete, store.ListParams{States: []store.State{"bogus"}}},
		{store.BulkCancel, store.ListParams{CreatedAfter: h.now(), CreatedBefore: h.now().Add(-time.Microsecond)}},
		{store.BulkRequeue, store.ListParams{UniqueKey: "a\x00b"}},
	} {
		if _, err := h.bulkStore().BulkJobs(h.ctx, c.a, c.f); !errors.Is(err, store.ErrInvalid) || store.Code(err) != "invalid" {
			t.Errorf("BulkJobs(%q, %+v) = %v, want ErrInvalid", c.a, c.f, err)
		}
	}
	h.unchangedAll(all)
}
