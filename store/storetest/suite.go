package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// Backend describes the store under test: how to open it, and what it
// declares it supports.
type Backend struct {
	// Open returns a fresh, empty store whose clock is now. The suite
	// closes it. Required.
	Open func(t *testing.T, now func() time.Time) store.Store

	// Features are the capabilities the backend declares. The suite fails
	// when the store's Capabilities disagree with them, runs the cases of
	// every declared one, and fails (never skips) a case whose capability
	// turns out to be missing.
	Features Features

	// Reopen returns another handle on the database of s, as a second
	// process or node opens it, with clock now; the suite closes it.
	// Required with Features.MultiHandle.
	Reopen func(t *testing.T, s store.Store, now func() time.Time) store.Store

	// CorruptSchedule sets one text column ("spec" or "queue") of the
	// stored schedule ref to value behind the store's back, as a manual
	// edit, a damaged file or a rule tightened by a later release would;
	// the suite uses it to make a schedule this build cannot fire.
	// Required with Features.Schedules.
	CorruptSchedule func(t *testing.T, s store.Store, ref store.ScheduleRef, column, value string)

	// BeginTx begins a transaction on a *sql.DB of the store's database,
	// for EnqueueTx. Required with Features.SQLTx.
	BeginTx func(t *testing.T, s store.Store) *sql.Tx
}

// Features lists the capabilities a backend declares.
type Features struct {
	Schedules bool // Capabilities.Schedules
	Notify    bool // Capabilities.Notifier
	SQLTx     bool // Capabilities.SQLTx
	// Events: Capabilities.Events (and, with SQLTx, Capabilities.EventsSQLTx).
	Events bool
	// Keys: Capabilities.Keys, the API keys of spool serve.
	Keys bool
	// Leases: Capabilities.Leases, short named leases.
	Leases bool
	// Health: Capabilities.Health, the readiness check.
	Health bool
	// ClaimWait: Capabilities.ClaimWaiter, claims that wait for jobs.
	ClaimWait bool
	// Workers: Capabilities.Workers, the heartbeats of workers online.
	Workers bool
	// SQS: Capabilities.SQS, the queues of the SQS facade.
	SQS bool
	// Bulk: Capabilities.Bulk, counts and bulk actions over a filter.
	Bulk bool
	// Activity: Capabilities.Activity, per-minute counts of what workers did.
	Activity bool
	// Audit: Capabilities.Audit, the log of actions taken through spool serve.
	Audit bool

	// MultiHandle: several handles may share one database (other
	// processes, other nodes); the suite runs the racing and failure
	// cases across two handles.
	MultiHandle bool
	// NotifyAcrossHandles: with Notify and MultiHandle, one handle's
	// changes wake another handle's waiters (false for a configuration
	// that only hears its own changes, such as PostgreSQL's PollOnly).
	NotifyAcrossHandles bool
}

// epoch is where every subtest's clock starts: whole seconds, far from the
// real time, so a backend that reads the wall clock instead of now shows up.
var epoch = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// defaultLock is the lock duration the helpers claim with.
const defaultLock = 30 * time.Second

// test is one conformance check; it gets a fresh store.
type test struct {
	name string
	run  func(t *testing.T, h *harness)
}

// Run runs the conformance suite against the stores b opens. Every subtest
// runs in parallel with its own store.
func Run(t *testing.T, b Backend) {
	if b.Open == nil {
		t.Fatal("storetest: Backend.Open is required")
	}
	f := b.Features
	for _, need := range []struct {
		on, have bool
		what     string
	}{
		{f.MultiHandle, b.Reopen != nil, "Features.MultiHandle needs Backend.Reopen"},
		{f.Schedules, b.CorruptSchedule != nil, "Features.Schedules needs Backend.CorruptSchedule"},
		{f.SQLTx, b.BeginTx != nil, "Features.SQLTx needs Backend.BeginTx"},
	} {
		if need.on && !need.have {
			t.Fatal("storetest: " + need.what)
		}
	}
	groups := []struct {
		name  string
		tests []test
		on    bool // the backend declares what the group needs
	}{
		{"Capabilities", capabilityTests, true},
		{"Enqueue", enqueueTests, true},
		{"Metadata", metadataTests, true},
		{"Timing", timingTests, true},
		{"Unique", uniqueTests, true},
		{"Claim", claimTests, true},
		{"Ordering", orderingTests, true},
		{"Settle", settleTests, true},
		{"Renew", renewTests, true},
		{"Reap", reapTests, true},
		{"Read", readTests, true},
		{"Cancel", cancelTests, true},
		{"Requeue", requeueTests, true},
		{"Purge", purgeTests, true},
		{"Stats", statsTests, true},
		{"Prune", pruneTests, true},
		{"Lifecycle", lifecycleTests, true},
		{"Notify", notifyTests, f.Notify},
		{"Schedules", scheduleTests, f.Schedules},
		{"SQLTx", sqlTxTests, f.SQLTx},
		{"Events", eventTests, f.Events},
		{"EventsSQLTx", eventTxTests, f.Events && f.SQLTx},
		{"Keys", keyTests, f.Keys},
		{"Leases", leaseTests, f.Leases},
		{"Health", healthTests, f.Health},
		{"ClaimWait", claimWaitTests, f.ClaimWait},
		{"Workers", workerTests, f.Workers},
		{"SQS", sqsTests, f.SQS},
		{"Bulk", bulkTests, f.Bulk},
		{"Activity", activityTests, f.Activity},
		{"Audit", auditTests, f.Audit},
		{"MultiHandleLeases", multiLeaseTests, f.MultiHandle && f.Leases},
		{"MultiHandleEvents", multiEventTests, f.MultiHandle && f.Events},
		{"MultiHandle", multiTests, f.MultiHandle},
		{"MultiHandleNotify", multiNotifyTests, f.MultiHandle && f.Notify && f.NotifyAcrossHandles},
		{"MultiHandleSchedules", multiScheduleTests, f.MultiHandle && f.Schedules},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if !g.on {
				t.Skip("the backend does not declare what this group needs")
			}
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newHarness(t, b))
				})
			}
		})
	}
}

// harness is one subtest's store, clock and helpers. Helpers fail the test
// on any error they do not expect, so the tests read as the scenario.
type harness struct {
	t     *testing.T
	b     Backend
	s     store.Store
	clock *Clock
	ctx   context.Context
}

func newHarness(t *testing.T, b Backend) *harness {
	t.Helper()
	clock := NewClock(epoch)
	s := b.Open(t, clock.Now)
	if s == nil {
		t.Fatal("Backend.Open returned a nil store")
	}
	closeAtEnd(t, s)
	return &harness{t: t, b: b, s: s, clock: clock, ctx: t.Context()}
}

// closeAtEnd closes s when the test ends.
func closeAtEnd(t *testing.T, s store.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}

// other returns a second handle on the harness's database, with the same
// clock, as another process or node would have.
func (h *harness) other() *harness {
	h.t.Helper()
	s := h.b.Reopen(h.t, h.s, h.clock.Now)
	if s == nil {
		h.t.Fatal("Backend.Reopen returned a nil store")
	}
	closeAtEnd(h.t, s)
	return &harness{t: h.t, b: h.b, s: s, clock: h.clock, ctx: h.ctx}
}

// now is the store's current time.
func (h *harness) now() time.Time { return h.clock.Now() }

// enqueue inserts jobs and fails the test on any error. Jobs without a kind
// get kind "test".
func (h *harness) enqueue(ps ...store.EnqueueParams) []store.EnqueueResult {
	h.t.Helper()
	for i := range ps {
		if ps[i].Kind == "" {
			ps[i].Kind = "test"
		}
	}
	res, err := h.s.Enqueue(h.ctx, ps)
	if err != nil {
		h.t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != len(ps) {
		h.t.Fatalf("Enqueue of %d jobs returned %d results", len(ps), len(res))
	}
	return res
}

// add inserts one job and returns its ID.
func (h *harness) add(p store.EnqueueParams) store.ID {
	h.t.Helper()
	r := h.enqueue(p)[0]
	if r.ID.IsZero() {
		h.t.Fatal("Enqueue returned a zero ID")
	}
	return r.ID
}

// addN inserts n jobs made by mk in one call and returns their IDs.
func (h *harness) addN(n int, mk func(i int) store.EnqueueParams) []store.ID {
	h.t.Helper()
	ps := make([]store.EnqueueParams, n)
	for i := range ps {
		ps[i] = mk(i)
	}
	ids := make([]store.ID, n)
	for i, r := range h.enqueue(ps...) {
		ids[i] = r.ID
	}
	return ids
}

// claim claims up to limit jobs of queue with the default lock duration.
func (h *harness) claim(queue string, limit int) []*store.Job {
	h.t.Helper()
	return h.claimFor(queue, limit, defaultLock)
}

func (h *harness) claimFor(queue string, limit int, lockFor time.Duration) []*store.Job {
	h.t.Helper()
	jobs, err := h.s.Claim(h.ctx, store.ClaimParams{Queue: queue, Limit: limit, LockFor: lockFor, Worker: "storetest"})
	if err != nil {
		h.t.Fatalf("Claim(%q, %d): %v", queue, limit, err)
	}
	if len(jobs) > limit {
		h.t.Fatalf("Claim(%q, %d) returned %d jobs", queue, limit, len(jobs))
	}
	for _, j := range jobs {
		if j == nil {
			h.t.Fatalf("Claim(%q) returned a nil job", queue)
		}
	}
	return jobs
}

// claimOne claims exactly one job of queue and fails the test otherwise.
func (h *harness) claimOne(queue string) *store.Job {
	h.t.Helper()
	jobs := h.claim(queue, 1)
	if len(jobs) != 1 {
		h.t.Fatalf("Claim(%q) returned %d jobs, want 1", queue, len(jobs))
	}
	return jobs[0]
}

// claimID claims one job of queue and fails unless it is id.
func (h *harness) claimID(queue string, id store.ID) *store.Job {
	h.t.Helper()
	j := h.claimOne(queue)
	if j.ID != id {
		h.t.Fatalf("Claim(%q) returned job %s, want %s", queue, j.ID, id)
	}
	return j
}

// claimNone fails the test if a claim of queue returns any job.
func (h *harness) claimNone(queue string) {
	h.t.Helper()
	if jobs := h.claim(queue, store.MaxClaim); len(jobs) != 0 {
		h.t.Fatalf("Claim(%q) returned %d jobs (first %s), want none", queue, len(jobs), jobs[0].ID)
	}
}

// settle applies verdicts and returns the per-item errors; a whole-call
// error fails the test.
func (h *harness) settle(vs ...store.Verdict) []error {
	h.t.Helper()
	errs, err := h.s.Settle(h.ctx, vs)
	if err != nil {
		h.t.Fatalf("Settle: %v", err)
	}
	if len(errs) != len(vs) {
		h.t.Fatalf("Settle of %d verdicts returned %d results", len(vs), len(errs))
	}
	return errs
}

// settleOK applies verdicts and fails the test if any is refused.
func (h *harness) settleOK(vs ...store.Verdict) {
	h.t.Helper()
	for i, err := range h.settle(vs...) {
		if err != nil {
			h.t.Fatalf("Settle item %d (%s of %s): %v", i, vs[i].Outcome, vs[i].ID, err)
		}
	}
}

// verdict builds a verdict for the delivery j.
func verdict(j *store.Job, o store.Outcome) store.Verdict {
	return store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: o}
}

// failed builds a Fail verdict with an error message and retry time.
func failed(j *store.Job, msg string, retryAt time.Time) store.Verdict {
	v := verdict(j, store.Fail)
	v.Error = &store.AttemptError{Message: msg}
	v.RetryAt = retryAt
	return v
}

// get returns a job and fails the test if it cannot.
func (h *harness) get(id store.ID) *store.Job {
	h.t.Helper()
	j, err := h.s.Get(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Get(%s): %v", id, err)
	}
	if j == nil {
		h.t.Fatalf("Get(%s) returned nil", id)
	}
	if j.ID != id {
		h.t.Fatalf("Get(%s) returned job %s", id, j.ID)
	}
	return j
}

// gone fails the test unless Get(id) reports ErrNotFound.
func (h *harness) gone(id store.ID) {
	h.t.Helper()
	if _, err := h.s.Get(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
		h.t.Fatalf("Get(%s) = %v, want ErrNotFound", id, err)
	}
}

// wantState fails the test unless job id is in state want.
func (h *harness) wantState(id store.ID, want store.State) *store.Job {
	h.t.Helper()
	j := h.get(id)
	if j.State != want {
		h.t.Fatalf("job %s is %s, want %s", id, j.State, want)
	}
	return j
}

// list returns every job matching p, following the cursor.
func (h *harness) list(p store.ListParams) []*store.Job {
	h.t.Helper()
	var all []*store.Job
	for range 10_000 {
		page, err := h.s.List(h.ctx, p)
		if err != nil {
			h.t.Fatalf("List(%+v): %v", p, err)
		}
		all = append(all, page.Jobs...)
		if page.Next.IsZero() {
			return all
		}
		p.After = page.Next
	}
	h.t.Fatal("List: cursor never ended")
	return nil
}

// all returns every job in the store.
func (h *harness) all() []*store.Job {
	h.t.Helper()
	return h.list(store.ListParams{Limit: store.MaxListLimit})
}

// wantEmpty fails the test if the store holds any job.
func (h *harness) wantEmpty() {
	h.t.Helper()
	if jobs := h.all(); len(jobs) != 0 {
		h.t.Fatalf("store holds %d jobs (first %s, kind %q), want none", len(jobs), jobs[0].ID, jobs[0].Kind)
	}
}

// finish drives a new job to a finished state: completed and dead by
// claiming it (it must be first in line in its queue), cancelled by Cancel.
func (h *harness) finish(p store.EnqueueParams, st store.State) store.ID {
	h.t.Helper()
	id := h.add(p)
	queue := cmpOr(p.Queue, store.DefaultQueue)
	switch st {
	case store.StateCompleted:
		h.settleOK(verdict(h.claimID(queue, id), store.Complete))
	case store.StateDead:
		v := verdict(h.claimID(queue, id), store.DeadLetter)
		v.Error = &store.AttemptError{Message: "dead on purpose"}
		h.settleOK(v)
	case store.StateCancelled:
		h.cancelOK(id)
	default:
		h.t.Fatalf("finish: %s is not a finished state", st)
	}
	h.wantState(id, st)
	return id
}

// cancelOK cancels jobs and fails the test if any is refused.
func (h *harness) cancelOK(ids ...store.ID) {
	h.t.Helper()
	errs, err := h.s.Cancel(h.ctx, ids)
	if err != nil {
		h.t.Fatalf("Cancel: %v", err)
	}
	if len(errs) != len(ids) {
		h.t.Fatalf("Cancel of %d IDs returned %d results", len(ids), len(errs))
	}
	for i, err := range errs {
		if err != nil {
			h.t.Fatalf("Cancel(%s): %v", ids[i], err)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// itemErrors returns every *store.ItemError in err's tree, in order.
func itemErrors(err error) []*store.ItemError {
	var out []*store.ItemError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) { //nolint:errorlint // walks the tree itself to collect every ItemError; errors.As stops at the first
		case nil:
		case *store.ItemError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// idLess reports whether a sorts before b.
func idLess(a, b store.ID) bool { return bytes.Compare(a[:], b[:]) < 0 }

// diffJobs describes how two snapshots of a job differ; empty when equal.
func diffJobs(a, b *store.Job) []string {
	var d []string
	add := func(field string, x, y any) { d = append(d, fmt.Sprintf("%s: %v -> %v", field, x, y)) }
	if a.ID != b.ID {
		add("ID", a.ID, b.ID)
	}
	if a.Queue != b.Queue {
		add("Queue", a.Queue, b.Queue)
	}
	if a.Kind != b.Kind {
		add("Kind", a.Kind, b.Kind)
	}
	if !bytes.Equal(a.Payload, b.Payload) {
		add("Payload", len(a.Payload), len(b.Payload))
	}
	if a.Priority != b.Priority {
		add("Priority", a.Priority, b.Priority)
	}
	if !a.RunAt.Equal(b.RunAt) {
		add("RunAt", a.RunAt, b.RunAt)
	}
	if a.State != b.State {
		add("State", a.State, b.State)
	}
	if a.Tenant != b.Tenant {
		add("Tenant", a.Tenant, b.Tenant)
	}
	if a.UniqueKey != b.UniqueKey {
		add("UniqueKey", a.UniqueKey, b.UniqueKey)
	}
	if a.OrderingKey != b.OrderingKey {
		add("OrderingKey", a.OrderingKey, b.OrderingKey)
	}
	if !a.UniqueUntil.Equal(b.UniqueUntil) {
		add("UniqueUntil", a.UniqueUntil, b.UniqueUntil)
	}
	if a.Attempts != b.Attempts {
		add("Attempts", a.Attempts, b.Attempts)
	}
	if a.MaxAttempts != b.MaxAttempts {
		add("MaxAttempts", a.MaxAttempts, b.MaxAttempts)
	}
	if a.Deliveries != b.Deliveries {
		add("Deliveries", a.Deliveries, b.Deliveries)
	}
	if a.MaxDeliveries != b.MaxDeliveries {
		add("MaxDeliveries", a.MaxDeliveries, b.MaxDeliveries)
	}
	if a.LockToken != b.LockToken {
		add("LockToken", a.LockToken, b.LockToken)
	}
	if !a.LockedUntil.Equal(b.LockedUntil) {
		add("LockedUntil", a.LockedUntil, b.LockedUntil)
	}
	if len(a.Errors) != len(b.Errors) {
		add("len(Errors)", len(a.Errors), len(b.Errors))
	} else {
		for i := range a.Errors {
			x, y := a.Errors[i], b.Errors[i]
			if !x.At.Equal(y.At) || x.Attempt != y.Attempt || x.Message != y.Message || x.Stack != y.Stack {
				add(fmt.Sprintf("Errors[%d]", i), x, y)
			}
		}
	}
	if !bytes.Equal(a.Result, b.Result) {
		add("Result", len(a.Result), len(b.Result))
	}
	if a.DeadReason != b.DeadReason {
		add("DeadReason", a.DeadReason, b.DeadReason)
	}
	if a.HoldKeyWhenDead != b.HoldKeyWhenDead {
		add("HoldKeyWhenDead", a.HoldKeyWhenDead, b.HoldKeyWhenDead)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		add("CreatedAt", a.CreatedAt, b.CreatedAt)
	}
	if !a.FinishedAt.Equal(b.FinishedAt) {
		add("FinishedAt", a.FinishedAt, b.FinishedAt)
	}
	return d
}

// unchanged fails the test if job id differs from the snapshot before.
func (h *harness) unchanged(before *store.Job) {
	h.t.Helper()
	if d := diffJobs(before, h.get(before.ID)); len(d) != 0 {
		h.t.Fatalf("job %s changed: %v", before.ID, d)
	}
}
