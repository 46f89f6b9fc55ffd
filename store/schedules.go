package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ScheduleStore is the capability of keeping schedules next to jobs
// (Capabilities.Schedules). Like Store, writes take slices and answer per
// item: a refused item changes nothing and the others go through. Whole-call
// errors mean nothing was written.
//
// The conformance suite in store/storetest checks every backend that
// declares it.
type ScheduleStore interface {
	// UpsertSchedules validates and writes schedules. Per item: nil, a
	// validation error (*schedule.SpecError, *schedule.ZoneError,
	// *ValidationError, *LimitError, all matching ErrInvalid), a
	// *ConflictError when the item's Version is non-zero and the stored
	// schedule is at another version, or a *NotFoundError when it is non-zero
	// and there is no such schedule.
	//
	// A new schedule's first slot is the first after now. An update that
	// keeps the spec, zone and mode keeps next_run_at; one that changes them
	// starts again from the first slot after now. Paused is applied when a
	// schedule is created and otherwise left alone (use Pause and Resume).
	UpsertSchedules(ctx context.Context, schedules []Schedule) ([]ScheduleUpsertResult, error)

	// GetSchedule returns one schedule, or a *NotFoundError.
	GetSchedule(ctx context.Context, ref ScheduleRef) (*Schedule, error)

	// ListSchedules returns one tenant's schedules in ID order, a page at a time.
	ListSchedules(ctx context.Context, p ScheduleListParams) (*SchedulePage, error)

	// PauseSchedules stops schedules from firing; ResumeSchedules starts them
	// again: a next_run_at still in the future is kept, otherwise the
	// schedule continues from the first slot after now, so slots that passed
	// while paused are neither run nor counted. A fixed-delay schedule whose
	// run is live keeps waiting for it. Per item: nil or a *NotFoundError.
	// Pausing a paused schedule, or resuming a running one, is not an error.
	PauseSchedules(ctx context.Context, refs []ScheduleRef) ([]error, error)
	ResumeSchedules(ctx context.Context, refs []ScheduleRef) ([]error, error)

	// DeleteSchedules deletes schedules; runs already enqueued are left to
	// finish. Per item: nil or a *NotFoundError (also for a second mention
	// of a schedule in the same call).
	DeleteSchedules(ctx context.Context, refs []ScheduleRef) ([]error, error)

	// TriggerSchedules enqueues one run of each schedule now, whatever its
	// spec, pause or overlap policy. Under OverlapSkip and OverlapQueueOne the
	// run waits for a live run to finish first (they share an ordering key).
	// The run becomes the schedule's live run. Per item: the run, or a
	// *NotFoundError.
	TriggerSchedules(ctx context.Context, refs []ScheduleRef) ([]TriggerResult, error)

	// FireDue fires up to Limit due schedules (not paused, next_run_at at or
	// before now), oldest next_run_at first, in one transaction: for each it
	// runs schedule.Decide, enqueues the runs under their run keys and stores
	// the new next_run_at. A run whose key a live job already holds (a
	// trigger in the same second) is reported Duplicate: that job becomes the
	// live run, and it is not counted or recorded again. Concurrent callers,
	// in this process or others, never fire the same slot twice: each due
	// schedule is taken by one of them, and a caller that crashes mid-batch
	// changes nothing. A schedule that cannot be fired (a stored spec, zone
	// or job template this build refuses) is skipped, counted in Failed,
	// logged, and looked at again an hour later; the others fire.
	FireDue(ctx context.Context, p FireParams) (*FireResult, error)
}

// ScheduleUpsertResult reports what UpsertSchedules did with one schedule.
type ScheduleUpsertResult struct {
	Version   int64     // the schedule's version after the write
	Created   bool      // true when the schedule did not exist
	NextRunAt time.Time // its next slot (zero when it has none)
	Err       error     // nil, or why the item was refused
}

// TriggerResult reports the run TriggerSchedules enqueued for one schedule.
type TriggerResult struct {
	Run ScheduleRun
	// Duplicate reports that the schedule's run for this second was
	// already live (an earlier trigger or slot in the same second): no job
	// was inserted, Run.JobID names that run, and nothing was counted.
	Duplicate bool
	Err       error // nil, or a *NotFoundError
}

// ScheduleListParams selects one tenant's schedules.
type ScheduleListParams struct {
	Tenant string // empty is the default tenant
	After  string // cursor: only IDs after this one (use SchedulePage.Next)
	Limit  int    // 1..MaxListLimit; default DefaultListLimit
}

// SchedulePage is one page of ListSchedules.
type SchedulePage struct {
	Schedules []*Schedule
	Next      string // pass as ScheduleListParams.After; empty on the last page
}

// FireParams bounds one FireDue call.
type FireParams struct {
	// Limit is how many due schedules one call takes, 1..MaxFireBatch;
	// default DefaultFireBatch.
	Limit int
}

// Limits of FireDue.
const (
	DefaultFireBatch = 1000
	MaxFireBatch     = 10_000
)

// FireResult reports what one FireDue call did.
type FireResult struct {
	// Now is the store's time the call fired at. Compare NextDue with it,
	// not with a local clock: on PostgreSQL it is the database's clock.
	Now time.Time
	// Schedules is how many due schedules the call took. When it equals the
	// limit, more may be due.
	Schedules int
	// Runs lists the runs enqueued, with their slots.
	Runs []FiredRun
	// Skipped counts slots not run because a run was live; Dropped, missed
	// slots the misfire policy did not run.
	Skipped, Dropped int
	// Failed counts schedules that could not be fired (see FireDue): each
	// was skipped and logged, and is looked at again an hour later.
	Failed int
	// NextDue is the earliest next_run_at of any unpaused schedule after the
	// call, or zero if none has one: when to call again.
	NextDue time.Time
}

// FiredRun is one run FireDue enqueued.
type FiredRun struct {
	Ref   ScheduleRef
	Slot  time.Time
	JobID ID
	// Duplicate reports that a live job already held the run key, so no
	// job was inserted and JobID names that job.
	Duplicate bool
}

// ScheduleNotFound returns the error for a schedule that does not exist: a
// *NotFoundError matching ErrNotFound.
func ScheduleNotFound(r ScheduleRef) error {
	return &NotFoundError{Resource: "schedule", Name: r.String()}
}

// CheckScheduleRefs checks refs for a batch call: at most MaxBatch of them,
// each with a valid tenant and ID. Errors are joined *ItemError.
func CheckScheduleRefs(refs []ScheduleRef) error {
	if err := CheckBatch(len(refs)); err != nil {
		return err
	}
	var errs []error
	for i, r := range refs {
		if err := errors.Join(ValidName("schedule id", r.ID, false), ValidName("tenant", r.Tenant, true)); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Normalize fills ScheduleListParams defaults and checks them.
func (p *ScheduleListParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	if p.Limit < 1 {
		return &ValidationError{Field: "list limit", Reason: fmt.Sprintf("%d is below 1", p.Limit)}
	}
	if p.Limit > MaxListLimit {
		return &LimitError{Field: "list limit", Limit: MaxListLimit, Got: p.Limit}
	}
	return errors.Join(ValidName("tenant", p.Tenant, true), ValidName("list cursor", p.After, true))
}

// Normalize fills FireParams defaults and checks them.
func (p *FireParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultFireBatch
	}
	if p.Limit < 1 {
		return &ValidationError{Field: "fire batch", Reason: fmt.Sprintf("%d is below 1", p.Limit)}
	}
	if p.Limit > MaxFireBatch {
		return &LimitError{Field: "fire batch", Limit: MaxFireBatch, Got: p.Limit}
	}
	return nil
}
