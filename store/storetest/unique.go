package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// uniqueForTests check EnqueueParams.UniqueFor (a unique key held past the
// job, for a window from its creation) and GetByUniqueKey. They run in the
// Unique group.
var uniqueForTests = []test{
	{"WindowHoldsFinished", testWindowHoldsFinished},
	{"WindowEnds", testWindowEnds},
	{"WindowIsTheHoldersOwn", testWindowIsTheHoldersOwn},
	{"WindowLiveUnchanged", testWindowLiveUnchanged},
	{"WindowWithinBatch", testWindowWithinBatch},
	{"WindowLimits", testWindowLimits},
	{"WindowConcurrentEnqueues", testWindowConcurrent},
	{"WindowConcurrentAfterExpiry", testWindowConcurrentAfterExpiry},
	{"WindowWhileFinishing", testWindowWhileFinishing},
	{"WindowRequeue", testWindowRequeue},
	{"WindowRequeueHolder", testWindowRequeueHolder},
	{"WindowPrunedOrPurged", testWindowPruned},
	{"GetByUniqueKeyNewest", testGetByUniqueKeyNewest},
	{"GetByUniqueKeyHolderFirst", testGetByUniqueKeyHolderFirst},
	{"GetByUniqueKeyNotFound", testGetByUniqueKeyNotFound},
	{"GetByUniqueKeyTenant", testGetByUniqueKeyTenant},
}

// byKey returns GetByUniqueKey's job and fails the test on any error.
func (h *harness) byKey(tenant, key string) *store.Job {
	h.t.Helper()
	j, err := h.s.GetByUniqueKey(h.ctx, tenant, key)
	if err != nil {
		h.t.Fatalf("GetByUniqueKey(%q, %q): %v", tenant, key, err)
	}
	if j == nil || j.UniqueKey != key || j.Tenant != tenant {
		h.t.Fatalf("GetByUniqueKey(%q, %q) = %+v", tenant, key, j)
	}
	return j
}

// wantDup fails the test unless r is a duplicate of job id in state st.
func wantDup(t *testing.T, what string, r store.EnqueueResult, id store.ID, st store.State) {
	t.Helper()
	if !r.Duplicate || r.ID != id || r.State != st {
		t.Errorf("%s: enqueue = %+v, want a duplicate of %s (%s)", what, r, id, st)
	}
}

// wantNew fails the test unless r is a new job, not any of old.
func wantNew(t *testing.T, what string, r store.EnqueueResult, old ...store.ID) {
	t.Helper()
	if r.Duplicate {
		t.Errorf("%s: enqueue = %+v, want a new job", what, r)
	}
	for _, id := range old {
		if r.ID == id {
			t.Errorf("%s: enqueue returned job %s again, want a new job", what, id)
		}
	}
}

// testWindowHoldsFinished: within its window a completed, cancelled or
// dead job still holds its key: enqueues of the key return it, with its
// state, and insert nothing. unique_until is created_at plus UniqueFor.
func testWindowHoldsFinished(t *testing.T, h *harness) {
	for _, st := range []store.State{store.StateCompleted, store.StateCancelled, store.StateDead} {
		key := "window-" + string(st)
		id := h.finish(store.EnqueueParams{UniqueKey: key, UniqueFor: time.Hour}, st)
		j := h.get(id)
		if want := j.CreatedAt.Add(time.Hour); !j.UniqueUntil.Equal(want) {
			t.Errorf("%s job: UniqueUntil = %v, want created_at + 1h = %v", st, j.UniqueUntil, want)
		}
		h.clock.Advance(30 * time.Minute)
		wantDup(t, string(st)+" job, no UniqueFor", h.enqueue(store.EnqueueParams{UniqueKey: key})[0], id, st)
		wantDup(t, string(st)+" job, with UniqueFor", h.enqueue(store.EnqueueParams{UniqueKey: key, UniqueFor: time.Minute, Queue: "other"})[0], id, st)
		h.unchanged(j)
	}
	if n := len(h.all()); n != 3 {
		t.Errorf("store holds %d jobs, want 3", n)
	}
	// A job without UniqueFor has no window.
	if j := h.get(h.finish(store.EnqueueParams{UniqueKey: "plain"}, store.StateCompleted)); !j.UniqueUntil.IsZero() {
		t.Errorf("a job enqueued without UniqueFor has UniqueUntil %v", j.UniqueUntil)
	}
}

// testWindowEnds: the window is [created_at, created_at + UniqueFor): at its
// end the next enqueue makes a new job, which then holds the key; the old
// job's view keeps its unique_until.
func testWindowEnds(t *testing.T, h *harness) {
	old := h.finish(store.EnqueueParams{UniqueKey: "k", UniqueFor: 10 * time.Minute, Payload: []byte(`1`)}, store.StateCompleted)
	before := h.get(old)
	h.clock.Advance(10*time.Minute - time.Millisecond)
	wantDup(t, "a millisecond before the window ends", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], old, store.StateCompleted)
	h.clock.Advance(time.Millisecond)
	r := h.enqueue(store.EnqueueParams{UniqueKey: "k", Payload: []byte(`2`)})[0]
	wantNew(t, "when the window ends", r, old)
	if r.State != store.StateAvailable {
		t.Errorf("the new job is %s, want available", r.State)
	}
	wantDup(t, "while the new job is live", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], r.ID, store.StateAvailable)
	h.unchanged(before)
	if n := len(h.all()); n != 2 {
		t.Errorf("store holds %d jobs, want 2", n)
	}
	// The new job had no window: once it finishes, the key is free.
	h.settleOK(verdict(h.claimID(store.DefaultQueue, r.ID), store.Complete))
	wantNew(t, "after the new job finished", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], old, r.ID)
}

// testWindowIsTheHoldersOwn: the window that counts is the job's that holds
// the key; a duplicate's UniqueFor is not applied to it.
func testWindowIsTheHoldersOwn(t *testing.T, h *harness) {
	short := h.add(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Minute})
	wantDup(t, "a longer window while the short one's job is live", h.enqueue(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour})[0], short, store.StateAvailable)
	if j := h.get(short); !j.UniqueUntil.Equal(j.CreatedAt.Add(time.Minute)) {
		t.Errorf("a duplicate changed the holder's UniqueUntil to %v", j.UniqueUntil)
	}
	h.settleOK(verdict(h.claimID(store.DefaultQueue, short), store.Complete))
	h.clock.Advance(time.Minute)
	long := h.enqueue(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour})[0]
	wantNew(t, "after the short window", long, short)
	h.cancelOK(long.ID)
	h.clock.Advance(59 * time.Minute)
	wantDup(t, "within the new job's hour", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], long.ID, store.StateCancelled)
}

// testWindowLiveUnchanged: a live job holds its key as it always did,
// with or without a window, and past its window while still live.
func testWindowLiveUnchanged(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Minute})
	jobs := h.claimFor(store.DefaultQueue, 1, 2*time.Hour)
	if len(jobs) != 1 || jobs[0].ID != id {
		t.Fatalf("claimed %v, want job %s", jobs, id)
	}
	j := jobs[0]
	h.clock.Advance(time.Hour) // long past the window: a live job still holds the key
	wantDup(t, "a running job past its window", h.enqueue(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Minute})[0], id, store.StateRunning)
	h.settleOK(failed(j, "again", h.now().Add(time.Minute)))
	wantDup(t, "a job waiting to retry past its window", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], id, store.StateScheduled)
	h.clock.Advance(time.Minute)
	h.settleOK(verdict(h.claimID(store.DefaultQueue, id), store.Complete))
	wantNew(t, "once the job finished past its window", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], id)
}

// testWindowWithinBatch: items of one call dedupe on the first, which holds
// the key with its window.
func testWindowWithinBatch(t *testing.T, h *harness) {
	res := h.enqueue(
		store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour},
		store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Minute},
		store.EnqueueParams{UniqueKey: "j", HoldKeyWhenDead: true, OrderingKey: "o"},
		store.EnqueueParams{UniqueKey: "k"},
	)
	wantNew(t, "item 0", res[0])
	wantNew(t, "item 2", res[2], res[0].ID)
	wantDup(t, "item 1", res[1], res[0].ID, store.StateAvailable)
	wantDup(t, "item 3", res[3], res[0].ID, store.StateAvailable)
	if j := h.get(res[2].ID); !j.UniqueUntil.IsZero() || !j.HoldKeyWhenDead {
		t.Errorf("item 2 (no window, holds its ordering key): UniqueUntil %v, HoldKeyWhenDead %v", j.UniqueUntil, j.HoldKeyWhenDead)
	}
	h.cancelOK(res[0].ID)
	h.clock.Advance(59 * time.Minute)
	wantDup(t, "within item 0's hour", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], res[0].ID, store.StateCancelled)
}

// testWindowLimits: UniqueFor needs a unique key and is 0..MaxUniqueFor.
func testWindowLimits(t *testing.T, h *harness) {
	for _, p := range []store.EnqueueParams{
		{Kind: "k", UniqueFor: time.Minute},
		{Kind: "k", UniqueKey: "u", UniqueFor: -time.Second},
		{Kind: "k", UniqueKey: "u", UniqueFor: store.MaxUniqueFor + time.Nanosecond},
	} {
		_, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: "ok"}, p})
		var ve *store.ValidationError
		if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ve) || ve.Field != "unique for" {
			t.Errorf("Enqueue(unique key %q, UniqueFor %v) = %v, want a *ValidationError of field \"unique for\"", p.UniqueKey, p.UniqueFor, err)
		}
		if items := itemErrors(err); len(items) != 1 || items[0].Index != 1 {
			t.Errorf("UniqueFor %v: item errors %v, want one at index 1", p.UniqueFor, items)
		}
	}
	h.wantEmpty()
	id := h.add(store.EnqueueParams{UniqueKey: "max", UniqueFor: store.MaxUniqueFor})
	if j := h.get(id); !j.UniqueUntil.Equal(j.CreatedAt.Add(store.MaxUniqueFor)) {
		t.Errorf("UniqueFor at the limit: UniqueUntil %v, created %v", j.UniqueUntil, j.CreatedAt)
	}
}

// raceEnqueue enqueues p from n goroutines at once, spread over the
// handles, each rounds times in a row, and returns the results. also, when
// not nil, runs in one more goroutine from the same start.
func raceEnqueue(t *testing.T, hs []*harness, n, rounds int, p store.EnqueueParams, also func()) []store.EnqueueResult {
	t.Helper()
	if p.Kind == "" {
		p.Kind = "race"
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		res   = make([]store.EnqueueResult, n*rounds)
		errs  = make([]error, n*rounds)
	)
	for i := range n {
		x := hs[i%len(hs)]
		wg.Go(func() {
			<-start
			for k := i * rounds; k < (i+1)*rounds; k++ {
				r, err := x.s.Enqueue(x.ctx, []store.EnqueueParams{p})
				if err == nil && len(r) != 1 {
					err = fmt.Errorf("%d results for one job", len(r))
				}
				if err == nil {
					res[k] = r[0]
				}
				errs[k] = err
			}
		})
	}
	if also != nil {
		wg.Go(func() {
			<-start
			also()
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: Enqueue: %v", i, err)
		}
	}
	return res
}

// wantOneNew fails the test unless exactly one of res made a new job (not
// any of old) and every other names it.
func wantOneNew(t *testing.T, res []store.EnqueueResult, old ...store.ID) store.ID {
	t.Helper()
	var fresh []store.ID
	for _, r := range res {
		if !r.Duplicate {
			fresh = append(fresh, r.ID)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("%d enqueues made a new job (%v), want exactly 1", len(fresh), fresh)
	}
	for i, r := range res {
		if r.ID != fresh[0] {
			t.Errorf("enqueue %d names job %s, want the new job %s", i, r.ID, fresh[0])
		}
	}
	for _, id := range old {
		if fresh[0] == id {
			t.Errorf("the new job is the old job %s", id)
		}
	}
	return fresh[0]
}

// testWindowConcurrent: concurrent enqueues of one key with a window make
// exactly one job, and once it has finished, concurrent enqueues within
// its window all return it.
func testWindowConcurrent(t *testing.T, h *harness) {
	testWindowRace(t, []*harness{h}, "t")
}

// testWindowRace runs testWindowConcurrent's scenario over the handles hs
// (of one database), with the jobs of tenant in queue tenant.
func testWindowRace(t *testing.T, hs []*harness, tenant string) {
	h := hs[0]
	p := store.EnqueueParams{UniqueKey: "same", Tenant: tenant, Queue: tenant, UniqueFor: time.Hour}
	id := wantOneNew(t, raceEnqueue(t, hs, 16, 1, p, nil))
	if jobs := h.list(store.ListParams{Tenant: tenant}); len(jobs) != 1 {
		t.Fatalf("store holds %d jobs, want 1", len(jobs))
	}
	h.settleOK(verdict(h.claimID(tenant, id), store.Complete))
	h.clock.Advance(30 * time.Minute)
	for i, r := range raceEnqueue(t, hs, 16, 1, p, nil) {
		wantDup(t, fmt.Sprintf("enqueue %d within the window", i), r, id, store.StateCompleted)
	}
	if jobs := h.list(store.ListParams{Tenant: tenant}); len(jobs) != 1 {
		t.Fatalf("store holds %d jobs after enqueues within the window, want 1", len(jobs))
	}
}

// testWindowConcurrentAfterExpiry: when the window of the job holding a key
// has passed, concurrent enqueues of the key make exactly one new job.
func testWindowConcurrentAfterExpiry(t *testing.T, h *harness) {
	testWindowExpiryRace(t, []*harness{h}, "t")
}

func testWindowExpiryRace(t *testing.T, hs []*harness, tenant string) {
	h := hs[0]
	p := store.EnqueueParams{UniqueKey: "same", Tenant: tenant, Queue: tenant, UniqueFor: time.Minute}
	old := h.finish(p, store.StateDead)
	h.clock.Advance(time.Minute)
	id := wantOneNew(t, raceEnqueue(t, hs, 16, 1, p, nil), old)
	if jobs := h.list(store.ListParams{Tenant: tenant}); len(jobs) != 2 {
		t.Fatalf("store holds %d jobs, want the old and the new one", len(jobs))
	}
	h.wantState(id, store.StateAvailable)
	h.wantState(old, store.StateDead)
}

// testWindowWhileFinishing: enqueues racing with the holder's settle, which
// takes it out of the live states, all return the holder: its window holds
// the key across the change.
func testWindowWhileFinishing(t *testing.T, h *harness) {
	testFinishRace(t, []*harness{h}, "t")
}

func testFinishRace(t *testing.T, hs []*harness, tenant string) {
	h := hs[0]
	for round, o := range []store.Outcome{store.Complete, store.DeadLetter, store.Cancel, store.Complete} {
		p := store.EnqueueParams{UniqueKey: fmt.Sprintf("round-%d", round), Tenant: tenant, Queue: tenant}
		held := p
		held.UniqueFor = time.Hour
		id := h.add(held)
		j := h.claimID(tenant, id)
		settle := func() {
			time.Sleep(2 * time.Millisecond)
			if errs, err := h.s.Settle(h.ctx, []store.Verdict{verdict(j, o)}); err != nil || errs[0] != nil {
				t.Errorf("settle %s: %v %v", o, err, errs)
			}
		}
		for i, r := range raceEnqueue(t, hs, 8, 4, p, settle) {
			if !r.Duplicate || r.ID != id {
				t.Errorf("round %d (%s): enqueue %d = %+v, want a duplicate of %s", round, o, i, r, id)
			}
		}
		if jobs := h.list(store.ListParams{Tenant: tenant}); len(jobs) != round+1 {
			t.Fatalf("round %d (%s): store holds %d jobs, want %d", round, o, len(jobs), round+1)
		}
		if st := h.get(id).State; !st.Finished() {
			t.Fatalf("round %d: the holder is %s after the settle", round, st)
		}
	}
}

// testWindowRequeue: a requeue of a dead or cancelled job is refused with
// ErrDuplicate while another job holds its key within that job's window,
// and allowed once the window has passed (the holder gives the key up).
func testWindowRequeue(t *testing.T, h *harness) {
	dead := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	holder := h.finish(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour}, store.StateCompleted)
	errs, err := h.s.Requeue(h.ctx, []store.ID{dead})
	if err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	if !errors.Is(errs[0], store.ErrDuplicate) || store.Code(errs[0]) != "duplicate" {
		t.Fatalf("requeue while another job's window is open: %v, want ErrDuplicate", errs[0])
	}
	if !strings.Contains(errs[0].Error(), holder.String()) {
		t.Errorf("the refusal %q does not name the holder %s", errs[0], holder)
	}
	h.wantState(dead, store.StateDead)
	h.clock.Advance(time.Hour)
	if errs, err := h.s.Requeue(h.ctx, []store.ID{dead}); err != nil || errs[0] != nil {
		t.Fatalf("requeue after the window: %v %v", err, errs)
	}
	h.wantState(dead, store.StateAvailable)
	wantDup(t, "after the requeue", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], dead, store.StateAvailable)
	if j := h.get(holder); !j.UniqueUntil.Equal(j.CreatedAt.Add(time.Hour)) {
		t.Errorf("the old holder's UniqueUntil = %v, want it kept", j.UniqueUntil)
	}
}

// testWindowRequeueHolder: the job holding the key may be requeued inside
// its window; it keeps its window, which still counts from its creation.
func testWindowRequeueHolder(t *testing.T, h *harness) {
	id := h.finish(store.EnqueueParams{UniqueKey: "k", UniqueFor: time.Hour}, store.StateDead)
	created := h.get(id).CreatedAt
	h.clock.Advance(30 * time.Minute)
	if errs, err := h.s.Requeue(h.ctx, []store.ID{id}); err != nil || errs[0] != nil {
		t.Fatalf("requeue of the holder: %v %v", err, errs)
	}
	h.settleOK(verdict(h.claimID(store.DefaultQueue, id), store.Complete))
	wantDup(t, "within the window, after the requeued run", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], id, store.StateCompleted)
	if j := h.get(id); !j.UniqueUntil.Equal(created.Add(time.Hour)) {
		t.Errorf("after the requeue UniqueUntil = %v, want created_at + 1h = %v", j.UniqueUntil, created.Add(time.Hour))
	}
	h.clock.Advance(30 * time.Minute)
	wantNew(t, "an hour after the holder's creation", h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0], id)
}

// testWindowPruned: retention and purges delete finished jobs whatever
// their window, and a deleted job no longer holds its key.
func testWindowPruned(t *testing.T, h *harness) {
	done := h.finish(store.EnqueueParams{UniqueKey: "done", UniqueFor: time.Hour}, store.StateCompleted)
	dead := h.finish(store.EnqueueParams{UniqueKey: "dead", UniqueFor: time.Hour}, store.StateDead)
	h.clock.Advance(time.Second)
	n, err := h.s.Prune(h.ctx, store.PruneParams{CompletedBefore: h.now()})
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 job pruned inside its window", n, err)
	}
	h.gone(done)
	wantNew(t, "after the holder was pruned", h.enqueue(store.EnqueueParams{UniqueKey: "done"})[0], done)
	if n, err := h.s.Purge(h.ctx, store.PurgeParams{IDs: []store.ID{dead}}); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	wantNew(t, "after the holder was purged", h.enqueue(store.EnqueueParams{UniqueKey: "dead"})[0], dead)
}

// testGetByUniqueKeyNewest: without a holder, the newest finished job with
// the key, with its result; a live job once there is one.
func testGetByUniqueKeyNewest(t *testing.T, h *harness) {
	first := h.add(store.EnqueueParams{UniqueKey: "k", Payload: []byte(`1`)})
	v := verdict(h.claimID(store.DefaultQueue, first), store.Complete)
	v.Result = []byte(`{"n":1}`)
	h.settleOK(v)
	if j := h.byKey("", "k"); j.ID != first || !bytes.Equal(j.Result, v.Result) || j.State != store.StateCompleted {
		t.Fatalf("GetByUniqueKey after one job = %s (%s, result %q), want %s with its result", j.ID, j.State, j.Result, first)
	}
	h.clock.Advance(time.Second)
	second := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateCancelled)
	h.clock.Advance(time.Second)
	third := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	if j := h.byKey("", "k"); j.ID != third {
		t.Errorf("GetByUniqueKey after three finished jobs = %s, want the newest, %s (before it %s, %s)", j.ID, third, second, first)
	}
	live := h.add(store.EnqueueParams{UniqueKey: "k", RunAt: h.now().Add(time.Hour)})
	if j := h.byKey("", "k"); j.ID != live || j.State != store.StateScheduled {
		t.Errorf("GetByUniqueKey with a live job = %s (%s), want %s", j.ID, j.State, live)
	}
	// A window's holder.
	held := h.finish(store.EnqueueParams{UniqueKey: "w", UniqueFor: time.Minute}, store.StateCompleted)
	h.clock.Advance(time.Hour) // past the window, nothing newer: still the newest
	if j := h.byKey("", "w"); j.ID != held || j.UniqueUntil.IsZero() {
		t.Errorf("GetByUniqueKey of a held key = %s (UniqueUntil %v), want %s", j.ID, j.UniqueUntil, held)
	}
}

// testGetByUniqueKeyHolderFirst: a requeued older job holds the key, and
// is the answer rather than a newer finished one.
func testGetByUniqueKeyHolderFirst(t *testing.T, h *harness) {
	older := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateDead)
	h.clock.Advance(time.Second)
	newer := h.finish(store.EnqueueParams{UniqueKey: "k"}, store.StateCompleted)
	if j := h.byKey("", "k"); j.ID != newer {
		t.Fatalf("GetByUniqueKey = %s, want the newer job %s", j.ID, newer)
	}
	if errs, err := h.s.Requeue(h.ctx, []store.ID{older}); err != nil || errs[0] != nil {
		t.Fatalf("Requeue: %v %v", err, errs)
	}
	if j := h.byKey("", "k"); j.ID != older || j.State != store.StateAvailable {
		t.Errorf("GetByUniqueKey after the older job was requeued = %s (%s), want %s, which holds the key", j.ID, j.State, older)
	}
}

func testGetByUniqueKeyNotFound(t *testing.T, h *harness) {
	h.add(store.EnqueueParams{UniqueKey: "other"})
	h.add(store.EnqueueParams{})
	_, err := h.s.GetByUniqueKey(h.ctx, "", "missing")
	var nf *store.NotFoundError
	if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &nf) || store.Code(err) != "not_found" {
		t.Errorf("GetByUniqueKey of a key no job has = %v, want a *NotFoundError", err)
	}
	for _, c := range []struct{ tenant, key string }{
		{"", ""},
		{"a b", "k"},
		{"", strings.Repeat("k", store.MaxKeyLen+1)},
		{"", "a\x00b"},
	} {
		if _, err := h.s.GetByUniqueKey(h.ctx, c.tenant, c.key); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetByUniqueKey(%q, %q) = %v, want ErrInvalid", c.tenant, c.key, err)
		}
	}
}

// testGetByUniqueKeyTenant: keys are per tenant.
func testGetByUniqueKeyTenant(t *testing.T, h *harness) {
	a := h.finish(store.EnqueueParams{UniqueKey: "k", Tenant: "t1"}, store.StateCompleted)
	b := h.add(store.EnqueueParams{UniqueKey: "k", Tenant: "t2", UniqueFor: time.Hour})
	if j := h.byKey("t1", "k"); j.ID != a {
		t.Errorf("tenant t1: %s, want %s", j.ID, a)
	}
	if j := h.byKey("t2", "k"); j.ID != b {
		t.Errorf("tenant t2: %s, want %s", j.ID, b)
	}
	for _, tenant := range []string{"", "t3"} {
		if _, err := h.s.GetByUniqueKey(h.ctx, tenant, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tenant %q: %v, want ErrNotFound", tenant, err)
		}
	}
}

// testMultiUniqueFor: the window races of one database's two handles, as
// two processes or nodes enqueue the same key.
func testMultiUniqueFor(t *testing.T, h *harness) {
	hs := []*harness{h, h.other()}
	testWindowRace(t, hs, "enqueues")
	testWindowExpiryRace(t, hs, "expiry")
	testFinishRace(t, hs, "finishing")
}
