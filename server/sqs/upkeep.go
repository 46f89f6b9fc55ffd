package sqs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spoolrun/spool/store"
)

// Upkeep: moving dead letters to dead-letter queues, and finishing the
// deletion of deleted queues. Receives move a queue's dead letters as they
// make them; the upkeep loop catches what a crash between the two left,
// and deletes the jobs of a queue too large to empty in its DeleteQueue.

// Start starts the upkeep loop, which runs Upkeep every UpkeepInterval
// until Stop or ctx ends.
func (h *Handler) Start(ctx context.Context) error { return h.base.Start(ctx, h.run) }

// Stop stops the upkeep loop and waits for it, bounded by ctx. Idempotent.
func (h *Handler) Stop(ctx context.Context) error { return h.base.Stop(ctx) }

func (h *Handler) run(ctx context.Context) {
	t := h.cfg.Clock.NewTicker(h.cfg.UpkeepInterval)
	defer t.Stop()
	for {
		if err := h.Upkeep(ctx); err != nil && ctx.Err() == nil {
			h.cfg.Logger.Warn("spool serve: sqs upkeep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
	}
}

// Upkeep makes one pass over every SQS queue of every tenant: it moves
// the dead jobs of a queue with a redrive policy to its dead-letter queue,
// and deletes the jobs and then the settings of a deleted queue. It
// returns the errors it met, joined, having gone on past each.
func (h *Handler) Upkeep(ctx context.Context) error {
	var errs []error
	after := ""
	for {
		page, err := h.sq.ListSQSQueues(ctx, store.SQSQueueListParams{After: after, Limit: store.MaxListLimit})
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, sq := range page {
			after = sq.Queue
			if sq.Deleted() {
				if err := h.finishDelete(ctx, sq.Queue, deleteBatches); err != nil {
					errs = append(errs, fmt.Errorf("queue %s: %w", sq.Queue, err))
				}
				continue
			}
			if sq.Attributes[attrRedrivePolicy] == "" {
				continue
			}
			q, err := h.queueOf(sq)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			target, err := h.queue(ctx, storedPrefix(q.stored)+q.redriveTo, false)
			if err == nil && target != nil {
				err = h.redrive(ctx, q, target)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("queue %s: %w", sq.Queue, err))
			}
		}
		if len(page) < store.MaxListLimit || ctx.Err() != nil {
			return errors.Join(errs...)
		}
	}
}

// redriveBatch is how many dead letters one store call moves.
const redriveBatch = 1000

// redrive moves q's dead jobs to its dead-letter queue, where they are
// available at once. A FIFO queue's message keeps its group, as the
// dead-letter queue's own line.
func (h *Handler) redrive(ctx context.Context, q, target *queue) error {
	p := store.RedriveParams{From: q.stored, To: target.stored, Limit: redriveBatch}
	if q.fifo {
		p.FromKeyPrefix, p.ToKeyPrefix = q.name+"/", target.name+"/"
	}
	for {
		n, err := h.sq.RedriveDead(ctx, p)
		if err != nil || n < p.Limit {
			return err
		}
	}
}

var errUnfinished = errors.New("spool: sqs: the deleted queue still has jobs; the upkeep loop goes on with them")

// finishDelete deletes a deleted queue's jobs, up to rounds batches, and
// then its settings; errUnfinished when jobs remain.
func (h *Handler) finishDelete(ctx context.Context, stored string, rounds int) error {
	for range rounds {
		n, err := h.sq.DeleteQueueJobs(ctx, store.DeleteQueueJobsParams{Queue: stored})
		if err != nil {
			return err
		}
		if n < store.DefaultPruneLimit {
			err := h.sq.RemoveSQSQueue(ctx, stored)
			if store.Code(err) == "not_found" {
				err = nil // another server finished it
			}
			return err
		}
	}
	return errUnfinished
}

// storedPrefix is the tenant's prefix of a stored queue name.
func storedPrefix(stored string) string {
	if i := strings.LastIndexByte(stored, '/'); i >= 0 {
		return stored[:i+1]
	}
	return ""
}
