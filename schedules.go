package spool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// Schedule is a durable recurring job: a cron spec or interval read in a
// time zone, the job each slot enqueues, and its overlap and misfire
// policies. Package schedule documents every field and rule.
type Schedule = store.Schedule

// ScheduleRef names one schedule: its tenant and its ID, unique per tenant.
type ScheduleRef = store.ScheduleRef

// ScheduleRun is one run a schedule enqueued.
type ScheduleRun = store.ScheduleRun

// ScheduleListParams selects one tenant's schedules, a page at a time.
type ScheduleListParams = store.ScheduleListParams

// SchedulePage is one page of Schedules.List.
type SchedulePage = store.SchedulePage

// ScheduleUpsertResult reports what UpsertMany did with one schedule.
type ScheduleUpsertResult = store.ScheduleUpsertResult

// Schedule policies; see package schedule.
const (
	OverlapSkip     = store.OverlapSkip
	OverlapQueueOne = store.OverlapQueueOne
	OverlapAllow    = store.OverlapAllow
	MisfireRunOnce  = store.MisfireRunOnce
	MisfireSkip     = store.MisfireSkip
	MisfireCatchUp  = store.MisfireCatchUp
	ModeFixedRate   = store.ModeFixedRate
	ModeFixedDelay  = store.ModeFixedDelay
)

// ErrSchedulesUnsupported is returned by Schedules methods when the Client's
// store does not keep schedules (its Capabilities have no Schedules). It
// matches ErrUnsupported.
var ErrSchedulesUnsupported = fmt.Errorf("%w: schedules", store.ErrUnsupported)

// ScheduleError says which schedule of a Pause, Resume or Delete call was
// refused and why; Unwrap returns the reason (such as ErrNotFound).
type ScheduleError struct {
	Ref ScheduleRef
	Err error
}

func (e *ScheduleError) Error() string {
	return "spool: schedule " + e.Ref.String() + ": " + e.Err.Error()
}

// Unwrap returns the reason the schedule was refused.
func (e *ScheduleError) Unwrap() error { return e.Err }

// Schedules manages recurring schedules. Get one from Client.Schedules. A
// Worker on the same store fires them (see WorkerConfig.Scheduler).
type Schedules struct {
	s    store.ScheduleStore
	jobs store.Store
}

// Schedules returns the Client's schedule API. Its methods fail with
// ErrSchedulesUnsupported if the store keeps no schedules.
func (c *Client) Schedules() *Schedules {
	return &Schedules{s: c.store.Capabilities().Schedules, jobs: c.store}
}

// Upsert creates or updates one schedule and returns it as stored.
//
// With s.Version zero the schedule is created, or replaced whatever its
// version. With a non-zero Version it is updated only if it is still at that
// version; otherwise the error is a *store.ConflictError (matching
// ErrConflict): read it again and reapply the change. A bad spec gives a
// *schedule.SpecError, an unknown zone a *schedule.ZoneError; every
// validation error matches ErrInvalid. An update that keeps the spec, zone
// and mode keeps the next slot; Paused is applied only on creation (use
// Pause and Resume).
func (x *Schedules) Upsert(ctx context.Context, s Schedule) (*Schedule, error) {
	res, err := x.UpsertMany(ctx, s)
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return x.Get(ctx, s.Ref())
}

// UpsertMany writes up to store.MaxBatch schedules in one transaction, with
// the rules of Upsert, and answers per item: a refused item changes nothing
// and the others are written. The error is for the whole call (nothing
// written).
func (x *Schedules) UpsertMany(ctx context.Context, scs ...Schedule) ([]ScheduleUpsertResult, error) {
	if x.s == nil {
		return nil, ErrSchedulesUnsupported
	}
	if len(scs) == 0 {
		return nil, nil
	}
	res, err := x.s.UpsertSchedules(ctx, scs)
	if err == nil && len(res) != len(scs) {
		err = fmt.Errorf("spool: store returned %d results for %d schedules", len(res), len(scs))
	}
	return res, err
}

// Get returns one schedule, with its next and last runs and counters, or an
// error matching ErrNotFound.
func (x *Schedules) Get(ctx context.Context, ref ScheduleRef) (*Schedule, error) {
	if x.s == nil {
		return nil, ErrSchedulesUnsupported
	}
	return x.s.GetSchedule(ctx, ref)
}

// List returns one tenant's schedules in ID order, a page at a time: pass
// the page's Next as p.After for the next one.
func (x *Schedules) List(ctx context.Context, p ScheduleListParams) (*SchedulePage, error) {
	if x.s == nil {
		return nil, ErrSchedulesUnsupported
	}
	return x.s.ListSchedules(ctx, p)
}

// Pause stops schedules from firing until resumed. Each schedule that does
// not exist gives a *ScheduleError wrapping ErrNotFound; the errors are joined.
func (x *Schedules) Pause(ctx context.Context, refs ...ScheduleRef) error {
	errs, err := x.PauseEach(ctx, refs...)
	return joinEach(refs, errs, err, newScheduleError)
}

// Resume starts paused schedules again from their first slot after now:
// slots that passed while they were paused are not run.
func (x *Schedules) Resume(ctx context.Context, refs ...ScheduleRef) error {
	errs, err := x.ResumeEach(ctx, refs...)
	return joinEach(refs, errs, err, newScheduleError)
}

// Delete deletes schedules. Runs already enqueued are left to finish.
func (x *Schedules) Delete(ctx context.Context, refs ...ScheduleRef) error {
	errs, err := x.DeleteEach(ctx, refs...)
	return joinEach(refs, errs, err, newScheduleError)
}

// Trigger enqueues a run of the schedule now, whatever its spec, pause or
// overlap policy, and returns it. Under OverlapSkip and OverlapQueueOne the
// run waits for a live run to finish before it starts. Runs are keyed by the
// second: a second trigger within the same second, while the first run is
// live, returns that run and enqueues nothing.
func (x *Schedules) Trigger(ctx context.Context, ref ScheduleRef) (ScheduleRun, error) {
	if x.s == nil {
		return ScheduleRun{}, ErrSchedulesUnsupported
	}
	res, err := x.s.TriggerSchedules(ctx, []ScheduleRef{ref})
	if err != nil {
		return ScheduleRun{}, err
	}
	if len(res) != 1 {
		return ScheduleRun{}, fmt.Errorf("spool: store returned %d results for 1 schedule", len(res))
	}
	return res[0].Run, res[0].Err
}

// ScheduleRuns is a schedule's recent and upcoming runs.
type ScheduleRuns struct {
	// Schedule is the schedule as read.
	Schedule *Schedule
	// Last lists the newest runs, newest first, with each job's state now
	// (empty once the job was pruned by retention).
	Last []RunStatus
	// Next lists the coming slots.
	Next []time.Time
}

// RunStatus is a run and the state of its job.
type RunStatus struct {
	ScheduleRun
	State State
}

// Runs returns the schedule's last runs (at most store.MaxRecentRuns) with
// their jobs' states, and its next n slots.
func (x *Schedules) Runs(ctx context.Context, ref ScheduleRef, n int) (*ScheduleRuns, error) {
	sc, err := x.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := &ScheduleRuns{Schedule: sc}
	if out.Next, err = schedule.Upcoming(sc, n); err != nil {
		return nil, err
	}
	for _, r := range sc.Recent {
		st := RunStatus{ScheduleRun: r}
		j, err := x.jobs.Get(ctx, r.JobID)
		switch {
		case err == nil:
			st.State = j.State
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		out.Last = append(out.Last, st)
	}
	return out, nil
}

// newScheduleError names the schedule a refusal is about.
func newScheduleError(r ScheduleRef, err error) error { return &ScheduleError{Ref: r, Err: err} }
