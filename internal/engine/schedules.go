package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// DecideRetry is how long FireDue waits before looking again at a schedule
// it cannot fire (see FireDue).
const DecideRetry = time.Hour

// schedules returns the schedule driver, or ErrUnsupported.
func (e *Store) schedules(ctx context.Context) (ScheduleDriver, error) {
	if e.sched == nil {
		return nil, fmt.Errorf("%w: schedules", store.ErrUnsupported)
	}
	return e.sched, e.start(ctx)
}

// UpsertSchedules implements store.ScheduleStore.
//
// Items are validated first (a refused item changes nothing). The rest are
// written in one transaction, round by round so that a schedule named twice
// is written twice in input order, each round reading and locking its
// schedules and then deciding, per item, between create, replace and a
// refusal: a Version that is not the stored one is a conflict, a non-zero
// Version for a missing schedule is not found. A replace keeps next_run_at
// when the spec, zone and mode are unchanged (the keep-next-slot rule) and
// starts from the first slot after now otherwise; it keeps the schedule's
// pause, runs and counters.
func (e *Store) UpsertSchedules(ctx context.Context, in []store.Schedule) ([]store.ScheduleUpsertResult, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(in)); err != nil {
		return nil, err
	}
	now := e.d.Now()
	results := make([]store.ScheduleUpsertResult, len(in))
	items := make([]store.Schedule, len(in))
	first := make([]time.Time, len(in))
	var rounds [][]int // rounds[k]: the (k+1)th mention of each schedule
	seen := map[store.ScheduleRef]int{}
	for i := range in {
		it := &items[i]
		*it = in[i]
		it.Normalize()
		err := schedule.Validate(it)
		if err == nil {
			first[i], err = schedule.FirstSlot(it, now)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		k := seen[it.Ref()]
		seen[it.Ref()] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], i)
	}
	if len(rounds) == 0 {
		return results, nil
	}
	err = sd.Tx(ctx, false, func(tx ScheduleTx) error {
		now := tx.Now()
		for _, round := range rounds {
			if err := upsertRound(tx, items, first, round, results, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// upsertRound writes the items of one round, which name distinct schedules.
// Items with Version zero are first offered to InsertSchedules, which
// creates those that do not exist: creating many schedules costs one
// statement. The rest are read with their locks and decided against the
// stored row; an item that meets a schedule created or deleted by another
// transaction meanwhile is decided again.
func upsertRound(tx ScheduleTx, items []store.Schedule, first []time.Time, round []int, results []store.ScheduleUpsertResult, now time.Time) error {
	var pending []int
	var fresh []*store.Schedule
	var freshAt []int
	for _, i := range round {
		if items[i].Version != 0 {
			pending = append(pending, i)
			continue
		}
		w, res := decideUpsert(&items[i], nil, first[i], now)
		results[i] = res
		fresh, freshAt = append(fresh, w), append(freshAt, i)
	}
	created, err := insertSchedules(tx, fresh)
	if err != nil {
		return err
	}
	for k, ok := range created {
		if !ok {
			pending = append(pending, freshAt[k]) // it exists: replace it
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 3 {
			return fmt.Errorf("spool: upsert schedules: %d schedules keep being created or deleted under this call", len(pending))
		}
		refs := make([]store.ScheduleRef, len(pending))
		for k, i := range pending {
			refs[k] = items[i].Ref()
		}
		cur, err := tx.LockSchedules(refs)
		if err != nil {
			return err
		}
		var inserts, updates []*store.Schedule
		var insertAt []int
		for _, i := range pending {
			c := cur[items[i].Ref()]
			w, res := decideUpsert(&items[i], c, first[i], now)
			results[i] = res
			switch {
			case res.Err != nil:
			case c == nil:
				inserts, insertAt = append(inserts, w), append(insertAt, i)
			default:
				updates = append(updates, w)
			}
		}
		if err := tx.UpdateSchedules(updates); err != nil {
			return err
		}
		created, err := insertSchedules(tx, inserts)
		if err != nil {
			return err
		}
		pending = pending[:0:0]
		for k, ok := range created {
			if !ok {
				pending = append(pending, insertAt[k])
			}
		}
	}
	return nil
}

// insertSchedules creates the schedules that do not exist and reports
// which it created.
func insertSchedules(tx ScheduleTx, scs []*store.Schedule) ([]bool, error) {
	if len(scs) == 0 {
		return nil, nil
	}
	created, err := tx.InsertSchedules(scs)
	if err == nil && len(created) != len(scs) {
		err = fmt.Errorf("spool: store answered %d of %d schedule inserts", len(created), len(scs))
	}
	return created, err
}

// decideUpsert decides what writing item it over the stored schedule c (nil
// when there is none) does: the schedule to write, and the item's result.
func decideUpsert(it, c *store.Schedule, first, now time.Time) (*store.Schedule, store.ScheduleUpsertResult) {
	ref := it.Ref()
	switch {
	case c == nil && it.Version != 0:
		return nil, store.ScheduleUpsertResult{Err: store.ScheduleNotFound(ref)}
	case c == nil:
		w := *it
		w.Version, w.NextRunAt = 1, first
		w.LastRunAt, w.LiveJobID, w.Fired, w.Skipped, w.Dropped, w.Recent = time.Time{}, store.ID{}, 0, 0, 0, nil
		w.CreatedAt, w.UpdatedAt = now, now
		return &w, store.ScheduleUpsertResult{Version: 1, Created: true, NextRunAt: first}
	case it.Version != 0 && it.Version != c.Version:
		return nil, store.ScheduleUpsertResult{Err: &store.ConflictError{Resource: "schedule", Name: ref.String(), Want: it.Version, Current: c.Version}}
	}
	w := *c // the stored state: pause, runs, counters, created_at
	w.Spec, w.Zone, w.Mode = it.Spec, it.Zone, it.Mode
	w.Queue, w.Kind, w.Payload, w.Priority, w.MaxAttempts = it.Queue, it.Kind, it.Payload, it.Priority, it.MaxAttempts
	w.Overlap, w.Misfire, w.CatchUpMax = it.Overlap, it.Misfire, it.CatchUpMax
	w.Version, w.UpdatedAt = c.Version+1, now
	if !schedule.KeepsSlot(c, it) {
		w.NextRunAt = first
	}
	return &w, store.ScheduleUpsertResult{Version: w.Version, NextRunAt: w.NextRunAt}
}

// GetSchedule implements store.ScheduleStore.
func (e *Store) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs([]store.ScheduleRef{ref}); err != nil {
		return nil, err
	}
	sc, err := sd.GetSchedule(ctx, ref)
	if err == nil && sc == nil {
		err = store.ScheduleNotFound(ref)
	}
	return sc, err
}

// ListSchedules implements store.ScheduleStore.
func (e *Store) ListSchedules(ctx context.Context, p store.ScheduleListParams) (*store.SchedulePage, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	list, err := sd.ListSchedules(ctx, p)
	if err != nil {
		return nil, err
	}
	page := &store.SchedulePage{Schedules: list}
	if len(list) > p.Limit {
		page.Schedules = list[:p.Limit]
		page.Next = page.Schedules[p.Limit-1].ID
	}
	return page, nil
}

// perRef checks refs and runs fn in one schedule transaction with the
// schedules they name locked; fn answers per item.
func (e *Store) perRef(ctx context.Context, refs []store.ScheduleRef, fn func(tx ScheduleTx, found map[store.ScheduleRef]*store.Schedule, errs []error) error) ([]error, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	errs := make([]error, len(refs))
	if len(refs) == 0 {
		return errs, nil
	}
	err = sd.Tx(ctx, false, func(tx ScheduleTx) error {
		clear(errs)
		found, err := tx.LockSchedules(refs)
		if err != nil {
			return err
		}
		for i, r := range refs {
			if found[r] == nil {
				errs[i] = store.ScheduleNotFound(r)
			}
		}
		return fn(tx, found, errs)
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// present lists, once each, the refs that have no error yet.
func present(refs []store.ScheduleRef, errs []error) []store.ScheduleRef {
	var out []store.ScheduleRef
	seen := map[store.ScheduleRef]bool{}
	for i, r := range refs {
		if errs[i] == nil && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// PauseSchedules implements store.ScheduleStore.
func (e *Store) PauseSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return e.perRef(ctx, refs, func(tx ScheduleTx, _ map[store.ScheduleRef]*store.Schedule, errs []error) error {
		return tx.SetPaused(present(refs, errs), true, nil)
	})
}

// ResumeSchedules implements store.ScheduleStore: a paused schedule resumes
// at schedule.ResumeSlot; one that is not paused is left alone; one whose
// stored spec this build cannot read stays paused and gets the error.
func (e *Store) ResumeSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return e.perRef(ctx, refs, func(tx ScheduleTx, found map[store.ScheduleRef]*store.Schedule, errs []error) error {
		now := tx.Now()
		var resume []store.ScheduleRef
		var next []time.Time
		done := map[store.ScheduleRef]bool{}
		for i, r := range refs {
			sc := found[r]
			if errs[i] != nil || !sc.Paused || done[r] {
				continue
			}
			at, err := schedule.ResumeSlot(sc, now)
			if err != nil {
				errs[i] = err
				continue
			}
			done[r] = true
			resume, next = append(resume, r), append(next, at)
		}
		return tx.SetPaused(resume, false, next)
	})
}

// DeleteSchedules implements store.ScheduleStore. A schedule named twice is
// deleted by the first mention; the second finds it gone.
func (e *Store) DeleteSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return e.perRef(ctx, refs, func(tx ScheduleTx, _ map[store.ScheduleRef]*store.Schedule, errs []error) error {
		seen := map[store.ScheduleRef]bool{}
		for i, r := range refs {
			if errs[i] == nil && seen[r] {
				errs[i] = store.ScheduleNotFound(r)
			}
			seen[r] = true
		}
		return tx.DeleteSchedules(present(refs, errs))
	})
}

// TriggerSchedules implements store.ScheduleStore. In one transaction it
// locks the schedules, enqueues one run of each with the run key of the
// current second, and records the runs. A run whose key a live job holds
// (an earlier trigger or slot in the same second, or the same schedule
// named earlier in the call) is answered Duplicate, naming that job, and is
// not recorded.
func (e *Store) TriggerSchedules(ctx context.Context, refs []store.ScheduleRef) ([]store.TriggerResult, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	results := make([]store.TriggerResult, len(refs))
	if len(refs) == 0 {
		return results, nil
	}
	err = sd.Tx(ctx, true, func(tx ScheduleTx) error {
		clear(results)
		now := tx.Now()
		slot := now.Truncate(time.Second).UTC()
		found, err := tx.LockSchedules(refs)
		if err != nil {
			return err
		}
		var jobs []store.EnqueueParams
		var at []int // the result index of each job
		for i, r := range refs {
			sc := found[r]
			if sc == nil {
				results[i].Err = store.ScheduleNotFound(r)
				continue
			}
			p := schedule.RunJob(sc, slot)
			if err := p.Normalize(now); err != nil {
				results[i].Err = fmt.Errorf("spool: schedule %s cannot run: %w", r, err)
				continue
			}
			jobs, at = append(jobs, p), append(at, i)
		}
		if len(jobs) == 0 {
			return nil
		}
		enq, err := insertRuns(tx, jobs, nil)
		if err != nil {
			return err
		}
		runs := map[store.ScheduleRef][]store.ScheduleRun{}
		var order []store.ScheduleRef
		for k, i := range at {
			run := store.ScheduleRun{Slot: slot, JobID: enq[k].ID, Triggered: true}
			results[i].Run, results[i].Duplicate = run, enq[k].Duplicate
			if enq[k].Duplicate {
				continue // the run of this second is live already: nothing to record
			}
			if _, ok := runs[refs[i]]; !ok {
				order = append(order, refs[i])
			}
			runs[refs[i]] = append(runs[refs[i]], run)
		}
		recs := make([]Fired, 0, len(order))
		for _, r := range order {
			rs := runs[r]
			recs = append(recs, Fired{
				Ref: r, Last: slot, Live: rs[len(rs)-1].JobID, Fired: len(rs),
				Recent: schedule.PushRecent(found[r].Recent, rs...),
			})
		}
		return tx.RecordFired(recs)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// FireDue implements store.ScheduleStore. When nothing is due (one cheap
// read) it returns at once. Otherwise one transaction locks up to Limit due
// schedules, reads the states of their live runs, decides each with
// schedule.Decide, inserts every run under its run key, records what each
// firing did, and reads when the next schedule is due.
//
// A schedule that cannot be decided — a stored spec or zone this build
// cannot read, or a job template it refuses (a queue name made invalid by a
// manual edit, say) — would fail the same way every time. Failing the batch
// would stop every other schedule behind it, and leaving its next_run_at
// would have every call take it first. So it fires nothing, is counted in
// Failed, logged, and looked at again after DecideRetry (an upsert that
// fixes it sets a new slot).
func (e *Store) FireDue(ctx context.Context, p store.FireParams) (*store.FireResult, error) {
	sd, err := e.schedules(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	now := e.d.Now()
	next, err := sd.PeekNextDue(ctx)
	if err != nil {
		return nil, err
	}
	if next.IsZero() || next.After(now) {
		return &store.FireResult{Now: now, NextDue: next}, nil
	}
	var res *store.FireResult
	err = sd.Tx(ctx, true, func(tx ScheduleTx) error {
		res = &store.FireResult{Now: tx.Now()}
		return e.fireBatch(tx, p.Limit, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// due is one schedule FireDue took, with its decision.
type due struct {
	sc    *store.Schedule
	d     schedule.Decision
	first int // index of its first job in the batch's jobs
}

func (e *Store) fireBatch(tx ScheduleTx, limit int, res *store.FireResult) error {
	now := res.Now
	list, err := tx.LockDue(limit)
	if err != nil {
		return err
	}
	res.Schedules = len(list)
	if len(list) > 0 {
		if err := e.fire(tx, list, now, res); err != nil {
			return err
		}
	}
	res.NextDue, err = tx.NextDue(len(list) < limit)
	return err
}

// fire decides, enqueues and records the runs of list, which tx holds.
func (e *Store) fire(tx ScheduleTx, list []*store.Schedule, now time.Time, res *store.FireResult) error {
	var liveIDs []store.ID
	for _, sc := range list {
		if !sc.LiveJobID.IsZero() {
			liveIDs = append(liveIDs, sc.LiveJobID)
		}
	}
	states, err := tx.JobStates(liveIDs)
	if err != nil {
		return err
	}
	batch := make([]due, len(list))
	var jobs []store.EnqueueParams
	var tracked []store.ID // the live run each job's schedule names
	for i, sc := range list {
		d, err := schedule.Decide(sc, states[sc.LiveJobID], now) // a missing job has no state: not live
		for k := 0; err == nil && k < len(d.Jobs); k++ {
			err = d.Jobs[k].Normalize(now)
		}
		if err != nil {
			e.log.Error("spool: schedule cannot fire; skipped, looked at again later",
				slog.String("schedule", sc.Ref().String()), slog.Any("err", err), slog.Duration("retry_in", DecideRetry))
			res.Failed++
			d = schedule.Decision{Next: now.Add(DecideRetry).UTC()}
		}
		batch[i] = due{sc: sc, d: d, first: len(jobs)}
		jobs = append(jobs, d.Jobs...)
		for range d.Jobs {
			tracked = append(tracked, sc.LiveJobID)
		}
	}
	enq, err := insertRuns(tx, jobs, tracked)
	if err != nil {
		return err
	}
	recs := make([]Fired, len(batch))
	for i := range batch {
		var runs []store.FiredRun
		recs[i], runs = recordFiring(batch[i].sc, &batch[i].d, enq[batch[i].first:batch[i].first+len(batch[i].d.Jobs)])
		res.Runs = append(res.Runs, runs...)
		res.Skipped += batch[i].d.Skipped
		res.Dropped += batch[i].d.Dropped
	}
	return tx.RecordFired(recs)
}

// recordFiring turns a schedule, its decision and the insert results of its
// runs into what to store and the runs to report. A duplicate's run is
// already recorded (a trigger in the same second): it becomes the live run
// but is not counted or listed again.
func recordFiring(sc *store.Schedule, d *schedule.Decision, enq []store.EnqueueResult) (Fired, []store.FiredRun) {
	f := Fired{Ref: sc.Ref(), SetNext: true, Next: d.Next, Skipped: d.Skipped, Dropped: d.Dropped}
	var out []store.FiredRun
	var runs []store.ScheduleRun
	for k, r := range enq {
		slot := d.Slots[k].UTC()
		out = append(out, store.FiredRun{Ref: f.Ref, Slot: slot, JobID: r.ID, Duplicate: r.Duplicate})
		f.Live = r.ID
		if !r.Duplicate {
			runs = append(runs, store.ScheduleRun{Slot: slot, JobID: r.ID})
			f.Last = slot
		}
	}
	if f.Fired = len(runs); f.Fired > 0 {
		f.Recent = schedule.PushRecent(sc.Recent, runs...)
	}
	return f, out
}

// insertRuns inserts schedule runs (normalized) under their run keys, at
// most store.MaxBatch per call: a live job holding a run key means no insert
// and a Duplicate result naming it.
//
// When tracked is given (FireDue), tracked[k] is the live run the schedule
// of jobs[k] names, and every Duplicate result naming another job is held
// (HoldLive) so that it cannot finish before this transaction records it as
// its schedule's live run. Otherwise a run finishing meanwhile would release
// nothing — its schedule does not name it yet — and a fixed-delay schedule
// would wait for a release that never comes. A job that finished between the
// insert and the hold has freed its run key, so its run is inserted after
// all. A job the schedule already names is not held: its release waits for
// this transaction's lock on the schedule, and then finds it.
func insertRuns(tx ScheduleTx, jobs []store.EnqueueParams, tracked []store.ID) ([]store.EnqueueResult, error) {
	enq := make([]store.EnqueueResult, 0, len(jobs))
	for lo := 0; lo < len(jobs); lo += store.MaxBatch {
		part := jobs[lo:min(lo+store.MaxBatch, len(jobs))]
		res, err := tx.InsertJobs(part)
		if res, err = checkLen(res, len(part), "runs", err); err != nil {
			return nil, err
		}
		enq = append(enq, res...)
	}
	if tracked == nil {
		return enq, nil
	}
	for range 3 {
		var idx []int
		var want []store.ID
		for k := range jobs {
			if enq[k].Duplicate && enq[k].ID != tracked[k] {
				idx, want = append(idx, k), append(want, enq[k].ID)
			}
		}
		if len(want) == 0 {
			return enq, nil
		}
		held, err := tx.HoldLive(want)
		if err != nil {
			return nil, err
		}
		var again []store.EnqueueParams
		var at []int
		for _, k := range idx {
			if !held[enq[k].ID] {
				again, at = append(again, jobs[k]), append(at, k)
			}
		}
		if len(again) == 0 {
			return enq, nil
		}
		res, err := tx.InsertJobs(again)
		if res, err = checkLen(res, len(again), "runs", err); err != nil {
			return nil, err
		}
		for n, k := range at {
			enq[k] = res[n]
		}
	}
	return enq, nil
}
