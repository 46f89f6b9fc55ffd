package storetest

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// capabilityTests check that a store declares what its backend says it
// supports, no more and no less.
var capabilityTests = []test{
	{"MatchDeclared", testCapabilitiesMatch},
}

func testCapabilitiesMatch(t *testing.T, h *harness) {
	c := h.s.Capabilities()
	f := h.b.Features
	for _, cap := range []struct {
		name           string
		declared, have bool
	}{
		{"Schedules", f.Schedules, c.Schedules != nil},
		{"Notify", f.Notify, c.Notifier != nil},
		{"SQLTx", f.SQLTx, c.SQLTx != nil},
		{"Events", f.Events, c.Events != nil},
		{"EventsSQLTx", f.Events && f.SQLTx, c.EventsSQLTx != nil},
		{"Keys", f.Keys, c.Keys != nil},
		{"Leases", f.Leases, c.Leases != nil},
		{"Health", f.Health, c.Health != nil},
		{"ClaimWaiter", f.ClaimWait, c.ClaimWaiter != nil},
		{"Workers", f.Workers, c.Workers != nil},
		{"SQS", f.SQS, c.SQS != nil},
		{"Bulk", f.Bulk, c.Bulk != nil},
		{"Activity", f.Activity, c.Activity != nil},
		{"Audit", f.Audit, c.Audit != nil},
	} {
		switch {
		case cap.declared && !cap.have:
			t.Errorf("the backend declares %s, but the store's Capabilities lack it (a wrapper dropped it?)", cap.name)
		case !cap.declared && cap.have:
			t.Errorf("the store has %s, but the backend does not declare it, so the suite does not test it", cap.name)
		}
	}
	if got, want := len(c.Names()), btoi(f.Schedules)+btoi(f.Notify)+btoi(f.SQLTx)+btoi(f.Events)+btoi(f.Events && f.SQLTx)+btoi(f.Keys)+btoi(f.Leases)+btoi(f.Health)+btoi(f.ClaimWait)+btoi(f.Workers)+
		btoi(f.SQS)+btoi(f.Bulk)+btoi(f.Activity)+btoi(f.Audit); got != want {
		t.Errorf("Capabilities().Names() = %v, want %d names", c.Names(), want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sqlTxTests check enqueue inside a caller's transaction.
var sqlTxTests = []test{
	{"CommitAndRollback", testSQLTxCommitRollback},
	{"RefusedBatchKeepsTxUsable", testSQLTxRefused},
	{"UniqueFor", testSQLTxUniqueFor},
}

func (h *harness) txEnqueuer() store.SQLTxEnqueuer {
	h.t.Helper()
	x := h.s.Capabilities().SQLTx
	if x == nil {
		h.t.Fatal("the backend declares Features.SQLTx, but Capabilities().SQLTx is nil")
	}
	return x
}

func testSQLTxCommitRollback(t *testing.T, h *harness) {
	x := h.txEnqueuer()
	tx := h.b.BeginTx(t, h.s)
	res, err := x.EnqueueTx(h.ctx, tx, []store.EnqueueParams{{Kind: "k"}, {Kind: "k", UniqueKey: "u"}})
	if err != nil || len(res) != 2 {
		t.Fatalf("EnqueueTx: %v %v", res, err)
	}
	h.wantEmpty() // invisible until the commit
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	h.wantState(res[0].ID, store.StateAvailable)
	h.wantState(res[1].ID, store.StateAvailable)

	tx = h.b.BeginTx(t, h.s)
	dup, err := x.EnqueueTx(h.ctx, tx, []store.EnqueueParams{{Kind: "k", UniqueKey: "u"}, {Kind: "gone"}})
	if err != nil || !dup[0].Duplicate || dup[0].ID != res[1].ID {
		t.Fatalf("EnqueueTx of a held unique key: %+v %v, want the holder", dup, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.gone(dup[1].ID)
}

// testSQLTxUniqueFor: a key's window holds in a caller's transaction too,
// and a window that has passed gives the key up to a job of the
// transaction only if it commits.
func testSQLTxUniqueFor(t *testing.T, h *harness) {
	x := h.txEnqueuer()
	held := h.finish(store.EnqueueParams{UniqueKey: "u", UniqueFor: time.Hour}, store.StateCompleted)
	enqueue := func(tx *sql.Tx) store.EnqueueResult {
		t.Helper()
		res, err := x.EnqueueTx(h.ctx, tx, []store.EnqueueParams{{Kind: "k", UniqueKey: "u", UniqueFor: time.Hour}})
		if err != nil || len(res) != 1 {
			t.Fatalf("EnqueueTx: %v %v", res, err)
		}
		return res[0]
	}
	tx := h.b.BeginTx(t, h.s)
	wantDup(t, "in a transaction, within the window", enqueue(tx), held, store.StateCompleted)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	tx = h.b.BeginTx(t, h.s)
	gone := enqueue(tx)
	wantNew(t, "in a transaction, after the window", gone, held)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.gone(gone.ID)
	tx = h.b.BeginTx(t, h.s)
	kept := enqueue(tx)
	wantNew(t, "in a transaction, after the window, again", kept, held)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wantDup(t, "after the commit", h.enqueue(store.EnqueueParams{UniqueKey: "u"})[0], kept.ID, store.StateAvailable)
}

func testSQLTxRefused(t *testing.T, h *harness) {
	x := h.txEnqueuer()
	tx := h.b.BeginTx(t, h.s)
	if _, err := x.EnqueueTx(h.ctx, tx, []store.EnqueueParams{{Kind: "ok"}, {Kind: ""}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("EnqueueTx with a bad item: %v, want ErrInvalid", err)
	}
	res, err := x.EnqueueTx(h.ctx, tx, []store.EnqueueParams{{Kind: "after"}})
	if err != nil {
		t.Fatalf("EnqueueTx after a refused batch: %v (the transaction should stay usable)", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if jobs := h.all(); len(jobs) != 1 || jobs[0].ID != res[0].ID {
		t.Fatalf("after commit: %d jobs, want only the one enqueued after the refusal", len(jobs))
	}
}

// multiTests check two handles on one database: what one writes the other
// sees, fencing holds across them, and they race safely.
var multiTests = []test{
	{"EnqueueHereClaimThere", testMultiEnqueueClaim},
	{"FencingAcrossHandles", testMultiFencing},
	{"ReapAcrossHandles", testMultiReap},
	{"RacingClaimers", testMultiRacingClaims},
	{"CloseOneHandle", testMultiCloseOne},
	{"UniqueFor", testMultiUniqueFor},
}

func testMultiEnqueueClaim(_ *testing.T, h *harness) {
	b := h.other()
	id := h.add(store.EnqueueParams{Queue: "q"})
	j := b.claimID("q", id)
	h.settleOK(verdict(j, store.Complete))
	b.wantState(id, store.StateCompleted)
}

func testMultiFencing(t *testing.T, h *harness) {
	b := h.other()
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	stale := verdict(j, store.Complete)
	stale.Token++
	if errs := b.settle(stale); !errors.Is(errs[0], store.ErrLockLost) {
		t.Fatalf("settle with a stale token on the other handle: %v, want ErrLockLost", errs[0])
	}
	before := h.get(id)
	b.unchanged(before)
	b.settleOK(verdict(j, store.Complete))
	h.wantState(id, store.StateCompleted)
}

func testMultiReap(t *testing.T, h *harness) {
	b := h.other()
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock + time.Second)
	b.wantReap(10, store.ReapResult{Returned: 1})
	if errs := h.settle(verdict(j, store.Complete)); !errors.Is(errs[0], store.ErrLockLost) {
		t.Fatalf("settle after the other handle reaped the job: %v, want ErrLockLost", errs[0])
	}
	again := b.claimID(store.DefaultQueue, id)
	if again.Deliveries != 2 {
		t.Errorf("deliveries after reap and reclaim = %d, want 2", again.Deliveries)
	}
}

func testMultiRacingClaims(t *testing.T, h *harness) {
	b := h.other()
	const n = 200
	h.addN(n, func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "race"} })
	var (
		mu  sync.Mutex
		got []store.ID
		wg  sync.WaitGroup
	)
	for _, x := range []*harness{h, b, h, b} {
		wg.Go(func() {
			for {
				jobs, err := x.s.Claim(x.ctx, store.ClaimParams{Queue: "race", Limit: 7, LockFor: defaultLock})
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					got = append(got, j.ID)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(got, func(a, b store.ID) int { return slices.Compare(a[:], b[:]) })
	if len(got) != n || len(slices.Compact(got)) != n {
		t.Fatalf("%d claims of %d jobs by two handles (%d distinct), want each once", len(got), n, len(slices.Compact(got)))
	}
}

// multiNotifyTests check that one handle's changes wake the other's
// waiters, as they would wake another process's.
var multiNotifyTests = []test{
	{"AvailableAcrossHandles", testMultiNotifyAvailable},
	{"FinishedAcrossHandles", testMultiNotifyFinished},
}

func testMultiNotifyAvailable(_ *testing.T, h *harness) {
	b := h.other()
	ch := b.notifier().Available("mail")
	h.add(store.EnqueueParams{Queue: "mail"})
	b.wantClosed("the other handle's Available after an enqueue", ch)
}

func testMultiNotifyFinished(_ *testing.T, h *harness) {
	b := h.other()
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	ch, release := b.notifier().Finished(id)
	defer release()
	h.settleOK(verdict(j, store.Complete))
	b.wantClosed("the other handle's Finished after a completion", ch)
}

// multiScheduleTests race schedulers on two handles.
var multiScheduleTests = []test{
	{"RacingFireAcrossHandles", testMultiFireRace},
}

func testMultiFireRace(t *testing.T, h *harness) {
	b := h.other()
	const n = 200
	var scs []store.Schedule
	for i := range n {
		scs = append(scs, everyMinute(fmt.Sprintf("s%03d", i)))
	}
	h.upsert(scs...)
	var runs []store.FiredRun
	for round := range 3 {
		h.clock.Set(nextMinute.Add(time.Duration(round) * time.Minute))
		runs = append(runs, fireRacing(t, 17, h, b, h, b)...)
		// Finish the runs so the next minute's slots are not skipped.
		for {
			jobs := h.claim("sched", store.MaxClaim)
			if len(jobs) == 0 {
				break
			}
			vs := make([]store.Verdict, len(jobs))
			for i, j := range jobs {
				vs[i] = verdict(j, store.Complete)
			}
			b.settleOK(vs...)
		}
	}
	seen := map[string]bool{}
	for _, r := range runs {
		k := r.Ref.String() + "@" + r.Slot.String()
		if r.Duplicate || seen[k] {
			t.Errorf("slot %s fired twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 3*n {
		t.Fatalf("%d distinct runs, want %d (every schedule once a minute for 3 minutes)", len(seen), 3*n)
	}
}

// testMultiCloseOne: a node that goes away (its handle closed) leaves the
// others working; its own calls are refused with ErrClosed, and a job it
// held comes back through the other handle's reaper.
func testMultiCloseOne(t *testing.T, h *harness) {
	b := h.other()
	held := h.add(store.EnqueueParams{})
	h.claimID(store.DefaultQueue, held)
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: "k"}}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Enqueue on the closed handle: %v, want ErrClosed", err)
	}
	id := b.add(store.EnqueueParams{Queue: "after"})
	b.complete("after", id)
	h.clock.Advance(defaultLock + time.Second)
	b.wantReap(10, store.ReapResult{Returned: 1})
	b.complete(store.DefaultQueue, held)
}
