// Package activity counts what workers do to each queue's jobs (jobs
// completed, failed attempts that will be retried, jobs dead-lettered,
// and a histogram of pickup latency) for the dashboard's per-minute
// charts, and adds the counts to a store.ActivityStore now and then.
//
// Counting is on the hot path of every job, so it is an atomic add on
// counters resolved once per queue; nothing is allocated or locked. A
// flush swaps the counters to zero and adds what it took to the store; a
// flush that fails gives the counts back, so the next one adds them:
// nothing is lost, and nothing is added twice by this process (a flush
// whose answer was lost after the store applied it may be, as any retried
// write may).
//
// A spool.Worker on a store with the Activity capability records its own
// claims and verdicts; spool serve records those it serves to remote
// workers, which therefore record nothing themselves (store/remote has no
// Activity capability).
package activity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// Recorder holds the counts of every queue since the last flush. It is
// safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex        // guards queues (not the counts in them, which are atomic); held by Flush throughout
	queues map[string]*Queue // by name
}

// Queue is one queue's counts since the last flush. Its methods are safe
// for concurrent use and cost an atomic add.
type Queue struct {
	name                    string
	completed, failed, dead atomic.Int64
	pickup                  [store.NumPickupBuckets]atomic.Int64
}

// Queue returns the counters of queue name, made on first use. Callers
// keep the pointer: counting through it needs no lookup.
func (r *Recorder) Queue(name string) *Queue {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.queues[name]
	if !ok {
		if r.queues == nil {
			r.queues = map[string]*Queue{}
		}
		q = &Queue{name: name}
		r.queues[name] = q
	}
	return q
}

// Pickup is a claimed job's pickup latency by the store's clock: from when
// it was due (RunAt) to its claim (AttemptedAt, which a claim sets, or
// else its lock's end less lock), at least 0.
func Pickup(j *store.Job, lock time.Duration) time.Duration {
	claimed := j.AttemptedAt
	if claimed.IsZero() {
		claimed = j.LockedUntil.Add(-lock)
	}
	return max(claimed.Sub(j.RunAt), 0)
}

// Claimed counts a claim whose pickup latency was d.
func (q *Queue) Claimed(d time.Duration) { q.pickup[store.PickupBucket(d)].Add(1) }

// Settled counts a verdict the store applied to a job that had attempts
// failed attempts of maxAttempts before it: a completion, a failed attempt
// (dead when it was the last allowed, else retried) or a dead-letter.
// Other outcomes (cancel, snooze, release) are not counted.
func (q *Queue) Settled(o store.Outcome, attempts, maxAttempts int) {
	switch o {
	case store.Complete:
		q.completed.Add(1)
	case store.Fail:
		if attempts+1 >= maxAttempts {
			q.dead.Add(1)
		} else {
			q.failed.Add(1)
		}
	case store.DeadLetter:
		q.dead.Add(1)
	default:
	}
}

// SettledAs is Settled for a job whose state after the verdict is known
// instead of its attempts: a failed attempt that left it dead counts as
// dead, any other as retried.
func (q *Queue) SettledAs(o store.Outcome, after store.State) {
	switch {
	case o == store.Complete:
		q.completed.Add(1)
	case o == store.DeadLetter, o == store.Fail && after == store.StateDead:
		q.dead.Add(1)
	case o == store.Fail:
		q.failed.Add(1)
	}
}

// take swaps q's counts to zero and returns them.
func (q *Queue) take() store.QueueActivity {
	a := store.QueueActivity{Queue: q.name, Completed: q.completed.Swap(0), Failed: q.failed.Swap(0), Dead: q.dead.Swap(0)}
	for i := range q.pickup {
		a.Pickup[i] = q.pickup[i].Swap(0)
	}
	return a
}

// giveBack adds counts taken by take back to q.
func (q *Queue) giveBack(a *store.QueueActivity) {
	q.completed.Add(a.Completed)
	q.failed.Add(a.Failed)
	q.dead.Add(a.Dead)
	for i, n := range a.Pickup {
		if n != 0 {
			q.pickup[i].Add(n)
		}
	}
}

// Flush adds the counts taken since the last flush to st, in one call, and
// reports whether there was anything to add. When the call fails, the
// counts go back to the counters for the next flush. Flushes run one at a
// time.
func (r *Recorder) Flush(ctx context.Context, st store.ActivityStore) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var counts []store.QueueActivity
	var from []*Queue
	for _, q := range r.queues {
		if a := q.take(); !a.Empty() {
			counts = append(counts, a)
			from = append(from, q)
		}
	}
	if len(counts) == 0 {
		return false, nil
	}
	for start := 0; start < len(counts); start += store.MaxBatch {
		end := min(start+store.MaxBatch, len(counts))
		if err := st.AddActivity(ctx, counts[start:end]); err != nil {
			for i := start; i < len(counts); i++ {
				from[i].giveBack(&counts[i])
			}
			return true, err
		}
	}
	return true, nil
}
