package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spoolrun/spool/store"
)

// The dashboard's storage (migrations 0009 and 0010): bulk actions over a
// filter, per-minute activity and the audit log. The engine checks the
// input and decides which states an action touches; a driver runs each
// action as one statement (SQLite, which has no data-modifying CTEs, runs
// a bulk requeue as two statements in one transaction: see its driver).

// BulkDriver counts and acts on the jobs a filter selects (store.BulkStore).
// Filters are checked (see Filter), and their States are exactly the
// states the action may touch: never empty, never running for a delete.
type BulkDriver interface {
	// CountFiltered counts the jobs f selects, at most limit when limit > 0.
	CountFiltered(ctx context.Context, f store.ListParams, limit int) (int, error)

	// BulkCancel cancels the jobs f selects (live ones: running jobs lose
	// their lock, as Cancel does) and returns how many.
	BulkCancel(ctx context.Context, f store.ListParams) (int, error)

	// BulkRequeue requeues the jobs f selects (dead or cancelled ones), as
	// RequeueJobs does, and returns how many. A job with a unique key is
	// skipped while another job holds the key: a live one, or a finished
	// one whose unique_until is after now (a finished holder whose window
	// has passed gives the key up). Of several selected jobs with the same
	// (tenant, unique key), only one is requeued: the one holding the key,
	// else the first in ID order.
	BulkRequeue(ctx context.Context, f store.ListParams) (int, error)

	// BulkDelete deletes the jobs f selects (never running ones) and
	// returns how many. A deleted live job that a schedule counts as its
	// run releases the schedule as finishing would; deleting a dead job
	// that holds its ordering key, or the live head of a key, lets the
	// key's next job run.
	BulkDelete(ctx context.Context, f store.ListParams) (int, error)
}

// ActivityDriver keeps per-minute activity (store.ActivityStore).
type ActivityDriver interface {
	// AddActivity adds counts (checked, one entry per queue, none empty)
	// to the rows of minute, creating them as needed. With pruneBefore
	// set, it first deletes the rows of minutes before it.
	AddActivity(ctx context.Context, minute time.Time, counts []store.QueueActivity, pruneBefore time.Time) error

	// ListActivity returns the rows of minutes at or after since, oldest
	// first, then by queue (byte-wise); with prefixes, only queues that
	// start with one of them.
	ListActivity(ctx context.Context, since time.Time, prefixes []string) ([]store.ActivityMinute, error)
}

// PickupColumns names the activity table's histogram columns on both
// backends (migration 0009): pickup_0, ..., pickup_15, one per bucket of
// store.QueueActivity.Pickup.
var PickupColumns = func() []string {
	out := make([]string, store.NumPickupBuckets)
	for i := range out {
		out[i] = "pickup_" + strconv.Itoa(i)
	}
	return out
}()

// AuditDriver keeps the audit log (store.AuditStore).
type AuditDriver interface {
	// InsertAudit stores a checked entry whose At is set and returns its
	// new ID, larger than every ID before it.
	InsertAudit(ctx context.Context, e *store.AuditEntry) (int64, error)

	// ListAudit returns up to p.Limit entries with IDs below p.Before (any
	// with 0), newest first: tenant p.Tenant's, or all with AllTenants.
	ListAudit(ctx context.Context, p store.AuditListParams) ([]*store.AuditEntry, error)
}

var (
	_ store.BulkStore     = (*Store)(nil)
	_ store.ActivityStore = (*Store)(nil)
	_ store.AuditStore    = (*Store)(nil)
)

// Filter normalizes a checked filter for the drivers: created bounds in
// UTC and whole microseconds, as both backends keep created_at, rounded up
// so that "at or after" and "before" keep their meaning.
func Filter(f store.ListParams) store.ListParams {
	f.CreatedAfter, f.CreatedBefore = ceilMicro(f.CreatedAfter), ceilMicro(f.CreatedBefore)
	return f
}

func ceilMicro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	r := t.Truncate(time.Microsecond)
	if r.Before(t) {
		r = r.Add(time.Microsecond)
	}
	return r.UTC()
}

// The states each bulk action may touch.
var (
	liveStates     = []store.State{store.StateScheduled, store.StateAvailable, store.StateRunning}
	requeueStates  = []store.State{store.StateCancelled, store.StateDead}
	deletableState = []store.State{store.StateScheduled, store.StateAvailable, store.StateCompleted, store.StateCancelled, store.StateDead}
)

// narrow returns the states of want that f selects, in want's order.
func narrow(f store.ListParams, want []store.State) []store.State {
	if len(f.States) == 0 {
		return slices.Clone(want)
	}
	var out []store.State
	for _, s := range want {
		if slices.Contains(f.States, s) {
			out = append(out, s)
		}
	}
	return out
}

// bulk returns the driver's bulk actions, refusing a closed store.
func (e *Store) bulk(ctx context.Context) (BulkDriver, error) {
	if e.bd == nil {
		return nil, fmt.Errorf("%w: bulk actions", store.ErrUnsupported)
	}
	return e.bd, e.start(ctx)
}

// CountJobs implements store.BulkStore.
func (e *Store) CountJobs(ctx context.Context, f store.ListParams) (int, bool, error) {
	bd, err := e.bulk(ctx)
	if err != nil {
		return 0, false, err
	}
	if err := f.CheckCount(); err != nil {
		return 0, false, err
	}
	limit := f.Limit
	f = Filter(f)
	f.After, f.Limit, f.Newest = store.ID{}, 0, false
	parts := byState(f)
	if parts == nil {
		parts = []store.ListParams{f}
	}
	n := 0
	for _, part := range parts {
		probe := 0
		if limit > 0 {
			probe = limit + 1 - n // one more than the cap tells that more match
		}
		c, err := bd.CountFiltered(ctx, part, probe)
		if err != nil {
			return 0, false, err
		}
		if n += c; limit > 0 && n > limit {
			return limit, true, nil
		}
	}
	return n, false, nil
}

// BulkJobs implements store.BulkStore.
func (e *Store) BulkJobs(ctx context.Context, action store.BulkAction, f store.ListParams) (int, error) {
	bd, err := e.bulk(ctx)
	if err != nil {
		return 0, err
	}
	if err := action.Check(); err != nil {
		return 0, err
	}
	if err := f.CheckFilter(); err != nil {
		return 0, err
	}
	f = Filter(f)
	f.After, f.Limit, f.Newest = store.ID{}, 0, false
	var op func(context.Context, store.ListParams) (int, error)
	switch action {
	case store.BulkCancel:
		f.States, op = narrow(f, liveStates), bd.BulkCancel
	case store.BulkRequeue:
		f.States, op = narrow(f, requeueStates), bd.BulkRequeue
	default:
		f.States, op = narrow(f, deletableState), bd.BulkDelete
	}
	if len(f.States) == 0 {
		return 0, nil // the filter selects no job the action applies to
	}
	return op(ctx, f)
}

// activityPruneEvery is how often, at most, a store deletes old activity:
// AddActivity runs every few seconds per worker, and the rows it would
// delete pile up by one a minute per queue.
const activityPruneEvery = 10 * time.Minute

// activity returns the driver's activity storage, refusing a closed store.
func (e *Store) activity(ctx context.Context) (ActivityDriver, error) {
	if e.ad == nil {
		return nil, fmt.Errorf("%w: activity", store.ErrUnsupported)
	}
	return e.ad, e.start(ctx)
}

// AddActivity implements store.ActivityStore: the counts are checked (a
// refused call changes nothing), merged per queue, and added to the
// minute holding the store's now. Every activityPruneEvery or so, the call
// also deletes the minutes older than store.ActivityRetention.
func (e *Store) AddActivity(ctx context.Context, counts []store.QueueActivity) error {
	ad, err := e.activity(ctx)
	if err != nil {
		return err
	}
	if err := store.CheckBatch(len(counts)); err != nil {
		return err
	}
	var merged []store.QueueActivity
	at := map[string]int{}
	for i := range counts {
		c := &counts[i]
		if err := c.Check(); err != nil {
			return &store.ItemError{Index: i, Err: err}
		}
		if c.Empty() {
			continue
		}
		if j, ok := at[c.Queue]; ok {
			merged[j].Add(c)
			continue
		}
		at[c.Queue] = len(merged)
		merged = append(merged, *c)
	}
	if len(merged) == 0 {
		return nil
	}
	slices.SortFunc(merged, func(a, b store.QueueActivity) int { return cmp.Compare(a.Queue, b.Queue) })
	now := e.d.Now().UTC()
	var prune time.Time
	if last := e.actPruned.Load(); now.UnixMicro()-last >= activityPruneEvery.Microseconds() && e.actPruned.CompareAndSwap(last, now.UnixMicro()) {
		prune = now.Add(-store.ActivityRetention).Truncate(time.Minute)
	}
	if err := ad.AddActivity(ctx, now.Truncate(time.Minute), merged, prune); err != nil {
		if !prune.IsZero() {
			e.actPruned.Store(0) // prune again next time
		}
		return err
	}
	return nil
}

// Activity implements store.ActivityStore. since is truncated to the
// minute, and never reaches back past store.ActivityRetention, so minutes
// a store has not pruned yet are not returned either.
func (e *Store) Activity(ctx context.Context, tenant string, since time.Time) ([]store.ActivityMinute, error) {
	ad, err := e.activity(ctx)
	if err != nil {
		return nil, err
	}
	prefixes, err := store.ActivityPrefixes(tenant)
	if err != nil {
		return nil, err
	}
	oldest := e.d.Now().UTC().Add(-store.ActivityRetention).Truncate(time.Minute)
	since = since.UTC().Truncate(time.Minute)
	if since.Before(oldest) {
		since = oldest
	}
	return ad.ListActivity(ctx, since, prefixes)
}

// audit returns the driver's audit log, refusing a closed store.
func (e *Store) audit(ctx context.Context) (AuditDriver, error) {
	if e.aud == nil {
		return nil, fmt.Errorf("%w: audit log", store.ErrUnsupported)
	}
	return e.aud, e.start(ctx)
}

// RecordAudit implements store.AuditStore: the entry is checked (a refused
// one is not recorded), stamped with the store's clock to the microsecond,
// and given the next ID.
func (e *Store) RecordAudit(ctx context.Context, entry store.AuditEntry) (*store.AuditEntry, error) {
	aud, err := e.audit(ctx)
	if err != nil {
		return nil, err
	}
	if err := entry.Normalize(); err != nil {
		return nil, err
	}
	entry.At = keyTime(e.d.Now())
	id, err := aud.InsertAudit(ctx, &entry)
	if err != nil {
		return nil, err
	}
	entry.ID = id
	return &entry, nil
}

// ListAudit implements store.AuditStore.
func (e *Store) ListAudit(ctx context.Context, p store.AuditListParams) ([]*store.AuditEntry, error) {
	aud, err := e.audit(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	return aud.ListAudit(ctx, p)
}
