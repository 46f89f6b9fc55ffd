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

// dashStore lets a test write activity in minutes past (addActivityAt),
// which a store records only as the minutes pass, for the dashboard's
// charts; until a test does, the store's own activity is kept.
type dashStore struct {
	store.Store
	now func() time.Time
	// fakeActivity is set once addActivityAt wrote minutes.
	fakeActivity atomic.Bool

	mu      sync.Mutex // guards minutes
	minutes []store.ActivityMinute
}

func withDashCaps(st store.Store, now func() time.Time) *dashStore {
	return &dashStore{Store: st, now: now}
}

func (d *dashStore) Capabilities() store.Capabilities {
	c := d.Store.Capabilities()
	if c.Activity == nil || d.fakeActivity.Load() {
		c.Activity = d
	}
	return c
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
