package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// ClaimJobs implements engine.Driver in one round trip: lightSQL, promoteSQL,
// claimSQL and verifyKeysSQL pipelined in one implicit transaction.
//
// # Ordering keys under concurrency
//
// SKIP LOCKED alone cannot keep two claimers from running two jobs of one
// ordering key at once: each decides whether a job is its key's head on its
// own snapshot, and a claim committed by another claimer after that
// snapshot was taken is invisible to it. (Example: jobs a and b of key k;
// claimer A's snapshot shows only b and claims it; claimer B's snapshot,
// taken before A commits, shows a, earlier than b, and claims it too.)
//
// So every keyed claim is serialised per key and looked at twice:
//
//  1. claimSQL takes a transaction-level advisory lock on the key's bucket
//     (pg_try_advisory_xact_lock) before it claims a keyed job, and skips
//     the job when another transaction holds the lock. A claimer holds the
//     lock until its claim commits.
//  2. verifyKeysSQL, a later statement of the same transaction, so with a
//     snapshot taken after the lock was acquired, gives back any keyed job
//     just claimed that has another job of its key running, an earlier
//     live one, or an earlier dead one that holds the key.
//
// Any other claim of a job of key k either committed before this claimer
// got k's lock — PostgreSQL makes a commit visible before it releases the
// transaction's locks, so step 2 sees it — or had not, in which case it
// still held the lock and step 1 skipped k. Settles, reaps and cancels only
// stop jobs from running, and enqueues only add jobs that wait behind the
// running one, so no other change can put two jobs of a key in the running
// state. Within one statement a key has one head, so a claim takes at most
// one job per key.
//
// A dead job that holds its key (hold_when_dead) blocks the jobs after it
// as a live one does. It became dead from running, which blocks them too,
// so no snapshot sees a gap in between; it stops blocking only when it is
// purged, or requeued (live again, so still first in line). A job of the
// key that was claimed and died after claimSQL's snapshot but before the
// lock could only have been claimed before this claimer took the lock, so
// step 2 sees it dead and holding.
func (s *backend) ClaimJobs(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	tokens := make([]int64, p.Limit)
	for i := range tokens {
		tokens[i] = int64(store.NewLockToken())
	}
	b := &pgx.Batch{}
	b.Queue(lightSQL)
	b.Queue(s.q.promote, p.Queue, now)
	b.Queue(s.q.claim, p.Queue, p.Limit, now.Add(p.LockFor), p.Worker, tokens, s.keyClass, now)
	b.Queue(s.q.verifyKeys)
	br := s.pool.SendBatch(ctx, b)
	jobs, err := readClaim(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	return jobs, nil
}

// readClaim reads the results of Claim's batch: the claimed jobs less those
// the ordering-key check gave back.
func readClaim(br pgx.BatchResults) ([]*store.Job, error) {
	for range 2 { // lightSQL, promoteSQL
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, err
	}
	back, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil {
		return nil, err
	}
	for _, id := range back {
		jobs = slices.DeleteFunc(jobs, func(j *store.Job) bool { return j.ID == id })
	}
	return jobs, nil
}

// RenewLocks implements engine.Driver with one statement for the batch.
func (s *backend) RenewLocks(ctx context.Context, renewals []store.Renewal, errs []error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	now := s.now()
	type lock struct {
		id  store.ID
		tok store.LockToken
	}
	pos := map[lock]int{} // index in the arrays; a repeated lock keeps its last LockFor
	var (
		idA    [][16]byte
		tokens []int64
		until  []time.Time
	)
	for i, r := range renewals {
		if errs[i] != nil {
			continue
		}
		k := lock{r.ID, r.Token}
		if at, ok := pos[k]; ok {
			until[at] = now.Add(r.LockFor)
			continue
		}
		pos[k] = len(idA)
		idA, tokens, until = append(idA, r.ID), append(tokens, int64(r.Token)), append(until, now.Add(r.LockFor))
	}
	if len(idA) == 0 {
		return nil
	}
	renewed := map[lock]bool{}
	var id [16]byte
	var tok int64
	err := s.light(ctx, s.q.renew, []any{idA, tokens, until}, []any{&id, &tok}, func() error {
		renewed[lock{id, store.LockToken(tok)}] = true
		return nil
	})
	if err != nil {
		return s.fail(ctx, "renew", err)
	}
	var refused []int
	for i, r := range renewals {
		if errs[i] == nil && !renewed[lock{r.ID, r.Token}] {
			refused = append(refused, i)
		}
	}
	s.explainRefusals(ctx, s.pool, refused, func(i int) store.ID { return renewals[i].ID }, errs)
	return nil
}

// querier runs a query on the pool or in a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// explainRefusals sets errs[i] for each refused item: ErrLockLost when its
// job exists, ErrNotFound when not. The writes are done by now, so if the
// look-up itself fails every refused item is answered ErrLockLost, which is
// true of each: its verdict or renewal did not apply.
func (s *backend) explainRefusals(ctx context.Context, q querier, refused []int, idOf func(int) store.ID, errs []error) {
	if len(refused) == 0 {
		return
	}
	want := make([][16]byte, len(refused))
	for k, i := range refused {
		want[k] = idOf(i)
	}
	exists := map[store.ID]bool{}
	rows, err := q.Query(ctx, s.q.existing, want)
	if err == nil {
		var found []store.ID
		found, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ID, error) {
			var id store.ID
			err := r.Scan((*[16]byte)(&id))
			return id, err
		})
		for _, id := range found {
			exists[id] = true
		}
	}
	for _, i := range refused {
		errs[i] = engine.Explain(err != nil || exists[idOf(i)], idOf(i))
	}
	if err != nil {
		s.log.Warn("spool: postgres: cannot tell lost locks from missing jobs", "err", err)
	}
}

// ReapExpired implements engine.Driver: one statement returns up to limit
// expired jobs, skipping rows other reapers hold, so any number of nodes
// may reap at once.
func (s *backend) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	if err := s.start(ctx); err != nil {
		return store.ReapResult{}, err
	}
	now := s.now()
	var r store.ReapResult
	var queues []string
	var dead []store.ID
	var state, queue string
	var id [16]byte
	if err := s.light(ctx, s.q.reap, []any{now, now.UTC().Format(time.RFC3339Nano), limit}, []any{&state, &queue, &id}, func() error {
		if state == string(store.StateDead) {
			r.DeadLettered++
			dead = append(dead, id)
		} else {
			r.Returned++
			if !slices.Contains(queues, queue) {
				queues = append(queues, queue)
			}
		}
		return nil
	}); err != nil {
		return store.ReapResult{}, s.fail(ctx, "reap", err)
	}
	s.changed(queues, dead)
	return r, nil
}

// light runs one statement after lightSQL in one implicit transaction (one
// round trip), calling fn for each row it returns, scanned into dest.
func (s *backend) light(ctx context.Context, sql string, args, dest []any, fn func() error) error {
	b := &pgx.Batch{}
	b.Queue(lightSQL)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			_, err = pgx.ForEachRow(rows, dest, fn)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}
