package server_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// dashStore gives a store the dashboard's capabilities it lacks (bulk
// actions, activity, the audit log) and, with them, the list filters it
// ignores, in memory and by paging through List, so the server's pages and
// routes can be tested before every backend has them. A capability the
// store has is kept as it is, and then so is its List; only activity
// written with addActivityAt (minutes in the past, which a store records
// only as they pass) replaces the store's. Bulk delete here deletes dead
// jobs only (through Purge), the one deletion the base contract has.
type dashStore struct {
	store.Store
	now    func() time.Time
	native store.Capabilities
	// fakeActivity is set once addActivityAt wrote minutes.
	fakeActivity atomic.Bool

	mu      sync.Mutex // guards minutes and entries
	minutes []store.ActivityMinute
	entries []*store.AuditEntry
}

func withDashCaps(st store.Store, now func() time.Time) *dashStore {
	return &dashStore{Store: st, now: now, native: st.Capabilities()}
}

func (d *dashStore) Capabilities() store.Capabilities {
	c := d.native
	if c.Bulk == nil {
		c.Bulk = d
	}
	if c.Activity == nil || d.fakeActivity.Load() {
		c.Activity = d
	}
	if c.Audit == nil {
		c.Audit = d
	}
	return c
}

// newFilters reports whether f uses a filter the base List may ignore.
func newFilters(f store.ListParams) bool {
	return f.Newest || f.UniqueKey != "" || f.OrderingKey != "" || !f.CreatedAfter.IsZero() || !f.CreatedBefore.IsZero()
}

func matches(j *store.Job, f store.ListParams) bool {
	return (f.Queue == "" || j.Queue == f.Queue) && (f.Kind == "" || j.Kind == f.Kind) && (f.Tenant == "" || j.Tenant == f.Tenant) &&
		(len(f.States) == 0 || slices.Contains(f.States, j.State)) &&
		(f.UniqueKey == "" || j.UniqueKey == f.UniqueKey) && (f.OrderingKey == "" || j.OrderingKey == f.OrderingKey) &&
		(f.CreatedAfter.IsZero() || !j.CreatedAt.Before(f.CreatedAfter)) && (f.CreatedBefore.IsZero() || j.CreatedAt.Before(f.CreatedBefore))
}

// all returns every job f selects, oldest first.
func (d *dashStore) all(ctx context.Context, f store.ListParams) ([]*store.Job, error) {
	base := store.ListParams{Queue: f.Queue, Kind: f.Kind, Tenant: f.Tenant, States: f.States, Limit: store.MaxListLimit}
	var out []*store.Job
	for {
		page, err := d.Store.List(ctx, base)
		if err != nil {
			return nil, err
		}
		for _, j := range page.Jobs {
			if matches(j, f) {
				out = append(out, j)
			}
		}
		if page.Next.IsZero() {
			return out, nil
		}
		base.After = page.Next
	}
}

func (d *dashStore) List(ctx context.Context, f store.ListParams) (*store.ListPage, error) {
	if d.native.Bulk != nil || !newFilters(f) {
		return d.Store.List(ctx, f)
	}
	jobs, err := d.all(ctx, f)
	if err != nil {
		return nil, err
	}
	if f.Newest {
		slices.Reverse(jobs)
	}
	if !f.After.IsZero() {
		i := slices.IndexFunc(jobs, func(j *store.Job) bool {
			c := strings.Compare(j.ID.String(), f.After.String())
			return f.Newest && c < 0 || !f.Newest && c > 0
		})
		if i < 0 {
			i = len(jobs)
		}
		jobs = jobs[i:]
	}
	limit := cmp.Or(f.Limit, store.DefaultListLimit)
	page := &store.ListPage{Jobs: jobs}
	if len(jobs) > limit {
		page.Jobs = jobs[:limit]
		page.Next = jobs[limit-1].ID
	}
	return page, nil
}

func (d *dashStore) CountJobs(ctx context.Context, f store.ListParams) (int, bool, error) {
	jobs, err := d.all(ctx, f)
	if err != nil {
		return 0, false, err
	}
	if f.Limit > 0 && len(jobs) > f.Limit {
		return f.Limit, true, nil
	}
	return len(jobs), false, nil
}

func (d *dashStore) BulkJobs(ctx context.Context, action store.BulkAction, f store.ListParams) (int, error) {
	jobs, err := d.all(ctx, f)
	if err != nil {
		return 0, err
	}
	var ids []store.ID
	for _, j := range jobs {
		switch {
		case action == store.BulkCancel && j.State.Live(),
			action == store.BulkRequeue && (j.State == store.StateDead || j.State == store.StateCancelled),
			action == store.BulkDelete && j.State == store.StateDead:
			ids = append(ids, j.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if action == store.BulkDelete {
		return d.Purge(ctx, store.PurgeParams{IDs: ids})
	}
	verb := d.Cancel
	if action == store.BulkRequeue {
		verb = d.Requeue
	}
	errs, err := verb(ctx, ids)
	n := 0
	for _, e := range errs {
		if e == nil {
			n++
		}
	}
	return n, err
}

func (d *dashStore) AddActivity(_ context.Context, counts []store.QueueActivity) error {
	d.addActivityAt(d.now(), counts)
	return nil
}

// addActivityAt adds counts to the minute holding at.
func (d *dashStore) addActivityAt(at time.Time, counts []store.QueueActivity) {
	d.fakeActivity.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	minute := at.UTC().Truncate(time.Minute)
	for _, c := range counts {
		i := slices.IndexFunc(d.minutes, func(m store.ActivityMinute) bool { return m.Minute.Equal(minute) && m.Queue == c.Queue })
		if i < 0 {
			d.minutes = append(d.minutes, store.ActivityMinute{Minute: minute, QueueActivity: store.QueueActivity{Queue: c.Queue}})
			i = len(d.minutes) - 1
		}
		m := &d.minutes[i]
		m.Completed += c.Completed
		m.Failed += c.Failed
		m.Dead += c.Dead
		for b := range m.Pickup {
			m.Pickup[b] += c.Pickup[b]
		}
	}
	slices.SortFunc(d.minutes, func(a, b store.ActivityMinute) int {
		return cmp.Or(a.Minute.Compare(b.Minute), strings.Compare(a.Queue, b.Queue))
	})
}

func (d *dashStore) Activity(_ context.Context, tenant string, since time.Time) ([]store.ActivityMinute, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	since = since.Truncate(time.Minute)
	var out []store.ActivityMinute
	for _, m := range d.minutes {
		if m.Minute.Before(since) {
			continue
		}
		if tenant != store.AllTenants && !strings.HasPrefix(m.Queue, tenant+"/") && !strings.HasPrefix(m.Queue, store.SubscriptionQueuePrefix+tenant+"/") {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func (d *dashStore) RecordAudit(_ context.Context, e store.AuditEntry) (*store.AuditEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.ID = int64(len(d.entries) + 1)
	e.At = d.now()
	d.entries = append(d.entries, &e)
	out := e
	return &out, nil
}

func (d *dashStore) ListAudit(_ context.Context, p store.AuditListParams) ([]*store.AuditEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	limit := cmp.Or(p.Limit, store.DefaultListLimit)
	var out []*store.AuditEntry
	for i := len(d.entries) - 1; i >= 0 && len(out) < limit; i-- {
		e := d.entries[i]
		if (p.Before == 0 || e.ID < p.Before) && (p.Tenant == store.AllTenants || e.Tenant == p.Tenant) {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}
