package engine

import (
	"context"
	"slices"
	"sync"

	"github.com/spoolrun/spool/store"
)

// Concurrent publishes to one topic through one store are merged: the
// events of every publish waiting to start go out in one transaction, as
// one publish, and each caller gets its own results back. Publishers of a
// topic take turns on its lock from their publish until their commit, so
// on PostgreSQL each turn costs a commit and a dozen round trips; merged,
// a turn carries many publishes. The caller that finds no merged publish
// running leads the next one; the others wait for its answer. Appends
// with an expected version, and publishes in a caller's transaction, are
// never merged.

// maxMerged is the most events one merged publish carries.
const maxMerged = store.MaxBatch

// pubOp is one publish waiting for, or in, a merged publish.
type pubOp struct {
	ctx    context.Context
	events []store.EventInput
	fresh  bool // every ID made by the engine
	res    []store.PublishResult
	err    error
	done   chan struct{} // closed with res or err set
	lead   chan struct{} // closed when this op's caller is to run the next merged publish
}

// pubGroups queues one topic's publishes.
type pubGroups struct {
	mu      sync.Mutex
	waiting []*pubOp
	leading bool // a caller runs a merged publish, or has been asked to
}

// publishMerged publishes normalized events to topic, merged with the
// publishes to it that wait at the same time.
func (e *Store) publishMerged(ctx context.Context, topic string, events []store.EventInput, fresh bool) ([]store.PublishResult, error) {
	gv, _ := e.pubs.LoadOrStore(topic, &pubGroups{})
	g, _ := gv.(*pubGroups)
	op := &pubOp{ctx: ctx, events: events, fresh: fresh, done: make(chan struct{}), lead: make(chan struct{})}
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
			return op.res, op.err
		case <-op.lead:
			op.lead = nil // lead once
			e.runMerged(ctx, g, topic)
		case <-ctx.Done():
			// A caller that gives up leaves the queue; one already in a
			// merged publish lets it run, and its answer is dropped, as a
			// cancelled commit's would be. One handed the lead passes it
			// on by running the next merged publish.
			if g.leave(op) {
				e.runMerged(ctx, g, topic)
			}
			return nil, ctx.Err()
		}
	}
}

// leave takes op out of the queue, if it still waits, and reports whether
// it had been handed the lead.
func (g *pubGroups) leave(op *pubOp) (lead bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.waiting, op)
	if i < 0 {
		return false
	}
	g.waiting = slices.Delete(g.waiting, i, i+1)
	if op.lead == nil {
		return false
	}
	select {
	case <-op.lead:
		return true
	default:
		return false
	}
}

// runMerged runs the next merged publish, then hands the lead to the first
// publish still waiting, if any: each caller leads at most once, so none
// is held up by a stream of others' publishes.
func (e *Store) runMerged(ctx context.Context, g *pubGroups, topic string) {
	g.mu.Lock()
	n, events := 0, 0
	for n < len(g.waiting) && (n == 0 || events+len(g.waiting[n].events) <= maxMerged) {
		events += len(g.waiting[n].events)
		n++
	}
	group := g.waiting[:n:n]
	g.waiting = g.waiting[n:]
	g.mu.Unlock()
	e.publishGroup(ctx, topic, group)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) == 0 {
		g.leading = false
		return
	}
	close(g.waiting[0].lead)
}

// publishGroup publishes the events of group's live ops in one
// transaction and hands each op its results. ctx is the leader's; its
// cancellation does not reach the transaction, which is the others' too.
func (e *Store) publishGroup(ctx context.Context, topic string, group []*pubOp) {
	live := group[:0:0]
	var all []store.EventInput
	fresh := true
	for _, op := range group {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			close(op.done)
			continue
		}
		live = append(live, op)
		all = append(all, op.events...)
		fresh = fresh && op.fresh
	}
	if len(live) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var res []store.PublishResult
	err := e.ev.TopicTx(ctx, topic, func(tx EventTx) error {
		var err error
		res, err = publishIn(tx, topic, "", store.AnyVersion, all, publishFlags{route: true, fresh: fresh})
		return err
	})
	if err == nil && len(res) != len(all) {
		_, err = checkLen(res, len(all), "events", nil)
	}
	for _, op := range live {
		if err != nil {
			op.err = err
		} else {
			op.res, res = res[:len(op.events):len(op.events)], res[len(op.events):]
		}
		close(op.done)
	}
}
