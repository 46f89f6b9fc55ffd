package activity_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/store"
)

// sink is an ActivityStore that keeps what it is given, or refuses it.
type sink struct {
	mu     sync.Mutex
	refuse error
	got    map[string]store.QueueActivity
	calls  int
}

func (s *sink) AddActivity(_ context.Context, counts []store.QueueActivity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.refuse != nil {
		return s.refuse
	}
	if s.got == nil {
		s.got = map[string]store.QueueActivity{}
	}
	for _, c := range counts {
		a := s.got[c.Queue]
		a.Queue = c.Queue
		a.Add(&c)
		s.got[c.Queue] = a
	}
	return nil
}

func (s *sink) Activity(context.Context, string, time.Time) ([]store.ActivityMinute, error) {
	return nil, errors.New("not read")
}

func TestCountAndFlush(t *testing.T) {
	t.Parallel()
	var r activity.Recorder
	mail := r.Queue("mail")
	if r.Queue("mail") != mail {
		t.Fatal("Queue made a second set of counters for one queue")
	}
	mail.Claimed(0)
	mail.Claimed(-time.Second)         // a job claimed before it was due counts as 0
	mail.Claimed(3 * time.Millisecond) // bucket 2: (2, 5] ms
	mail.Claimed(time.Hour)            // the last bucket
	mail.Settled(store.Complete, 0, 5)
	mail.Settled(store.Fail, 0, 5)       // retried
	mail.Settled(store.Fail, 4, 5)       // the last attempt: dead
	mail.Settled(store.DeadLetter, 0, 5) // dead
	mail.Settled(store.Snooze, 0, 5)     // not counted
	mail.Settled(store.Release, 0, 5)    // not counted
	mail.Settled(store.Cancel, 0, 5)     // not counted
	mail.SettledAs(store.Fail, store.StateDead)
	mail.SettledAs(store.Fail, store.StateScheduled)
	mail.SettledAs(store.Complete, store.StateCompleted)
	r.Queue("idle")

	s := &sink{}
	if did, err := r.Flush(t.Context(), s); !did || err != nil {
		t.Fatalf("Flush = %v, %v", did, err)
	}
	want := store.QueueActivity{Queue: "mail", Completed: 2, Failed: 2, Dead: 3}
	want.Pickup[0], want.Pickup[2], want.Pickup[store.NumPickupBuckets-1] = 2, 1, 1
	if len(s.got) != 1 || s.got["mail"] != want {
		t.Fatalf("flushed %+v, want only %+v", s.got, want)
	}
	// Nothing new: no call at all.
	if did, err := r.Flush(t.Context(), s); did || err != nil || s.calls != 1 {
		t.Fatalf("an empty Flush = %v, %v after %d calls; want no call", did, err, s.calls)
	}
}

func TestFlushFailureKeepsCounts(t *testing.T) {
	t.Parallel()
	var r activity.Recorder
	q := r.Queue("q")
	q.Settled(store.Complete, 0, 1)
	s := &sink{refuse: errors.New("away")}
	if _, err := r.Flush(t.Context(), s); err == nil {
		t.Fatal("Flush to a store that refuses succeeded")
	}
	q.Settled(store.Complete, 0, 1) // counted meanwhile
	s.refuse = nil
	if _, err := r.Flush(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if got := s.got["q"].Completed; got != 2 {
		t.Fatalf("after a refused flush and one that worked, %d completed, want 2", got)
	}
	if _, err := r.Flush(t.Context(), s); err != nil || s.got["q"].Completed != 2 {
		t.Fatalf("a third flush added again: %+v, %v", s.got, err)
	}
}

func TestConcurrentCountsAllArrive(t *testing.T) {
	t.Parallel()
	var r activity.Recorder
	s := &sink{}
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for i := range writers {
		q := r.Queue([]string{"a", "b"}[i%2])
		wg.Go(func() {
			for range each {
				q.Claimed(time.Millisecond)
				q.Settled(store.Complete, 0, 1)
			}
		})
	}
	flushes := make(chan struct{})
	go func() {
		defer close(flushes)
		for range 50 {
			if _, err := r.Flush(t.Context(), s); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	<-flushes
	if _, err := r.Flush(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"a", "b"} {
		if a := s.got[q]; a.Completed != writers/2*each || a.Pickup[0] != writers/2*each {
			t.Errorf("queue %s: %+v, want %d completions and claims", q, a, writers/2*each)
		}
	}
}

func TestPickup(t *testing.T) {
	t.Parallel()
	due := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, c := range []struct {
		j    store.Job
		lock time.Duration
		want time.Duration
	}{
		{store.Job{RunAt: due, AttemptedAt: due.Add(250 * time.Millisecond)}, time.Minute, 250 * time.Millisecond},
		{store.Job{RunAt: due, LockedUntil: due.Add(time.Minute + time.Second)}, time.Minute, time.Second},
		{store.Job{RunAt: due, AttemptedAt: due.Add(-time.Second)}, time.Minute, 0},
	} {
		if got := activity.Pickup(&c.j, c.lock); got != c.want {
			t.Errorf("Pickup(%+v, %v) = %v, want %v", c.j, c.lock, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {time.Millisecond, 0}, {1001 * time.Microsecond, 1}, {60 * time.Second, store.NumPickupBuckets - 2}, {61 * time.Second, store.NumPickupBuckets - 1}} {
		if got := store.PickupBucket(c.d); got != c.want {
			t.Errorf("PickupBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}
