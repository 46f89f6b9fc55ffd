package spool

import (
	"context"
	"fmt"
)

// CancelEach cancels live jobs like Cancel, and answers per job instead of
// joining the refusals: errs[i] is nil when ids[i] was cancelled, or why it
// was not (an error matching ErrNotFound, or a *store.StateError matching
// ErrWrongState for a job that already finished). The refusals are not
// wrapped in *JobError: the index names the job. err is for the whole call
// (a closed store, a cancelled context, more than store.MaxBatch IDs), and
// then nothing was cancelled and errs is nil. No IDs is a no-op.
func (c *Client) CancelEach(ctx context.Context, ids ...ID) (errs []error, err error) {
	return eachItem(ctx, ids, c.store.Cancel, "jobs")
}

// RequeueEach makes dead or cancelled jobs available again like Requeue,
// and answers per job: errs[i] is nil when ids[i] was requeued, or why it
// was not (an error matching ErrNotFound, a *store.StateError for a job that
// is live or completed, or an error matching ErrDuplicate when another job
// now holds its unique key: a live one, or a finished one within its
// UniqueFor window). err is for the whole call, as in CancelEach.
func (c *Client) RequeueEach(ctx context.Context, ids ...ID) (errs []error, err error) {
	return eachItem(ctx, ids, c.store.Requeue, "jobs")
}

// eachItem runs a per-item store operation and returns its answers, one per
// item, after checking the store gave as many as it was asked for.
func eachItem[T any](ctx context.Context, items []T, op func(context.Context, []T) ([]error, error), what string) ([]error, error) {
	if len(items) == 0 {
		return []error{}, nil
	}
	res, err := op(ctx, items)
	if err != nil {
		return nil, err
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("spool: store returned %d results for %d %s", len(res), len(items), what)
	}
	return res, nil
}
