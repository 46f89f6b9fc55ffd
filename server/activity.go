package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/store"
)

// Activity of remote workers. Remote workers talk to spool serve rather
// than to the database, so the server counts the claims and verdicts it
// serves, as a spool.Worker counts its own, and adds them to the store's
// per-minute activity (Capabilities.Activity; store/remote has none, so a
// remote Go worker counts nothing and nothing is counted twice).
//
// A verdict carries only the job's ID and token, so the server remembers
// what it needs of each job it hands out (its queue and attempts) until
// the job's verdict comes, or its lock has surely ended; a verdict for a
// job it no longer remembers (its lock was renewed past that, or another
// server handed it out) is counted after one read of the job.
//
// The server has no goroutine of its own: a claim or settle adds the
// counts to the store when activityEvery has passed since the last time,
// and spool serve calls FlushActivity once it has stopped serving.

// activityEvery is how often the counts go to the store while requests
// come: the heartbeat interval of a spool.Worker.
const activityEvery = 10 * time.Second

// activityRecorder is the server's counting of activity; nil when the
// store keeps none.
type activityRecorder struct {
	rec     activity.Recorder
	st      store.ActivityStore
	last    atomic.Int64 // server clock, Unix nanoseconds, of the last flush
	busy    atomic.Bool  // a flush is running
	mu      sync.Mutex   // guards handed
	handed  map[store.ID]handedJob
	lockMax time.Duration // how long past a claim's lock a job is remembered
}

// handedJob is what the server remembers of a job it handed out.
type handedJob struct {
	queue       *activity.Queue
	token       store.LockToken
	attempts    int
	maxAttempts int
	forget      time.Time // server clock: its lock has surely ended by then
}

func newActivityRecorder(st store.Store) *activityRecorder {
	as := st.Capabilities().Activity
	if as == nil {
		return nil
	}
	return &activityRecorder{st: as, handed: map[store.ID]handedJob{}, lockMax: time.Minute}
}

// claimed counts jobs a claim handed out, locked for lock.
func (a *activityRecorder) claimed(jobs []*store.Job, lock time.Duration, now time.Time) {
	if a == nil || len(jobs) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var q *activity.Queue
	for i, j := range jobs {
		if i == 0 || j.Queue != jobs[i-1].Queue { // one queue per claim, but who knows
			q = a.rec.Queue(j.Queue)
		}
		q.Claimed(activity.Pickup(j, lock))
		a.handed[j.ID] = handedJob{queue: q, token: j.LockToken, attempts: j.Attempts, maxAttempts: j.MaxAttempts,
			forget: now.Add(lock + a.lockMax)}
	}
}

// settled counts the verdicts the store applied (errs[i] nil) and forgets
// every job that has an answer.
func (a *activityRecorder) settled(ctx context.Context, st store.Store, vs []store.Verdict, errs []error) {
	if a == nil {
		return
	}
	var unknown []int
	a.mu.Lock()
	for i, v := range vs {
		h, ok := a.handed[v.ID]
		if ok && h.token == v.Token {
			delete(a.handed, v.ID)
		}
		switch {
		case errs[i] != nil:
		case ok && h.token == v.Token:
			h.queue.Settled(v.Outcome, h.attempts, h.maxAttempts)
		case v.Outcome == store.Complete || v.Outcome == store.Fail || v.Outcome == store.DeadLetter:
			unknown = append(unknown, i)
		}
	}
	a.mu.Unlock()
	for _, i := range unknown {
		j, err := st.Get(ctx, vs[i].ID)
		if err != nil {
			continue // gone already (retention, a purge): nothing to chart
		}
		a.rec.Queue(j.Queue).SettledAs(vs[i].Outcome, j.State)
	}
}

// maybeFlush adds the counts to the store when activityEvery has passed
// since the last flush and no other flush runs, and forgets the jobs
// whose locks have surely ended.
func (a *activityRecorder) maybeFlush(ctx context.Context, now time.Time) {
	if a == nil || now.UnixNano()-a.last.Load() < int64(activityEvery) || !a.busy.CompareAndSwap(false, true) {
		return
	}
	defer a.busy.Store(false)
	a.last.Store(now.UnixNano())
	a.mu.Lock()
	for id, h := range a.handed {
		if now.After(h.forget) {
			delete(a.handed, id)
		}
	}
	a.mu.Unlock()
	_, _ = a.rec.Flush(ctx, a.st) // a failed flush keeps its counts for the next
}

// FlushActivity adds the activity of remote workers counted since the last
// flush to the store's per-minute activity (Capabilities.Activity; without
// it, it does nothing). spool serve calls it once it has stopped serving;
// while it serves, the counts go to the store every 10 seconds or so. A
// failed flush keeps its counts for the next.
func (s *Server) FlushActivity(ctx context.Context) error {
	if s.act == nil {
		return nil
	}
	_, err := s.act.rec.Flush(ctx, s.act.st)
	return err
}
