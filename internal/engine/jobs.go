package engine

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// Store implements store.Store over a Driver, and store.ScheduleStore,
// store.EventStore, store.KeyStore, store.WorkerStore, store.BulkStore,
// store.ActivityStore and store.AuditStore when its driver keeps
// schedules, events, API keys, workers online, bulk actions, activity and
// an audit log. Backends embed it.
type Store struct {
	d      Driver
	sched  ScheduleDriver // nil when the driver keeps no schedules
	ev     EventDriver    // nil when the driver keeps no events
	kd     KeyDriver      // nil when the driver keeps no API keys
	ld     LeaseDriver    // nil when the driver keeps no leases
	hd     HealthDriver   // nil when the driver answers no health checks
	wd     WorkerDriver   // nil when the driver keeps no workers online
	qd     SQSDriver      // nil when the driver keeps no SQS queues
	bd     BulkDriver     // nil when the driver has no bulk actions
	ad     ActivityDriver // nil when the driver keeps no activity
	aud    AuditDriver    // nil when the driver keeps no audit log
	pubs   sync.Map       // topic -> *pubGroups: publishes waiting to be merged
	log    *slog.Logger
	closed atomic.Bool
	// actPruned is when AddActivity last deleted old minutes (Unix
	// microseconds of the store's clock; 0: not yet).
	actPruned atomic.Int64
}

// New returns the store over d. log receives the engine's operational
// messages (a schedule that cannot fire); nil discards them.
func New(d Driver, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{d: d, sched: d.Schedules(), ev: d.Events(), kd: d.Keys(), ld: d.Leases(), hd: d.Health(), wd: d.Workers(), qd: d.SQS(),
		bd: d.Bulk(), ad: d.Activity(), aud: d.Audit(), log: log}
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.ScheduleStore = (*Store)(nil)
	_ store.SQLTxEnqueuer = (*Store)(nil)
)

// Now returns the store's clock: on PostgreSQL, the database's.
func (e *Store) Now() time.Time { return e.d.Now() }

// Capabilities implements store.Store from what the driver offers.
func (e *Store) Capabilities() store.Capabilities {
	c := store.Capabilities{Notifier: e.d.Notifier()}
	if e.sched != nil {
		c.Schedules = e
	}
	if e.d.SQLTx() != nil {
		c.SQLTx = e
	}
	if e.ev != nil {
		c.Events = e
		if e.d.SQLTx() != nil {
			c.EventsSQLTx = e
		}
	}
	if e.kd != nil {
		c.Keys = e
	}
	if e.ld != nil {
		c.Leases = e
	}
	if e.hd != nil {
		c.Health = e
	}
	if e.wd != nil {
		c.Workers = e
	}
	if e.qd != nil {
		c.SQS = e
	}
	if e.bd != nil {
		c.Bulk = e
	}
	if e.ad != nil {
		c.Activity = e
	}
	if e.aud != nil {
		c.Audit = e
	}
	return c
}

// start refuses calls on a closed store or with a finished context.
func (e *Store) start(ctx context.Context) error {
	if e.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Close implements store.Store. It is idempotent.
func (e *Store) Close() error {
	e.closed.Store(true)
	return e.d.Close()
}

// normalizeJobs copies jobs and fills their defaults, returning the
// *store.ItemError of each bad one, joined.
func normalizeJobs(jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueParams, error) {
	jobs = slices.Clone(jobs) // the caller's slice stays as it was
	if err := store.NormalizeAll(jobs, now); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Enqueue implements store.Store.
func (e *Store) Enqueue(ctx context.Context, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	now := e.d.Now()
	fresh := !slices.ContainsFunc(jobs, func(p store.EnqueueParams) bool { return !p.ID.IsZero() || p.UniqueKey != "" || p.HasHistory() })
	jobs, err := normalizeJobs(jobs, now)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	res, err := e.d.InsertJobs(ctx, Insert{Jobs: jobs, Now: now, Fresh: fresh})
	return checkLen(res, len(jobs), "jobs", err)
}

// EnqueueTx implements store.SQLTxEnqueuer when the driver has it.
func (e *Store) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	ti := e.d.SQLTx()
	if ti == nil {
		return nil, fmt.Errorf("%w: enqueueing in a caller's transaction", store.ErrUnsupported)
	}
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return e.EnqueueWith(ctx, jobs, func(jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error) {
		return ti.InsertJobsTx(ctx, tx, jobs, now)
	})
}

// EnqueueWith validates and normalizes jobs as Enqueue does and inserts
// them with insert: for a backend's own kinds of caller transaction (a
// pgx.Tx on PostgreSQL).
func (e *Store) EnqueueWith(ctx context.Context, jobs []store.EnqueueParams, insert func(jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error)) ([]store.EnqueueResult, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	now := e.d.Now()
	jobs, err := normalizeJobs(jobs, now)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	res, err := insert(jobs, now)
	return checkLen(res, len(jobs), "jobs", err)
}

// checkLen passes on a per-item answer after checking it has one entry per
// item: a driver that answers short is a bug, reported, never a panic.
func checkLen[T any](res []T, n int, what string, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	if len(res) != n {
		return nil, fmt.Errorf("spool: store returned %d results for %d %s", len(res), n, what)
	}
	return res, nil
}

// Claim implements store.Store.
func (e *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	jobs, err := e.d.ClaimJobs(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(jobs) > p.Limit {
		return nil, fmt.Errorf("spool: store claimed %d jobs for a limit of %d", len(jobs), p.Limit)
	}
	store.SortClaimed(jobs)
	return jobs, nil
}

// Renew implements store.Store.
func (e *Store) Renew(ctx context.Context, renewals []store.Renewal) ([]error, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(renewals)); err != nil {
		return nil, err
	}
	errs := make([]error, len(renewals))
	valid := false
	for i, r := range renewals {
		errs[i] = store.ValidLockDuration(r.LockFor)
		valid = valid || errs[i] == nil
	}
	if !valid {
		return errs, nil
	}
	if err := e.d.RenewLocks(ctx, renewals, errs); err != nil {
		return nil, err
	}
	return errs, nil
}

// Settle implements store.Store.
func (e *Store) Settle(ctx context.Context, verdicts []store.Verdict) ([]error, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(verdicts)); err != nil {
		return nil, err
	}
	now := e.d.Now()
	vs := make([]store.Verdict, len(verdicts)) // RetryAt resolved; the caller's slice stays as it was
	errs := make([]error, len(verdicts))
	valid := false
	for i := range verdicts {
		vs[i] = verdicts[i]
		errs[i] = vs[i].Normalize(now)
		valid = valid || errs[i] == nil
	}
	if !valid {
		return errs, nil
	}
	if err := e.d.SettleJobs(ctx, vs, errs); err != nil {
		return nil, err
	}
	return errs, nil
}

// ReapExpired implements store.Store.
func (e *Store) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	if err := e.start(ctx); err != nil {
		return store.ReapResult{}, err
	}
	if err := store.CheckReapLimit(limit); err != nil {
		return store.ReapResult{}, err
	}
	return e.d.ReapExpired(ctx, limit)
}

// Get implements store.Store.
func (e *Store) Get(ctx context.Context, id store.ID) (*store.Job, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e.d.GetJob(ctx, id)
}

// GetByUniqueKey implements store.Store.
func (e *Store) GetByUniqueKey(ctx context.Context, tenant, key string) (*store.Job, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckUniqueKeyLookup(tenant, key); err != nil {
		return nil, err
	}
	return e.d.GetByUniqueKey(ctx, tenant, key)
}

// List implements store.Store.
func (e *Store) List(ctx context.Context, p store.ListParams) (*store.ListPage, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	f := Filter(p)
	var jobs []*store.Job
	if parts := byState(f); parts != nil {
		// Each state's part walks that state's index; the page is the
		// first Limit+1 of their union, in the listing's order.
		for _, part := range parts {
			js, err := e.d.ListJobs(ctx, part)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, js...)
		}
		slices.SortFunc(jobs, func(a, b *store.Job) int {
			if f.Newest {
				a, b = b, a
			}
			return slices.Compare(a.ID[:], b.ID[:])
		})
		jobs = jobs[:min(len(jobs), f.Limit+1)]
	} else {
		var err error
		if jobs, err = e.d.ListJobs(ctx, f); err != nil {
			return nil, err
		}
	}
	page := &store.ListPage{Jobs: jobs}
	if len(jobs) > p.Limit {
		page.Jobs = jobs[:p.Limit]
		page.Next = page.Jobs[p.Limit-1].ID
	}
	return page, nil
}

// byState splits a filter into one filter per state when the drivers'
// indexes serve it better so: a filter of several states, or of one
// queue's jobs in every state. Every index of the jobs is partial, by
// state, so a part's rows come from one index, already in ID order for a
// queue's finished jobs; one query over several states would have to
// gather and sort them all. It returns nil when the filter is best run as
// it is.
func byState(f store.ListParams) []store.ListParams {
	states := f.States
	if len(states) == 0 && f.Queue != "" {
		states = store.States
	}
	if len(states) < 2 {
		return nil
	}
	var parts []store.ListParams
	seen := map[store.State]bool{}
	for _, s := range states {
		if seen[s] {
			continue
		}
		seen[s] = true
		part := f
		part.States = []store.State{s}
		parts = append(parts, part)
	}
	return parts
}

// perID runs a per-item driver operation over a checked batch of IDs.
func (e *Store) perID(ctx context.Context, ids []store.ID, op func(context.Context, []store.ID, []error) error) ([]error, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(ids)); err != nil {
		return nil, err
	}
	errs := make([]error, len(ids))
	if len(ids) == 0 {
		return errs, nil
	}
	if err := op(ctx, ids, errs); err != nil {
		return nil, err
	}
	return errs, nil
}

// Cancel implements store.Store.
func (e *Store) Cancel(ctx context.Context, ids []store.ID) ([]error, error) {
	return e.perID(ctx, ids, e.d.CancelJobs)
}

// Requeue implements store.Store.
func (e *Store) Requeue(ctx context.Context, ids []store.ID) ([]error, error) {
	return e.perID(ctx, ids, e.d.RequeueJobs)
}

// Purge implements store.Store.
func (e *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := e.start(ctx); err != nil {
		return 0, err
	}
	if err := p.Check(); err != nil {
		return 0, err
	}
	return e.d.PurgeDead(ctx, p)
}

// PauseQueue implements store.Store.
func (e *Store) PauseQueue(ctx context.Context, queue string) error {
	return e.setPaused(ctx, queue, true)
}

// ResumeQueue implements store.Store.
func (e *Store) ResumeQueue(ctx context.Context, queue string) error {
	return e.setPaused(ctx, queue, false)
}

func (e *Store) setPaused(ctx context.Context, queue string, paused bool) error {
	if err := e.start(ctx); err != nil {
		return err
	}
	if err := store.ValidName("queue", queue, false); err != nil {
		return err
	}
	return e.d.SetQueuePaused(ctx, queue, paused)
}

// Stats implements store.Store: every queue with jobs or settings, sorted by
// name, with a count for every state.
func (e *Store) Stats(ctx context.Context) ([]store.QueueStats, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	c, err := e.d.CountJobs(ctx, store.StatsCountCap)
	if err != nil {
		return nil, err
	}
	now := e.d.Now()
	byQueue := map[string]*store.QueueStats{}
	get := func(q string) *store.QueueStats {
		st, ok := byQueue[q]
		if !ok {
			st = &store.QueueStats{Queue: q, Counts: make(map[store.State]int, len(store.States))}
			for _, s := range store.States {
				st.Counts[s] = 0
			}
			byQueue[q] = st
		}
		return st
	}
	for _, r := range c.Rows {
		if r.N == 0 {
			continue
		}
		st := get(r.Queue)
		st.Counts[r.State] += r.N
		if r.State == store.StateAvailable {
			st.OldestAvailable = max(0, now.Sub(r.Oldest))
		}
	}
	for q, paused := range c.Paused {
		get(q).Paused = paused
	}
	out := make([]store.QueueStats, 0, len(byQueue))
	for _, q := range slices.Sorted(maps.Keys(byQueue)) {
		st := byQueue[q]
		for _, s := range store.States {
			if s.Finished() && st.Counts[s] > store.StatsCountCap {
				st.Counts[s] = store.StatsCountCap
				st.Capped = append(st.Capped, s)
			}
		}
		out = append(out, *st)
	}
	return out, nil
}

// Prune implements store.Store.
func (e *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := e.start(ctx); err != nil {
		return 0, err
	}
	if err := p.Normalize(); err != nil {
		return 0, err
	}
	if p.CompletedBefore.IsZero() && p.CancelledBefore.IsZero() && p.DeadBefore.IsZero() {
		return 0, nil
	}
	return e.d.PruneFinished(ctx, p)
}

// Explain is the reason a fenced write of a job did not apply: ErrLockLost
// when the job exists, else its not-found error. Drivers share it.
func Explain(exists bool, id store.ID) error {
	if exists {
		return store.ErrLockLost
	}
	return store.JobNotFound(id)
}
