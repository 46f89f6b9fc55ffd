package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/store"
)

// settleGroup is the verdicts of one outcome that go into one statement.
type settleGroup struct {
	items   []int // indexes into the call's verdicts
	ids     [][16]byte
	tokens  []int64
	results [][]byte    // Complete
	retry   []time.Time // Fail, Snooze
	msgs    []*string   // Fail, DeadLetter, Cancel
	stacks  []*string
}

// settleOrder fixes the order statements run in, so results are read back
// in the order they were queued.
var settleOrder = []store.Outcome{store.Complete, store.Fail, store.DeadLetter, store.Cancel, store.Snooze, store.Release}

// SettleJobs implements engine.Driver. All verdicts of one outcome are applied by
// one UPDATE … FROM unnest(…) statement, and the statements of a call are
// pipelined in one implicit transaction: one round trip, all or nothing.
//
// Verdicts for distinct jobs commute, so applying them by outcome is
// applying them in input order. When a job is named more than once, its
// verdicts are tried in input order, one per round: every applied verdict
// clears the lock token, so once one applies the later ones are refused with
// ErrLockLost, and while one is refused the next is tried in the next round.
// Such calls run their rounds in one explicit transaction.
func (s *backend) SettleJobs(ctx context.Context, verdicts []store.Verdict, errs []error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	byID := make(map[store.ID][]int, len(verdicts)) // valid verdicts of each job, in input order
	repeated := false
	for i := range verdicts {
		if errs[i] != nil {
			continue
		}
		id := verdicts[i].ID
		repeated = repeated || len(byID[id]) > 0
		byID[id] = append(byID[id], i)
	}
	if len(byID) == 0 {
		return nil
	}
	st := &settleState{s: s, verdicts: verdicts, errs: errs, byID: byID, now: s.now()}
	var err error
	if repeated {
		err = pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error { return st.run(ctx, tx) })
	} else {
		err = st.run(ctx, s.pool)
	}
	if err != nil {
		return s.fail(ctx, "settle", err)
	}
	s.changed(st.available, st.finished)
	return nil
}

// settleState is one Settle call in progress.
type settleState struct {
	s        *backend
	verdicts []store.Verdict
	errs     []error
	byID     map[store.ID][]int
	now      time.Time

	available []string   // queues that got claimable jobs
	finished  []store.ID // jobs that finished
}

// batcher sends pipelined statements: the pool (one implicit transaction)
// or an explicit transaction.
type batcher interface {
	querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// run applies the verdicts round by round. Each round takes the next
// untried verdict of every job that has one.
func (st *settleState) run(ctx context.Context, db batcher) error {
	next := make(map[store.ID]int, len(st.byID)) // position in byID of the verdict to try
	var refused []int
	for {
		var round []int
		for id, idx := range st.byID {
			if k := next[id]; k < len(idx) {
				round = append(round, idx[k])
			}
		}
		if len(round) == 0 {
			break
		}
		slices.Sort(round)
		applied, err := st.apply(ctx, db, round)
		if err != nil {
			return err
		}
		for _, i := range round {
			id := st.verdicts[i].ID
			if applied[i] {
				// Every later verdict for this job finds its token cleared.
				for _, j := range st.byID[id][next[id]+1:] {
					st.errs[j] = store.ErrLockLost
				}
				next[id] = len(st.byID[id])
				continue
			}
			refused = append(refused, i)
			next[id]++
		}
	}
	st.s.explainRefusals(ctx, db, refused, func(i int) store.ID { return st.verdicts[i].ID }, st.errs)
	return nil
}

// apply runs one round's verdicts, one statement per outcome, and reports
// which applied.
func (st *settleState) apply(ctx context.Context, db batcher, round []int) (map[int]bool, error) {
	groups := map[store.Outcome]*settleGroup{}
	for _, i := range round {
		v := &st.verdicts[i]
		g := groups[v.Outcome]
		if g == nil {
			g = &settleGroup{}
			groups[v.Outcome] = g
		}
		g.add(i, v)
	}
	at := st.now.UTC().Format(time.RFC3339Nano)
	b := &pgx.Batch{}
	var order []*settleGroup
	for _, o := range settleOrder {
		g := groups[o]
		if g == nil {
			continue
		}
		var args []any
		switch o {
		case store.Complete:
			args = []any{st.now, g.ids, g.tokens, g.results}
		case store.Fail:
			args = []any{st.now, at, g.ids, g.tokens, g.retry, g.msgs, g.stacks}
		case store.DeadLetter, store.Cancel:
			args = []any{st.now, at, g.ids, g.tokens, g.msgs, g.stacks}
		case store.Snooze:
			args = []any{st.now, g.ids, g.tokens, g.retry}
		case store.Release:
			args = []any{g.ids, g.tokens}
		}
		b.Queue(st.s.q.settle[o], args...)
		order = append(order, g)
	}
	br := db.SendBatch(ctx, b)
	applied, err := st.read(br, order)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return applied, err
}

// read collects what each statement of a round settled.
func (st *settleState) read(br pgx.BatchResults, order []*settleGroup) (map[int]bool, error) {
	applied := map[int]bool{}
	for _, g := range order {
		pos := make(map[store.ID]int, len(g.items))
		for _, i := range g.items {
			pos[st.verdicts[i].ID] = i
		}
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		var id [16]byte
		var queue, state string
		if _, err := pgx.ForEachRow(rows, []any{&id, &queue, &state}, func() error {
			applied[pos[id]] = true
			switch store.State(state) {
			case store.StateAvailable:
				if !slices.Contains(st.available, queue) {
					st.available = append(st.available, queue)
				}
			case store.StateCompleted, store.StateCancelled, store.StateDead:
				st.finished = append(st.finished, id)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return applied, nil
}

// add puts verdict i into the group with the arguments its outcome needs.
func (g *settleGroup) add(i int, v *store.Verdict) {
	g.items = append(g.items, i)
	g.ids = append(g.ids, v.ID)
	g.tokens = append(g.tokens, int64(v.Token))
	retry := v.RetryAt // resolved by the engine
	switch v.Outcome {
	case store.Complete:
		g.results = append(g.results, v.Result)
	case store.Fail:
		g.retry = append(g.retry, retry)
		g.addError(v.Error, "failed")
	case store.DeadLetter:
		g.addError(v.Error, "dead-lettered by handler")
	case store.Cancel:
		if v.Error == nil {
			g.msgs, g.stacks = append(g.msgs, nil), append(g.stacks, nil)
		} else {
			g.addError(v.Error, "cancelled")
		}
	case store.Snooze:
		g.retry = append(g.retry, retry)
	case store.Release:
	}
}

// addError adds an error entry's message (fallback when empty) and stack,
// made storable: valid UTF-8 without NUL, truncated to the limits.
func (g *settleGroup) addError(e *store.AttemptError, fallback string) {
	msg, stack := fallback, ""
	if e != nil {
		c := store.AttemptError{Message: clean(e.Message), Stack: clean(e.Stack)}
		c.Truncate()
		if c.Message != "" {
			msg = c.Message
		}
		stack = c.Stack
	}
	g.msgs = append(g.msgs, &msg)
	if stack == "" {
		g.stacks = append(g.stacks, nil)
	} else {
		g.stacks = append(g.stacks, &stack)
	}
}

// clean makes text storable in PostgreSQL: invalid UTF-8 and NUL bytes
// become U+FFFD.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}
