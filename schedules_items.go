package spool

import (
	"context"

	"github.com/spoolrun/spool/store"
)

// PauseEach stops schedules from firing like Pause, and answers per
// schedule instead of joining the refusals: errs[i] is nil when refs[i] is
// paused (pausing a paused schedule is not an error), or why not (a
// *store.NotFoundError matching ErrNotFound). The refusals are not wrapped
// in *ScheduleError: the index names the schedule. err is for the whole call
// (ErrSchedulesUnsupported, a closed store, more than store.MaxBatch refs),
// and then nothing changed and errs is nil. No refs is a no-op.
func (x *Schedules) PauseEach(ctx context.Context, refs ...ScheduleRef) (errs []error, err error) {
	return x.eachRef(ctx, refs, func(s store.ScheduleStore) func(context.Context, []ScheduleRef) ([]error, error) {
		return s.PauseSchedules
	})
}

// ResumeEach starts paused schedules again like Resume, and answers per
// schedule as PauseEach does.
func (x *Schedules) ResumeEach(ctx context.Context, refs ...ScheduleRef) (errs []error, err error) {
	return x.eachRef(ctx, refs, func(s store.ScheduleStore) func(context.Context, []ScheduleRef) ([]error, error) {
		return s.ResumeSchedules
	})
}

// DeleteEach deletes schedules like Delete, and answers per schedule as
// PauseEach does; a schedule named twice in one call is refused the second
// time with a *store.NotFoundError.
func (x *Schedules) DeleteEach(ctx context.Context, refs ...ScheduleRef) (errs []error, err error) {
	return x.eachRef(ctx, refs, func(s store.ScheduleStore) func(context.Context, []ScheduleRef) ([]error, error) {
		return s.DeleteSchedules
	})
}

// eachRef runs a per-schedule store operation, if the store keeps schedules.
func (x *Schedules) eachRef(ctx context.Context, refs []ScheduleRef, op func(store.ScheduleStore) func(context.Context, []ScheduleRef) ([]error, error)) ([]error, error) {
	if x.s == nil {
		return nil, ErrSchedulesUnsupported
	}
	return eachItem(ctx, refs, op(x.s), "schedules")
}
