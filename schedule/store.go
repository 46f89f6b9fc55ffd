package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// Store is implemented by backends that keep schedules next to their jobs
// (store/sqlite and store/postgres). Like store.Store, writes take slices and
// answer per item: a refused item changes nothing and the others go through.
// Whole-call errors mean nothing was written.
//
// The conformance suite in store/storetest checks every backend against this
// contract.
type Store interface {
	// UpsertSchedules validates and writes schedules. Per item: nil, a
	// validation error (*SpecError, *ZoneError, *store.ValidationError,
	// *store.LimitError, all matching store.ErrInvalid), a *ConflictError
	// when the item's Version is non-zero and the stored schedule is at
	// another version, or ErrNotFound when it is non-zero and there is no
	// such schedule.
	//
	// A new schedule's first slot is the first after now. An update that
	// keeps the spec, zone and mode keeps next_run_at; one that changes them
	// starts again from the first slot after now. Paused is applied when a
	// schedule is created and otherwise left alone (use Pause and Resume).
	UpsertSchedules(ctx context.Context, schedules []Schedule) ([]UpsertResult, error)

	// GetSchedule returns one schedule, or ErrNotFound.
	GetSchedule(ctx context.Context, ref Ref) (*Schedule, error)

	// ListSchedules returns one tenant's schedules in ID order, a page at a time.
	ListSchedules(ctx context.Context, p ListParams) (*ListPage, error)

	// PauseSchedules stops schedules from firing; ResumeSchedules starts them
	// again: a next_run_at still in the future is kept, otherwise the
	// schedule continues from the first slot after now, so slots that passed
	// while paused are neither run nor counted. A fixed-delay schedule whose
	// run is live keeps waiting for it. Per item: nil or ErrNotFound. Pausing a
	// paused schedule, or resuming a running one, is not an error.
	PauseSchedules(ctx context.Context, refs []Ref) ([]error, error)
	ResumeSchedules(ctx context.Context, refs []Ref) ([]error, error)

	// DeleteSchedules deletes schedules; runs already enqueued are left to
	// finish. Per item: nil or ErrNotFound.
	DeleteSchedules(ctx context.Context, refs []Ref) ([]error, error)

	// TriggerSchedules enqueues one run of each schedule now, whatever its
	// spec, pause or overlap policy. Under OverlapSkip and OverlapQueueOne the
	// run waits for a live run to finish first (they share an ordering key).
	// The run becomes the schedule's live run. Per item: the run, or
	// ErrNotFound.
	TriggerSchedules(ctx context.Context, refs []Ref) ([]TriggerResult, error)

	// FireDue fires up to Limit due schedules (not paused, next_run_at at or
	// before now), oldest next_run_at first, in one transaction: for each it
	// runs Decide, enqueues the runs under their run keys and stores the new
	// next_run_at. A run whose key a live job already holds (a trigger in the
	// same second) is reported Duplicate: that job becomes the live run, and
	// it is not counted or recorded again. Concurrent callers, in this process or others, never fire
	// the same slot twice: each due schedule is taken by one of them, and a
	// caller that crashes mid-batch changes nothing.
	FireDue(ctx context.Context, p FireParams) (*FireResult, error)
}

// UpsertResult reports what UpsertSchedules did with one schedule.
type UpsertResult struct {
	Version   int64     // the schedule's version after the write
	Created   bool      // true when the schedule did not exist
	NextRunAt time.Time // its next slot (zero when it has none)
	Err       error     // nil, or why the item was refused
}

// TriggerResult reports the run TriggerSchedules enqueued for one schedule.
type TriggerResult struct {
	Run Run
	// Duplicate reports that the schedule's run for this second was
	// already live (an earlier trigger or slot in the same second): no job
	// was inserted, Run.JobID names that run, and nothing was counted.
	Duplicate bool
	Err       error // nil, or ErrNotFound
}

// ListParams selects one tenant's schedules.
type ListParams struct {
	Tenant string // empty is the default tenant
	After  string // cursor: only IDs after this one (use ListPage.Next)
	Limit  int    // 1..store.MaxListLimit; default store.DefaultListLimit
}

// ListPage is one page of ListSchedules.
type ListPage struct {
	Schedules []*Schedule
	Next      string // pass as ListParams.After; empty on the last page
}

// FireParams bounds one FireDue call.
type FireParams struct {
	// Limit is how many due schedules one call takes, 1..MaxFireBatch;
	// default DefaultFireBatch.
	Limit int
}

// Limits of FireDue.
const (
	DefaultFireBatch = 500
	MaxFireBatch     = 10_000
)

// FireResult reports what one FireDue call did.
type FireResult struct {
	// Schedules is how many due schedules the call took. When it equals the
	// limit, more may be due.
	Schedules int
	// Runs lists the runs enqueued, with their slots.
	Runs []FiredRun
	// Skipped counts slots not run because a run was live; Dropped, missed
	// slots the misfire policy did not run.
	Skipped, Dropped int
	// NextDue is the earliest next_run_at of any unpaused schedule after the
	// call, or zero if none has one: when to call again.
	NextDue time.Time
}

// FiredRun is one run FireDue enqueued.
type FiredRun struct {
	Ref   Ref
	Slot  time.Time
	JobID store.ID
	// Duplicate reports that a live job already held the run key, so no
	// job was inserted and JobID names that job.
	Duplicate bool
}

// ErrNotFound is returned for a schedule that does not exist. It matches
// store.ErrNotFound, so store.Code reports it as "not_found".
var ErrNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string { return "spool: schedule not found" }

// Is makes errors.Is(ErrNotFound, store.ErrNotFound) true.
func (notFoundError) Is(target error) bool { return target == store.ErrNotFound }

// NotFound returns an error matching ErrNotFound that names the schedule.
func NotFound(r Ref) error { return &refError{ref: r, err: ErrNotFound} }

type refError struct {
	ref Ref
	err error
}

func (e *refError) Error() string { return "spool: schedule " + e.ref.String() + " not found" }
func (e *refError) Unwrap() error { return e.err }

// ConflictError refuses an update whose Version is not the stored one. It
// matches store.ErrConflict ("conflict").
type ConflictError struct {
	Ref     Ref
	Want    int64 // the version the update carried
	Current int64 // the stored version
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("spool: schedule %s is at version %d, not %d: read it again and reapply the change", e.Ref, e.Current, e.Want)
}

// Unwrap makes errors.Is(err, store.ErrConflict) true.
func (e *ConflictError) Unwrap() error { return store.ErrConflict }

// ValidateRefs checks refs for a batch call: at most store.MaxBatch of them,
// each with a valid tenant and ID. Errors are joined *store.ItemError.
func ValidateRefs(refs []Ref) error {
	if len(refs) > store.MaxBatch {
		return &store.LimitError{Field: "batch size", Limit: store.MaxBatch, Got: len(refs)}
	}
	var errs []error
	for i, r := range refs {
		if err := errors.Join(store.ValidName("schedule id", r.ID, false), store.ValidName("tenant", r.Tenant, true)); err != nil {
			errs = append(errs, &store.ItemError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// NormalizeList fills ListParams defaults and checks them.
func NormalizeList(p *ListParams) error {
	if p.Limit == 0 {
		p.Limit = store.DefaultListLimit
	}
	if p.Limit < 1 {
		return &store.ValidationError{Field: "list limit", Reason: fmt.Sprintf("%d is below 1", p.Limit)}
	}
	if p.Limit > store.MaxListLimit {
		return &store.LimitError{Field: "list limit", Limit: store.MaxListLimit, Got: p.Limit}
	}
	return store.ValidName("tenant", p.Tenant, true)
}

// NormalizeFire fills FireParams defaults and checks them.
func NormalizeFire(p *FireParams) error {
	if p.Limit == 0 {
		p.Limit = DefaultFireBatch
	}
	if p.Limit < 1 {
		return &store.ValidationError{Field: "fire batch", Reason: fmt.Sprintf("%d is below 1", p.Limit)}
	}
	if p.Limit > MaxFireBatch {
		return &store.LimitError{Field: "fire batch", Limit: MaxFireBatch, Got: p.Limit}
	}
	return nil
}
