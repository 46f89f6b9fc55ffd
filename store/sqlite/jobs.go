package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

const jobColumns = `id, queue, kind, payload, priority, run_at, state, tenant, unique_key, ordering_key,
	attempts, max_attempts, deliveries, max_deliveries, lock_token, locked_until,
	errors, result, dead_reason, created_at, finished_at, hold_when_dead, unique_until,
	metadata, attempted_at, last_attempt_us`

type scanner interface{ Scan(dest ...any) error }

func scanJob(r scanner) (*store.Job, error) {
	var (
		j                                 store.Job
		state                             string
		uniq, ord, errs, dead             sql.NullString
		token, lockedUntil, runAt, finish sql.NullInt64
		uniqueUntil, attempted, took      sql.NullInt64
		created                           int64
		meta                              sql.NullString
	)
	if err := r.Scan(&j.ID, &j.Queue, &j.Kind, &j.Payload, &j.Priority, &runAt, &state, &j.Tenant, &uniq, &ord,
		&j.Attempts, &j.MaxAttempts, &j.Deliveries, &j.MaxDeliveries, &token, &lockedUntil,
		&errs, &j.Result, &dead, &created, &finish, &j.HoldKeyWhenDead, &uniqueUntil,
		&meta, &attempted, &took); err != nil {
		return nil, err
	}
	if err := scanTiming(&j, meta, attempted, took); err != nil {
		return nil, err
	}
	j.State = store.State(state)
	j.RunAt = fromMicros(runAt)
	j.UniqueKey, j.OrderingKey, j.DeadReason = uniq.String, ord.String, dead.String
	j.LockToken = store.LockToken(token.Int64)
	j.LockedUntil = fromMicros(lockedUntil)
	j.CreatedAt = time.UnixMicro(created).UTC()
	j.FinishedAt = fromMicros(finish)
	j.UniqueUntil = fromMicros(uniqueUntil)
	if errs.Valid && errs.String != "" {
		if err := json.Unmarshal([]byte(errs.String), &j.Errors); err != nil {
			return nil, fmt.Errorf("spool: job %s: decode error history: %w", j.ID, err)
		}
	}
	return &j, nil
}

// scanTiming fills a job's metadata and attempt timing from their columns.
func scanTiming(j *store.Job, meta sql.NullString, attempted, took sql.NullInt64) error {
	var err error
	if j.Metadata, err = engine.DecodeMetadata(j.ID, []byte(meta.String)); err != nil {
		return err
	}
	j.AttemptedAt = fromMicros(attempted)
	j.LastAttemptDuration = time.Duration(took.Int64) * time.Microsecond
	return nil
}

// InsertJobs implements engine.Driver.
func (s *backend) InsertJobs(ctx context.Context, in engine.Insert) ([]store.EnqueueResult, error) {
	b := &insertBatch{jobs: in.Jobs, results: make([]store.EnqueueResult, len(in.Jobs)), now: in.Now, mayConflict: !in.Fresh}
	if err := s.writer.insert(ctx, b, func() { s.wakeQueues(b.jobs, b.results) }); err != nil {
		return nil, err
	}
	return b.results, nil
}

// InsertJobsTx implements engine.TxInserter: the jobs are inserted on the
// caller's transaction and become visible, durable and claimable only when
// the caller commits. tx must belong to a *sql.DB opened on the same file
// (see DSN). Waiting workers wake when the caller commits.
func (s *backend) InsertJobsTx(ctx context.Context, tx *sql.Tx, jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error) {
	if err := s.admitTx(ctx, tx, jobs); err != nil { // a latched fsync failure, or no headroom
		return nil, err
	}
	results := make([]store.EnqueueResult, len(jobs))
	if _, err := tx.ExecContext(ctx, "SAVEPOINT spool_enqueue"); err != nil {
		return nil, fmt.Errorf("spool: enqueue in tx: %w", err)
	}
	if err := insertJobs(txExec{ctx, tx}, jobs, results, now, true); err != nil {
		_, rerr := tx.ExecContext(ctx, "ROLLBACK TO spool_enqueue")
		return nil, storeFull(errors.Join(err, rerr))
	}
	if _, err := tx.ExecContext(ctx, "RELEASE spool_enqueue"); err != nil {
		return nil, fmt.Errorf("spool: enqueue in tx: %w", err)
	}
	return results, nil
}

const insertHead = `INSERT INTO spool_jobs (id, queue, kind, payload, priority, run_at, state, tenant,
	unique_key, ordering_key, max_attempts, max_deliveries, created_at`

const insertTail = ` ON CONFLICT DO NOTHING`

// insertChunk is how many rows one INSERT statement carries.
const insertChunk = 64

// insertCols is how many parameters a row of insertSQL takes; a row of
// insertExtSQL takes insertExtCols more: hold_when_dead, unique_until,
// unique_held and metadata.
const (
	insertCols    = 13
	insertExtCols = 4
)

// insertSQL[n] inserts n rows. insertExtSQL[n] also sets hold_when_dead,
// unique_until, unique_held and metadata: it serves the chunks that have a
// job with HoldKeyWhenDead, UniqueFor or Metadata, so the common insert
// binds no parameter for them.
var insertSQL, insertExtSQL [insertChunk + 1]string

func init() {
	row, extRow := "("+placeholders(insertCols)+")", "("+placeholders(insertCols+insertExtCols)+")"
	for n := 1; n <= insertChunk; n++ {
		insertSQL[n] = insertHead + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + insertTail
		insertExtSQL[n] = insertHead + ", hold_when_dead, unique_until, unique_held, metadata) VALUES " +
			strings.TrimSuffix(strings.Repeat(extRow+", ", n), ", ") + insertTail
	}
}

// extended tells the jobs that need insertExtSQL's columns.
func extended(p store.EnqueueParams) bool {
	return p.HoldKeyWhenDead || p.UniqueFor > 0 || len(p.Metadata) > 0
}

// uniqueForMicros is UniqueFor in whole microseconds, rounded up, so that
// any window is at least one.
func uniqueForMicros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// findHolderSQL finds the job holding a (tenant, unique key): the live one,
// or a finished one that keeps the key (unique_held), which the unique
// index holds at most one of; open says whether it holds it at ?3 (a live
// job, or unique_until after ?3). The OR is written as in the index's
// predicate, so the lookup is a probe of spool_jobs_unique.
const findHolderSQL = `SELECT id, state, state IN ('scheduled', 'available', 'running') OR coalesce(unique_until > ?3, 0)
	FROM spool_jobs
	WHERE tenant = ?1 AND unique_key = ?2 AND (state IN ('scheduled', 'available', 'running') OR unique_held = 1)`

// releaseSQL makes a finished job whose window has passed give up its
// unique key.
const releaseSQL = `UPDATE spool_jobs SET unique_held = 0
	WHERE id = ? AND unique_held = 1 AND state NOT IN ('scheduled', 'available', 'running') AND unique_until <= ?`

// holder is the job holding a unique key.
type holder struct {
	id    store.ID
	state store.State
	open  bool // it holds the key now: live, or within its window
}

// findHolder returns the job holding (tenant, key), or nil when none does.
func findHolder(x execer, tenant, key string, now time.Time) (*holder, error) {
	var h holder
	var st string
	err := x.queryRow(findHolderSQL, tenant, key, now.UnixMicro()).Scan(&h.id, &st, &h.open)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h.state = store.State(st)
	return &h, nil
}

// takeKey clears the way for a job that wants (tenant, key): nil when no
// other job holds it, or held the key until a window that has passed
// (that job now gives it up); else the holder, which keeps it. skip is a
// job that does not count as another (the one being requeued).
func takeKey(x execer, tenant, key string, skip store.ID, now time.Time) (*holder, error) {
	h, err := findHolder(x, tenant, key, now)
	if err != nil || h == nil || h.id == skip {
		return nil, err
	}
	if h.open {
		return h, nil
	}
	if _, err := x.exec(releaseSQL, h.id, now.UnixMicro()); err != nil {
		return nil, err
	}
	return nil, nil
}

// insertJobs inserts normalized jobs in multi-row statements and fills
// results. A row that is not inserted lost to a held unique key (its result
// names the holder) or to a taken ID (an *ItemError fails the whole call);
// a key held by a finished job whose window has passed is taken from it,
// and the row inserted.
func insertJobs(x execer, jobs []store.EnqueueParams, results []store.EnqueueResult, now time.Time, mayConflict bool) error {
	created := now.UnixMicro()
	args := make([]any, 0, (insertCols+1)*min(len(jobs), insertChunk))
	for start := 0; start < len(jobs); start += insertChunk {
		chunk := jobs[start:min(start+insertChunk, len(jobs))]
		stmts, width := &insertSQL, insertCols
		ext := slices.ContainsFunc(chunk, extended)
		if ext {
			stmts, width = &insertExtSQL, insertCols+insertExtCols
		}
		args = args[:0]
		for i := range chunk {
			p := &chunk[i]
			state := store.StateAvailable
			if p.RunAt.After(now) {
				state = store.StateScheduled
			}
			results[start+i] = store.EnqueueResult{ID: p.ID, State: state}
			args = append(args, p.ID, p.Queue, p.Kind, p.Payload, p.Priority, p.RunAt.UnixMicro(), string(state),
				p.Tenant, nullString(p.UniqueKey), nullString(p.OrderingKey), p.MaxAttempts, p.MaxDeliveries, created)
			if ext {
				var until any
				if p.UniqueFor > 0 {
					until = created + uniqueForMicros(p.UniqueFor)
				}
				args = append(args, p.HoldKeyWhenDead, until, p.UniqueFor > 0, nullString(string(engine.EncodeMetadata(p.Metadata))))
			}
		}
		if !mayConflict {
			res, err := x.exec(stmts[len(chunk)], args...)
			if err != nil {
				return fmt.Errorf("spool: enqueue: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("spool: enqueue: %w", err)
			}
			if int(n) != len(chunk) {
				return fmt.Errorf("spool: enqueue: %d of %d rows inserted, though none could conflict", n, len(chunk))
			}
			continue
		}
		if _, err := x.exec("SAVEPOINT bulk_insert"); err != nil {
			return fmt.Errorf("spool: enqueue: %w", err)
		}
		res, err := x.exec(stmts[len(chunk)], args...)
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err == nil && int(n) == len(chunk) {
			if _, err := x.exec("RELEASE bulk_insert"); err != nil {
				return fmt.Errorf("spool: enqueue: %w", err)
			}
			continue
		}
		// Some rows were skipped (a held unique key, a taken ID): undo the
		// chunk and insert row by row, so each skipped row gets its answer.
		if _, rerr := x.exec("ROLLBACK TO bulk_insert"); rerr != nil {
			return errors.Join(err, rerr)
		}
		if _, rerr := x.exec("RELEASE bulk_insert"); rerr != nil {
			return errors.Join(err, rerr)
		}
		if err != nil {
			return fmt.Errorf("spool: enqueue: %w", err)
		}
		for i := range chunk {
			if err := insertOne(x, stmts[1], args[width*i:width*i+width], &chunk[i], &results[start+i], now); err != nil {
				var ve *store.ValidationError
				if errors.As(err, &ve) {
					return &store.ItemError{Index: start + i, Err: err}
				}
				return fmt.Errorf("spool: enqueue: %w", err)
			}
		}
	}
	return carryHistory(x, jobs, results)
}

// carryHistory records the attempts and errors that jobs start with, on
// the rows just inserted. Only jobs that continue work begun elsewhere
// have any, so the common insert stays one statement.
func carryHistory(x execer, jobs []store.EnqueueParams, results []store.EnqueueResult) error {
	for i := range jobs {
		p := &jobs[i]
		if !p.HasHistory() || results[i].Duplicate {
			continue
		}
		var errs any
		if len(p.Errors) > 0 {
			b, err := json.Marshal(p.Errors)
			if err != nil {
				return err
			}
			errs = string(b)
		}
		if _, err := x.exec(`UPDATE spool_jobs SET attempts = ?, errors = ? WHERE id = ?`, p.Attempts, errs, p.ID); err != nil {
			return fmt.Errorf("spool: enqueue: %w", err)
		}
	}
	return nil
}

// insertOne inserts one row with stmt and explains it when the INSERT
// skips it: a job holds its unique key (the result then names that job), or
// its ID is taken (a *store.ValidationError). A key held by a finished job
// whose window has passed is taken from that job, and the row inserted.
func insertOne(x execer, stmt string, args []any, p *store.EnqueueParams, res *store.EnqueueResult, now time.Time) error {
	for range 2 { // the writer is alone: once a key is given up, only a taken ID can refuse the row
		r, err := x.exec(stmt, args...)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if p.UniqueKey == "" {
			break
		}
		h, err := takeKey(x, p.Tenant, p.UniqueKey, store.ID{}, now)
		if err != nil {
			return err
		}
		if h != nil {
			*res = store.EnqueueResult{ID: h.id, Duplicate: true, State: h.state}
			return nil
		}
	}
	return &store.ValidationError{Field: "id", Reason: p.ID.String() + " is already taken"}
}

func (s *backend) wakeQueues(jobs []store.EnqueueParams, results []store.EnqueueResult) {
	last := ""
	for i := range jobs {
		if results[i].Duplicate || results[i].State != store.StateAvailable || jobs[i].Queue == last {
			continue
		}
		last = jobs[i].Queue
		s.available.Fire(last)
	}
}

// promoteSQL makes every due scheduled job of a queue available, so the
// claim that follows sees all of them in priority order.
const promoteSQL = `UPDATE spool_jobs SET state = 'available' WHERE state = 'scheduled' AND queue = ? AND run_at <= ?`

// claimSQL claims up to a limit of a queue's available jobs in claim order.
// A job with an ordering key qualifies only when it heads its key's line:
// no job of the key is running, none earlier is live, and none earlier is
// dead and holds the key (hold_when_dead: spool_jobs_dead_holds, empty in a
// healthy store, makes that one index probe).
const claimSQL = `UPDATE spool_jobs
	SET state = 'running', lock_token = (random() | 1), locked_until = ?, attempted_at = ?, deliveries = deliveries + 1, worker = ?
	WHERE id IN (
		SELECT j.id FROM spool_jobs AS j
		WHERE j.state = 'available' AND j.queue = ?
		  AND (j.ordering_key IS NULL OR (NOT EXISTS (
			SELECT 1 FROM spool_jobs AS o
			WHERE o.tenant = j.tenant AND o.ordering_key = j.ordering_key AND o.ordering_key IS NOT NULL
			  AND o.state IN ('scheduled', 'available', 'running') AND (o.id < j.id OR o.state = 'running'))
		  AND NOT EXISTS (
			SELECT 1 FROM spool_jobs AS d
			WHERE d.tenant = j.tenant AND d.ordering_key = j.ordering_key
			  AND d.state = 'dead' AND d.hold_when_dead = 1 AND d.id < j.id)))
		ORDER BY j.priority, j.run_at, j.id
		LIMIT ?)
	RETURNING ` + claimedColumns

// claimedColumns are what a claim returns: a just-claimed job is running, and
// a running job never has a result, a dead reason or a finish time; its
// attempted_at is the claim's now, which the caller knows.
const claimedColumns = `id, queue, kind, payload, priority, run_at, tenant, unique_key, ordering_key,
	attempts, max_attempts, deliveries, max_deliveries, lock_token, locked_until, errors, created_at, hold_when_dead, unique_until,
	metadata, last_attempt_us`

func scanClaimed(r scanner, now time.Time) (*store.Job, error) {
	var (
		j                  store.Job
		uniq, ord, errs    sql.NullString
		runAt, lockedUntil int64
		created, token     int64
		uniqueUntil, took  sql.NullInt64
		meta               sql.NullString
	)
	if err := r.Scan(&j.ID, &j.Queue, &j.Kind, &j.Payload, &j.Priority, &runAt, &j.Tenant, &uniq, &ord,
		&j.Attempts, &j.MaxAttempts, &j.Deliveries, &j.MaxDeliveries, &token, &lockedUntil, &errs, &created, &j.HoldKeyWhenDead,
		&uniqueUntil, &meta, &took); err != nil {
		return nil, err
	}
	if err := scanTiming(&j, meta, sql.NullInt64{Int64: now.UnixMicro(), Valid: true}, took); err != nil {
		return nil, err
	}
	j.State = store.StateRunning
	j.RunAt = time.UnixMicro(runAt).UTC()
	j.UniqueKey, j.OrderingKey = uniq.String, ord.String
	j.LockToken = store.LockToken(token)
	j.LockedUntil = time.UnixMicro(lockedUntil).UTC()
	j.CreatedAt = time.UnixMicro(created).UTC()
	j.UniqueUntil = fromMicros(uniqueUntil)
	if errs.Valid && errs.String != "" {
		if err := json.Unmarshal([]byte(errs.String), &j.Errors); err != nil {
			return nil, fmt.Errorf("spool: job %s: decode error history: %w", j.ID, err)
		}
	}
	return &j, nil
}

const pausedSQL = `SELECT paused FROM spool_queues WHERE name = ?`

// ClaimJobs implements engine.Driver.
func (s *backend) ClaimJobs(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	var jobs []*store.Job
	err := s.writer.doLight(ctx, func(x execer) error {
		jobs = jobs[:0]
		var paused bool
		if err := x.queryRow(pausedSQL, p.Queue).Scan(&paused); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if paused {
			return nil
		}
		now := s.now()
		if _, err := x.exec(promoteSQL, p.Queue, now.UnixMicro()); err != nil {
			return fmt.Errorf("spool: claim: %w", err)
		}
		rows, err := x.query(claimSQL, now.Add(p.LockFor).UnixMicro(), now.UnixMicro(), nullString(p.Worker), p.Queue, p.Limit)
		if err != nil {
			return fmt.Errorf("spool: claim: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			j, err := scanClaimed(rows, now)
			if err != nil {
				return fmt.Errorf("spool: claim: %w", err)
			}
			jobs = append(jobs, j)
		}
		return rows.Err()
	}, nil)
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

const renewSQL = `UPDATE spool_jobs SET locked_until = ? WHERE id = ? AND lock_token = ? AND state = 'running'`

// RenewLocks implements engine.Driver.
func (s *backend) RenewLocks(ctx context.Context, renewals []store.Renewal, errs []error) error {
	checked := slices.Clone(errs) // the writer may run the op twice: start each run from here
	return s.writer.doLight(ctx, func(x execer) error {
		copy(errs, checked)
		now := s.now()
		for i, r := range renewals {
			if errs[i] != nil {
				continue
			}
			res, err := x.exec(renewSQL, now.Add(r.LockFor).UnixMicro(), r.ID, int64(r.Token))
			if err != nil {
				return fmt.Errorf("spool: renew: %w", err)
			}
			if errs[i], err = refusal(x, res, r.ID); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// refusal turns a fenced update's row count into the per-item answer:
// nil when it applied, else ErrLockLost if the job exists, ErrNotFound if not.
func refusal(x execer, res sql.Result, id store.ID) (error, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return nil, nil
	}
	var one int
	switch err := x.queryRow(`SELECT 1 FROM spool_jobs WHERE id = ?`, id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return engine.Explain(false, id), nil
	case err != nil:
		return nil, err
	}
	return engine.Explain(true, id), nil
}

// appendErrorSQL appends the JSON object in ?2.. to a job's history, keeping
// the newest store.MaxErrorHistory entries. The object is built in SQL so its
// attempt number reads the row.
var appendErrorSQL = fmt.Sprintf(`(CASE WHEN json_array_length(coalesce(errors, '[]')) >= %d
		THEN json_insert(json_remove(errors, '$[0]'), '$[#]', json_object('at', ?, 'attempt', attempts + 1, 'message', ?, 'stack', ?))
		ELSE json_insert(coalesce(errors, '[]'), '$[#]', json_object('at', ?, 'attempt', attempts + 1, 'message', ?, 'stack', ?)) END)`,
	store.MaxErrorHistory)

const fence = ` WHERE id = ? AND lock_token = ? AND state = 'running'`

// took sets how long the delivery being settled took: from its claim
// (attempted_at) to the settle's now, its one parameter. Every verdict but
// a release sets it.
const took = ` last_attempt_us = max(? - attempted_at, 0)`

var settleSQL = map[store.Outcome]string{
	store.Complete: `UPDATE spool_jobs SET state = 'completed', finished_at = ?, result = ?,` + took + `, lock_token = NULL, locked_until = NULL` + fence,
	store.Fail: `UPDATE spool_jobs SET
		errors = ` + appendErrorSQL + `,
		state = CASE WHEN attempts + 1 >= max_attempts THEN 'dead' WHEN ? <= ? THEN 'available' ELSE 'scheduled' END,
		dead_reason = CASE WHEN attempts + 1 >= max_attempts THEN 'max_attempts' END,
		finished_at = CASE WHEN attempts + 1 >= max_attempts THEN ? END,
		run_at = CASE WHEN attempts + 1 >= max_attempts THEN run_at ELSE ? END,
		attempts = attempts + 1,` + took + `, lock_token = NULL, locked_until = NULL` + fence,
	store.DeadLetter: `UPDATE spool_jobs SET errors = ` + appendErrorSQL + `,
		state = 'dead', dead_reason = 'dead_lettered', finished_at = ?, attempts = attempts + 1,` + took + `,
		lock_token = NULL, locked_until = NULL` + fence,
	store.Cancel: `UPDATE spool_jobs SET errors = CASE WHEN ? THEN ` + appendErrorSQL + ` ELSE errors END,
		state = 'cancelled', finished_at = ?,` + took + `, lock_token = NULL, locked_until = NULL` + fence,
	store.Snooze: `UPDATE spool_jobs SET state = CASE WHEN ? <= ? THEN 'available' ELSE 'scheduled' END, run_at = ?,` + took + `,
		lock_token = NULL, locked_until = NULL` + fence,
	store.Release: `UPDATE spool_jobs SET state = 'available', deliveries = max(deliveries - 1, 0),
		lock_token = NULL, locked_until = NULL` + fence,
}

// errArgs are the six parameters of appendErrorSQL.
func errArgs(e *store.AttemptError, now time.Time, fallback string) []any {
	msg, stack := fallback, ""
	if e != nil {
		c := *e
		c.Truncate()
		msg, stack = cmpString(c.Message, fallback), c.Stack
	}
	at := now.UTC().Format(time.RFC3339Nano)
	return []any{at, msg, nullString(stack), at, msg, nullString(stack)}
}

func cmpString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SettleJobs implements engine.Driver.
func (s *backend) SettleJobs(ctx context.Context, verdicts []store.Verdict, errs []error) error {
	repeated := map[store.ID]bool{}
	seen := make(map[store.ID]bool, len(verdicts))
	for i := range verdicts {
		if seen[verdicts[i].ID] {
			repeated[verdicts[i].ID] = true
		}
		seen[verdicts[i].ID] = true
	}
	var finished []store.ID
	available := map[string]bool{}
	checked := slices.Clone(errs) // the writer may run the op twice: start each run from here
	return s.writer.do(ctx, func(x execer) error {
		copy(errs, checked)
		finished, available = finished[:0], map[string]bool{}
		now := s.now()
		nowUS := now.UnixMicro()
		if _, err := completeBulk(x, verdicts, errs, repeated, nowUS); err != nil {
			return err
		}
		for i := range verdicts {
			if errs[i] != nil || isBulkComplete(&verdicts[i]) && !repeated[verdicts[i].ID] {
				continue
			}
			v := &verdicts[i]
			retry := v.RetryAt
			var args []any
			switch v.Outcome {
			case store.Complete:
				args = []any{nowUS, v.Result, nowUS}
			case store.Fail:
				args = append(errArgs(v.Error, now, "failed"), retry.UnixMicro(), nowUS, nowUS, retry.UnixMicro(), nowUS)
			case store.DeadLetter:
				args = append(errArgs(v.Error, now, "dead-lettered by handler"), nowUS, nowUS)
			case store.Cancel:
				args = append(append([]any{v.Error != nil}, errArgs(v.Error, now, "cancelled")...), nowUS, nowUS)
			case store.Snooze:
				args = []any{retry.UnixMicro(), nowUS, retry.UnixMicro(), nowUS}
			case store.Release:
			}
			args = append(args, v.ID, int64(v.Token))
			res, err := x.exec(settleSQL[v.Outcome], args...)
			if err != nil {
				return fmt.Errorf("spool: settle: %w", err)
			}
			if errs[i], err = refusal(x, res, v.ID); err != nil {
				return err
			}
			if errs[i] == nil && v.Outcome != store.Complete {
				// Failures may finish the job too (dead at max attempts), and
				// releases make it claimable: wake both kinds of waiter.
				var q string
				if err := x.queryRow(`SELECT queue FROM spool_jobs WHERE id = ?`, v.ID).Scan(&q); err == nil {
					available[q] = true
				}
			}
		}
		for i := range verdicts {
			if errs[i] == nil && verdicts[i].Outcome != store.Snooze && verdicts[i].Outcome != store.Release {
				finished = append(finished, verdicts[i].ID)
			}
		}
		return nil
	}, func() {
		s.finished.Fire(finished...)
		for q := range available {
			s.available.Fire(q)
		}
	})
}

// isBulkComplete tells the common verdict, a completion without a result,
// which completeBulk writes many at a time.
func isBulkComplete(v *store.Verdict) bool { return v.Outcome == store.Complete && len(v.Result) == 0 }

const completeChunk = 128

var completeSQL [completeChunk + 1]string

func init() {
	for n := 1; n <= completeChunk; n++ {
		completeSQL[n] = `WITH v(id, tok) AS (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?), ", n), ", ") + `)
			UPDATE spool_jobs SET state = 'completed', finished_at = ?, last_attempt_us = max(? - attempted_at, 0), lock_token = NULL, locked_until = NULL
			FROM v WHERE spool_jobs.id = v.id AND spool_jobs.lock_token = v.tok AND spool_jobs.state = 'running'
`
	}
}

// completeBulk applies the batch's plain completions in a few statements and
// sets errs for those it refused. It returns how many it applied.
// Verdicts for a job named more than once in the call (repeated) are left to
// the one-by-one path, which applies them in input order.
func completeBulk(x execer, verdicts []store.Verdict, errs []error, repeated map[store.ID]bool, nowUS int64) (int, error) {
	var idx []int
	for i := range verdicts {
		if errs[i] == nil && isBulkComplete(&verdicts[i]) && !repeated[verdicts[i].ID] {
			idx = append(idx, i)
		}
	}
	applied := 0
	args := make([]any, 0, 2*min(len(idx), completeChunk)+1)
	for start := 0; start < len(idx); start += completeChunk {
		chunk := idx[start:min(start+completeChunk, len(idx))]
		args = args[:0]
		for _, i := range chunk {
			args = append(args, verdicts[i].ID, int64(verdicts[i].Token))
		}
		args = append(args, nowUS, nowUS)
		if _, err := x.exec("SAVEPOINT bulk_complete"); err != nil {
			return 0, fmt.Errorf("spool: settle: %w", err)
		}
		res, err := x.exec(completeSQL[len(chunk)], args...)
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err == nil && int(n) == len(chunk) {
			applied += len(chunk)
			if _, err := x.exec("RELEASE bulk_complete"); err != nil {
				return 0, fmt.Errorf("spool: settle: %w", err)
			}
			continue
		}
		// Some were refused (or the statement failed): undo the chunk and
		// settle its items one by one, so each gets its own answer.
		if _, rerr := x.exec("ROLLBACK TO bulk_complete"); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
		if _, rerr := x.exec("RELEASE bulk_complete"); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
		if err != nil {
			return 0, fmt.Errorf("spool: settle: %w", err)
		}
		for _, i := range chunk {
			res, err := x.exec(settleSQL[store.Complete], nowUS, nil, nowUS, verdicts[i].ID, int64(verdicts[i].Token))
			if err != nil {
				return 0, fmt.Errorf("spool: settle: %w", err)
			}
			if errs[i], err = refusal(x, res, verdicts[i].ID); err != nil {
				return 0, err
			}
			if errs[i] == nil {
				applied++
			}
		}
	}
	return applied, nil
}

var reapSQL = `UPDATE spool_jobs SET
	errors = ` + `(CASE WHEN json_array_length(coalesce(errors, '[]')) >= ` + strconv.Itoa(store.MaxErrorHistory) + `
		THEN json_insert(json_remove(errors, '$[0]'), '$[#]', json_object('at', ?1, 'attempt', attempts + 1, 'message', 'lock expired on delivery ' || deliveries))
		ELSE json_insert(coalesce(errors, '[]'), '$[#]', json_object('at', ?1, 'attempt', attempts + 1, 'message', 'lock expired on delivery ' || deliveries)) END),
	state = CASE WHEN deliveries >= max_deliveries THEN 'dead' ELSE 'available' END,
	dead_reason = CASE WHEN deliveries >= max_deliveries THEN 'max_deliveries' END,
	finished_at = CASE WHEN deliveries >= max_deliveries THEN ?2 END,
	lock_token = NULL, locked_until = NULL
	WHERE id IN (SELECT id FROM spool_jobs WHERE state = 'running' AND locked_until < ?2 ORDER BY locked_until LIMIT ?3)
	RETURNING state, queue, id`

// ReapExpired implements engine.Driver.
func (s *backend) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	var r store.ReapResult
	var dead []store.ID
	queues := map[string]bool{}
	err := s.writer.doLight(ctx, func(x execer) error {
		r, dead = store.ReapResult{}, dead[:0]
		now := s.now()
		rows, err := x.query(reapSQL, now.UTC().Format(time.RFC3339Nano), now.UnixMicro(), limit)
		if err != nil {
			return fmt.Errorf("spool: reap: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var state, queue string
			var id store.ID
			if err := rows.Scan(&state, &queue, &id); err != nil {
				return err
			}
			if state == string(store.StateDead) {
				r.DeadLettered++
				dead = append(dead, id)
			} else {
				r.Returned++
				queues[queue] = true
			}
		}
		return rows.Err()
	}, func() {
		s.finished.Fire(dead...)
		for q := range queues {
			s.available.Fire(q)
		}
	})
	return r, err
}

// placeholders returns "?, ?, ?" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
