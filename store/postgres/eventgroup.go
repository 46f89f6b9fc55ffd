package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
)

// Publishes to one topic from one store are committed in groups.
// Publishers of a topic take turns from their publish until their commit,
// so one topic takes at most one commit (and its fsync) at a time: a few
// hundred single-event publishes a second. A group runs every publish to
// the topic waiting to start in one database transaction, each inside a
// savepoint so that one refused does not undo the others, and commits
// once: the topic's lock is taken once per group, not once per publish.
// The caller that finds no group running leads the next one; the others
// wait for its answer. A lone publish runs without savepoints. Groups are
// per topic, so a publish that waits for the topic's lock (held by a
// caller's open transaction) holds up only publishes that would wait for
// it too.

// maxGroup is the most event transactions one group commits.
const maxGroup = 64

// groupOp is one event transaction waiting for, or in, a group.
type groupOp struct {
	ctx  context.Context
	fn   func(tx engine.EventTx) error
	t    *eventTx
	err  error
	done chan struct{} // closed with err set
	lead chan struct{} // closed when this op's caller is to run the next group
}

// eventGroups queues one topic's publishes for the next group.
type eventGroups struct {
	mu      sync.Mutex
	waiting []*groupOp
	leading bool // a caller is running a group, or has been asked to
}

// run runs fn in the next group and returns its answer.
func (g *eventGroups) run(s *backend, ctx context.Context, fn func(tx engine.EventTx) error) error {
	op := &groupOp{ctx: ctx, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.waiting = append(g.waiting, op)
	if !g.leading {
		g.leading = true
		close(op.lead)
	}
	g.mu.Unlock()
	for {
		select {
		case <-op.done:
			return op.err
		case <-op.lead:
			op.lead = nil // lead once
			g.runNext(s)
		case <-ctx.Done():
			// A caller that gives up leaves the queue; one already in a
			// group lets it run, and its answer is dropped, as a
			// cancelled commit's would be. One handed the lead passes it
			// on by running the next group.
			if g.leave(op) {
				g.runNext(s)
			}
			return ctx.Err()
		}
	}
}

// leave takes op out of the queue, if it still waits, and reports whether
// it had been handed the lead.
func (g *eventGroups) leave(op *groupOp) (lead bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.waiting, op)
	if i < 0 {
		return false
	}
	g.waiting = slices.Delete(g.waiting, i, i+1)
	select {
	case <-op.lead:
		return op.lead != nil
	default:
		return false
	}
}

// runNext runs the next group, then hands the lead to the first op still
// waiting, if any: each caller leads at most one group, so none is held up
// by a stream of others' work.
func (g *eventGroups) runNext(s *backend) {
	g.mu.Lock()
	n := min(len(g.waiting), maxGroup)
	group := g.waiting[:n:n]
	g.waiting = g.waiting[n:]
	g.mu.Unlock()
	s.runGroup(group)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) == 0 {
		g.leading = false
		return
	}
	close(g.waiting[0].lead)
}

// runGroup commits a group, running again alone each op that lost a race
// inside it (a deadlock, a creation race): retries take the plain path.
func (s *backend) runGroup(group []*groupOp) {
	live := group[:0:0]
	for _, op := range group {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			close(op.done)
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		op := live[0]
		op.err = s.eventTxAlone(op.ctx, op.fn)
		close(op.done)
		return
	}
	var retry []*groupOp
	ctx := context.WithoutCancel(live[0].ctx)
	err := pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error {
		retry = retry[:0]
		for _, op := range live {
			op.err, op.t = nil, nil
			sp, err := tx.Begin(ctx) // a savepoint
			if err != nil {
				return err
			}
			t := &eventTx{s: s, ctx: ctx, x: pgxExec{sp}, now: s.now()} // the group's context: a caller that gives up does not break the others
			if err := op.fn(t); err != nil {
				if rerr := sp.Rollback(ctx); rerr != nil {
					return errors.Join(err, rerr)
				}
				if retryable(err) {
					retry = append(retry, op)
				} else {
					op.err = err
				}
				continue
			}
			if err := sp.Commit(ctx); err != nil { // RELEASE SAVEPOINT
				return err
			}
			op.t = t
		}
		return nil
	})
	if err != nil {
		// The group failed as a whole (a lost connection, a failed
		// commit): each op runs again on its own, so each gets its own
		// answer.
		for _, op := range live {
			op.err = s.eventTxAlone(op.ctx, op.fn)
			close(op.done)
		}
		return
	}
	var wakes []string
	for _, op := range live {
		if op.t != nil {
			wakes = append(wakes, op.t.wakes()...)
		}
	}
	s.changed(wakes, nil)
	for _, op := range live {
		if op.err != nil {
			op.err = s.eventErr(op.ctx, "events", op.err)
		}
		if !slices.Contains(retry, op) {
			close(op.done)
		}
	}
	for _, op := range retry {
		op.err = s.eventTxAlone(op.ctx, op.fn)
		close(op.done)
	}
}
