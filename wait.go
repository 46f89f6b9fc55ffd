package spool

import (
	"context"
	"time"
)

// Wait polls the store no less often than this while a job is live, backing
// off from waitPollMin. Waits are usually ended by the store's in-process
// notifications; polling covers changes made by other processes.
const (
	waitPollMin = 5 * time.Millisecond
	waitPollMax = 250 * time.Millisecond
)

// Wait blocks until the job with the given ID is finished (completed,
// cancelled or dead) and returns it, with its result and error history.
// Read the result with DecodeResult.
//
// When the store has a store.Notifier, Wait is woken when this job finishes
// (not when others do); it also polls, backing off from 5ms to 250ms on the
// Client's Clock, to notice jobs finished where the notifier cannot see.
// Wait returns ctx.Err() when ctx ends first, and an error matching
// ErrNotFound when the job does not exist, including when it finished and
// was pruned before Wait looked.
func (c *Client) Wait(ctx context.Context, id ID) (*Job, error) {
	notifier := c.store.Capabilities().Notifier
	delay := waitPollMin
	timer := c.clock.NewTimer(delay)
	defer timer.Stop()
	for {
		// Subscribe before looking, so a finish between the look and the
		// select still closes the channel we wait on.
		var finished <-chan struct{}
		release := func() {}
		if notifier != nil {
			finished, release = notifier.Finished(id)
		}
		job, err := c.store.Get(ctx, id)
		if err != nil || job.State.Finished() {
			release()
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, err
		}
		if job.State.Finished() {
			return job, nil
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		case <-finished: // the job may have finished; look again
			if !timer.Stop() {
				// It fired too: drop its tick, which a fake clock's timer
				// keeps, so that it does not cause a look of its own.
				select {
				case <-timer.Chan():
				default:
				}
			}
		case <-timer.Chan():
			delay = min(2*delay, waitPollMax)
		}
		release()
	}
}
