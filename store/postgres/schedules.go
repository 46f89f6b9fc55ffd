package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

var _ store.ScheduleStore = (*Store)(nil)

// The SQL of schedules (migration 0002). Batches are passed as parallel
// arrays; a batch of refs is ($1 tenants, $2 ids).

// scheduleColumns is the column list every schedule read returns, in
// scanSchedule's order.
const scheduleColumns = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, paused, version, next_run_at, last_run_at, live_job_id,
	fired, skipped, dropped, recent, created_at, updated_at`

// refsIn is the SQL condition "the schedule is one of the refs $1, $2".
const refsIn = `(tenant, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`

// scheduleDefs are the arrays of the definitions UpsertSchedules writes,
// parameters $1 to $16 (see scheduleArgs), and scheduleDefCols their names.
const (
	scheduleDefs = `$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
	$8::smallint[], $9::integer[], $10::text[], $11::text[], $12::integer[], $13::text[], $14::bigint[],
	$15::boolean[], $16::timestamptz[]`
	scheduleDefCols = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, release_delay, paused, next_run_at`
)

// keepOrFirst is next_run_at after a write of definition v over the stored
// row s: kept when the spec, zone and mode are unchanged, else v's first
// slot.
const keepOrFirst = `CASE WHEN (s.spec, s.zone, s.mode) = (v.spec, v.zone, v.mode) THEN s.next_run_at ELSE v.next_run_at END`

// upsertScheduleSQL creates or replaces schedules whatever their version
// ($17 is now). A new row gets version 1 and Paused; a replaced one keeps
// its state, counters, pause and created_at, and goes to the next version,
// so RETURNING version 1 means the row was created. Rows go in key order so
// that concurrent upserts of overlapping batches lock in the same order.
const upsertScheduleSQL = `INSERT INTO {schema}.schedules AS s (tenant, id, spec, zone, queue, kind, payload, priority,
	max_attempts, overlap, misfire, catch_up_max, mode, release_delay, paused, version, next_run_at, created_at, updated_at)
SELECT tenant, id, spec, zone, queue, kind, payload, priority, max_attempts, overlap, misfire, catch_up_max,
	mode, release_delay, paused, 1, next_run_at, $17, $17
FROM unnest(` + scheduleDefs + `) AS v(` + scheduleDefCols + `)
ORDER BY tenant, id
ON CONFLICT (tenant, id) DO UPDATE SET
	spec = excluded.spec, zone = excluded.zone, queue = excluded.queue, kind = excluded.kind,
	payload = excluded.payload, priority = excluded.priority, max_attempts = excluded.max_attempts,
	overlap = excluded.overlap, misfire = excluded.misfire, catch_up_max = excluded.catch_up_max,
	mode = excluded.mode, release_delay = excluded.release_delay, version = s.version + 1,
	next_run_at = CASE WHEN (s.spec, s.zone, s.mode) = (excluded.spec, excluded.zone, excluded.mode)
		THEN s.next_run_at ELSE excluded.next_run_at END,
	updated_at = excluded.updated_at
RETURNING s.tenant, s.id, s.version, s.next_run_at`

// updateScheduleSQL replaces schedules still at the versions $17 ($18 is
// now). In READ COMMITTED a row another writer changes meanwhile is looked
// at again after that writer commits, so a stale version never applies.
const updateScheduleSQL = `UPDATE {schema}.schedules AS s SET
	spec = v.spec, zone = v.zone, queue = v.queue, kind = v.kind, payload = v.payload, priority = v.priority,
	max_attempts = v.max_attempts, overlap = v.overlap, misfire = v.misfire, catch_up_max = v.catch_up_max,
	mode = v.mode, release_delay = v.release_delay, version = s.version + 1,
	next_run_at = ` + keepOrFirst + `, updated_at = $18
FROM unnest(` + scheduleDefs + `, $17::bigint[]) AS v(` + scheduleDefCols + `, want)
WHERE s.tenant = v.tenant AND s.id = v.id AND s.version = v.want
RETURNING s.tenant, s.id, s.version, s.next_run_at`

// Reads and the simple writes of a batch of refs.
const (
	scheduleVersionsSQL = `SELECT tenant, id, version FROM {schema}.schedules WHERE ` + refsIn
	getScheduleSQL      = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules WHERE tenant = $1 AND id = $2`
	listSchedulesSQL    = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules
WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	lockSchedulesSQL = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules WHERE ` + refsIn + `
ORDER BY tenant, id FOR UPDATE`
	pauseSchedulesSQL  = `UPDATE {schema}.schedules SET paused = true WHERE ` + refsIn + ` RETURNING tenant, id`
	deleteSchedulesSQL = `DELETE FROM {schema}.schedules WHERE ` + refsIn + ` RETURNING tenant, id`
	resumeSchedulesSQL = `UPDATE {schema}.schedules AS s SET paused = false, next_run_at = v.next_run_at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(tenant, id, next_run_at)
WHERE s.tenant = v.tenant AND s.id = v.id`
)

// dueSchedulesSQL takes up to $2 schedules due at $1, oldest slot first,
// along the schedules_due index. SKIP LOCKED leaves schedules another
// scheduler is firing to it; a row that scheduler committed after this
// statement's snapshot is locked and then, in READ COMMITTED, checked
// against the WHERE again in its new version, so a schedule whose
// next_run_at just moved past now is not taken (and its slot not fired
// again).
const dueSchedulesSQL = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules
WHERE NOT paused AND next_run_at <= $1
ORDER BY next_run_at
LIMIT $2
FOR UPDATE SKIP LOCKED`

// nextDueSQL is the earliest next_run_at of an unpaused schedule. When $2
// is false (the call took fewer schedules than its limit, so every due one
// it could lock) it counts only slots after $1, now: a schedule still due
// then is one another scheduler holds and is firing, and counting its old
// slot would send this caller straight back to find it locked, again and
// again until that scheduler commits. Should that scheduler fail instead,
// its schedules are found by the next call, which a scheduler makes within
// its longest sleep anyway.
const nextDueSQL = `SELECT next_run_at FROM {schema}.schedules
WHERE NOT paused AND next_run_at IS NOT NULL AND ($2 OR next_run_at > $1)
ORDER BY next_run_at LIMIT 1`

// firedSQL records what FireDue and TriggerSchedules enqueued for schedules
// the transaction holds locked: next_run_at when $3 (set_next) is true, the
// newest slot enqueued, the newest run as the live one (NULLs keep the
// stored values), the counts added and the new recent runs.
const firedSQL = `UPDATE {schema}.schedules AS s SET
	next_run_at = CASE WHEN v.set_next THEN v.next_run_at ELSE s.next_run_at END,
	last_run_at = greatest(s.last_run_at, v.last_run_at),
	live_job_id = coalesce(v.live_job_id, s.live_job_id),
	fired = s.fired + v.fired, skipped = s.skipped + v.skipped, dropped = s.dropped + v.dropped,
	recent = coalesce(v.recent::jsonb, s.recent)
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[], $5::timestamptz[], $6::uuid[],
	$7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
	AS v(tenant, id, set_next, next_run_at, last_run_at, live_job_id, fired, skipped, dropped, recent)
WHERE s.tenant = v.tenant AND s.id = v.id`

// holdLiveSQL share-locks those of the jobs $1 that are live, in ID order.
// A job another transaction is finishing is waited for and then, in READ
// COMMITTED, checked again in its new state, so it is not returned.
const holdLiveSQL = `SELECT id FROM {schema}.jobs WHERE id = ANY($1::uuid[]) AND state IN ` + live + `
ORDER BY id FOR SHARE`

// scheduleQueries is every schedule statement rendered for one schema.
type scheduleQueries struct {
	upsert, update, versions, get, list, lock  string
	pause, resume, remove, due, nextDue, fired string
	holdLive                                   string
}

func newScheduleQueries(schema string) *scheduleQueries {
	r := func(s string) string { return render(s, schema) }
	return &scheduleQueries{
		upsert: r(upsertScheduleSQL), update: r(updateScheduleSQL), versions: r(scheduleVersionsSQL),
		get: r(getScheduleSQL), list: r(listSchedulesSQL), lock: r(lockSchedulesSQL),
		pause: r(pauseSchedulesSQL), resume: r(resumeSchedulesSQL), remove: r(deleteSchedulesSQL),
		due: r(dueSchedulesSQL), nextDue: r(nextDueSQL), fired: r(firedSQL), holdLive: r(holdLiveSQL),
	}
}

// decideRetry is how long FireDue waits before looking again at a schedule
// it cannot fire (see fireSchedules).
const decideRetry = time.Hour

// scanSchedule reads the columns of scheduleColumns.
func scanSchedule(r pgx.Row) (*store.Schedule, error) {
	var (
		s                      store.Schedule
		overlap, misfire, mode string
		priority               int16
		maxAtt, catchUp        int32
		next, last             *time.Time
		live                   pgtype.UUID
		recent                 []byte
	)
	if err := r.Scan(&s.Tenant, &s.ID, &s.Spec, &s.Zone, &s.Queue, &s.Kind, &s.Payload, &priority, &maxAtt,
		&overlap, &misfire, &catchUp, &mode, &s.Paused, &s.Version, &next, &last, &live,
		&s.Fired, &s.Skipped, &s.Dropped, &recent, &s.CreatedAt, &s.UpdatedAt); err != nil {
		return nil, err
	}
	s.Priority, s.MaxAttempts, s.CatchUpMax = int(priority), int(maxAtt), int(catchUp)
	var err1, err2, err3 error
	s.Overlap, err1 = store.ParseOverlap(overlap)
	s.Misfire, err2 = store.ParseMisfire(misfire)
	s.Mode, err3 = store.ParseScheduleMode(mode)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("schedule %s: %w", s.Ref(), err)
	}
	if next != nil {
		s.NextRunAt = next.UTC()
	}
	if last != nil {
		s.LastRunAt = last.UTC()
	}
	if live.Valid {
		s.LiveJobID = live.Bytes
	}
	if len(recent) > 0 {
		if err := json.Unmarshal(recent, &s.Recent); err != nil {
			return nil, fmt.Errorf("schedule %s: decode recent runs: %w", s.Ref(), err)
		}
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return &s, nil
}

func scanScheduleRow(r pgx.CollectableRow) (*store.Schedule, error) { return scanSchedule(r) }

// stamp is t as a nullable timestamptz: NULL for the zero time.
func stamp(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// encodeRecent is the JSON of recent runs, with slots in UTC, or NULL for none.
func encodeRecent(runs []store.ScheduleRun) (*string, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	for i := range runs {
		runs[i].Slot = runs[i].Slot.UTC()
	}
	b, err := json.Marshal(runs)
	if err != nil {
		return nil, fmt.Errorf("encode recent runs: %w", err)
	}
	s := string(b)
	return &s, nil
}

// refArrays splits refs into the ($1 tenants, $2 ids) of refsIn.
func refArrays(refs []store.ScheduleRef) (tenants, idList []string) {
	tenants, idList = make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		tenants[i], idList[i] = r.Tenant, r.ID
	}
	return tenants, idList
}

// inTx runs fn in a READ COMMITTED transaction, again (up to three times in
// all) when PostgreSQL aborts it to break a deadlock. Schedule writes lock a
// schedule and then may wait for a job (an insert that meets a run key a
// settling job still holds), while a settle locks the job and then its
// schedule (the release trigger); the rare deadlock between them costs a
// retry. fn must start from scratch each time.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, txOptions, fn)
		var pe *pgconn.PgError
		if attempt < 3 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// storableText reports a schedule field PostgreSQL text cannot hold. Names
// are checked by Validate; the spec is free text, but one that parses is
// plain ASCII, so this only keeps a corrupt one from failing the batch.
func storableText(field, v string) error {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return &store.ValidationError{Field: field, Reason: "is not valid UTF-8 without NUL bytes"}
	}
	return nil
}

// scheduleArgs are the parallel arrays of scheduleDefs, plus the expected
// versions of updateScheduleSQL.
type scheduleArgs struct {
	tenants, ids, specs, zones, queues, kinds []string
	payloads                                  [][]byte
	priorities                                []int16
	maxAttempts, catchUp                      []int32
	overlaps, misfires, modes                 []string
	delays                                    []int64
	paused                                    []bool
	next                                      []pgtype.Timestamptz
	wants                                     []int64
}

func (a *scheduleArgs) add(s *store.Schedule, first time.Time) {
	a.tenants, a.ids = append(a.tenants, s.Tenant), append(a.ids, s.ID)
	a.specs, a.zones = append(a.specs, s.Spec), append(a.zones, s.Zone)
	a.queues, a.kinds = append(a.queues, s.Queue), append(a.kinds, s.Kind)
	a.payloads = append(a.payloads, s.Payload)
	a.priorities = append(a.priorities, int16(s.Priority))      //nolint:gosec // validated to -100..100
	a.maxAttempts = append(a.maxAttempts, int32(s.MaxAttempts)) //nolint:gosec // validated to 0..10,000
	a.catchUp = append(a.catchUp, int32(s.CatchUpMax))          //nolint:gosec // validated to 0..1,000
	a.overlaps, a.misfires, a.modes = append(a.overlaps, s.Overlap.String()), append(a.misfires, s.Misfire.String()), append(a.modes, s.Mode.String())
	a.delays = append(a.delays, schedule.ReleaseDelay(s).Microseconds())
	a.paused = append(a.paused, s.Paused)
	a.next = append(a.next, stamp(first))
	a.wants = append(a.wants, s.Version)
}

func (a *scheduleArgs) defs() []any {
	return []any{a.tenants, a.ids, a.specs, a.zones, a.queues, a.kinds, a.payloads, a.priorities, a.maxAttempts,
		a.overlaps, a.misfires, a.catchUp, a.modes, a.delays, a.paused, a.next}
}

// UpsertSchedules implements store.ScheduleStore. Each batch is one transaction:
// items with Version zero go in with one INSERT … ON CONFLICT DO UPDATE,
// items with a version with one UPDATE … WHERE version = want, both
// pipelined; the versions of refused items are then read to tell a conflict
// from a missing schedule. A schedule named more than once is written once
// per round, in input order, so a later item sees the earlier one's write.
func (s *Store) UpsertSchedules(ctx context.Context, in []store.Schedule) ([]store.ScheduleUpsertResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(in)); err != nil {
		return nil, err
	}
	now := s.now()
	results := make([]store.ScheduleUpsertResult, len(in))
	items := make([]store.Schedule, len(in))
	first := make([]time.Time, len(in))
	var rounds [][]int // rounds[k]: the (k+1)th mention of each schedule
	seen := map[store.ScheduleRef]int{}
	for i := range in {
		it := &items[i]
		*it = in[i]
		it.Normalize()
		err := schedule.Validate(it)
		if err == nil {
			first[i], err = schedule.FirstSlot(it, now)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		k := seen[it.Ref()]
		seen[it.Ref()] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], i)
	}
	if len(rounds) == 0 {
		return results, nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, round := range rounds {
			if err := s.upsertRound(ctx, tx, items, first, round, results, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "upsert schedules", err)
	}
	return results, nil
}

// upsertRound writes items round, which name distinct schedules, and fills
// their results.
func (s *Store) upsertRound(ctx context.Context, tx pgx.Tx, items []store.Schedule, first []time.Time, round []int, results []store.ScheduleUpsertResult, now time.Time) error {
	var plain, versioned scheduleArgs
	for _, i := range round {
		if items[i].Version == 0 {
			plain.add(&items[i], first[i])
		} else {
			versioned.add(&items[i], first[i])
		}
	}
	written := map[store.ScheduleRef]store.ScheduleUpsertResult{}
	b := &pgx.Batch{}
	if len(plain.ids) > 0 {
		b.Queue(s.q.sched.upsert, append(plain.defs(), now)...)
	}
	if len(versioned.ids) > 0 {
		b.Queue(s.q.sched.update, append(versioned.defs(), versioned.wants, now)...)
	}
	br := tx.SendBatch(ctx, b)
	var err error
	for range b.Len() {
		var rows pgx.Rows
		if rows, err = br.Query(); err != nil {
			break
		}
		var r store.ScheduleRef
		var version int64
		var next *time.Time
		if _, err = pgx.ForEachRow(rows, []any{&r.Tenant, &r.ID, &version, &next}, func() error {
			res := store.ScheduleUpsertResult{Version: version, Created: version == 1}
			if next != nil {
				res.NextRunAt = next.UTC()
			}
			written[r] = res
			return nil
		}); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var refused []store.ScheduleRef
	for _, i := range round {
		res, ok := written[items[i].Ref()]
		if !ok {
			refused = append(refused, items[i].Ref())
			continue
		}
		results[i] = res
	}
	if len(refused) == 0 {
		return nil
	}
	// Versioned items whose schedule is missing or at another version.
	tenants, idList := refArrays(refused)
	rows, err := tx.Query(ctx, s.q.sched.versions, tenants, idList)
	if err != nil {
		return err
	}
	current := map[store.ScheduleRef]int64{}
	var r store.ScheduleRef
	var version int64
	if _, err := pgx.ForEachRow(rows, []any{&r.Tenant, &r.ID, &version}, func() error {
		current[r] = version
		return nil
	}); err != nil {
		return err
	}
	for _, i := range round {
		ref := items[i].Ref()
		if _, ok := written[ref]; ok {
			continue
		}
		if v, ok := current[ref]; ok {
			results[i] = store.ScheduleUpsertResult{Err: &store.ConflictError{Resource: "schedule", Name: ref.String(), Want: items[i].Version, Current: v}}
		} else {
			results[i] = store.ScheduleUpsertResult{Err: store.ScheduleNotFound(ref)}
		}
	}
	return nil
}

// GetSchedule implements store.ScheduleStore.
func (s *Store) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs([]store.ScheduleRef{ref}); err != nil {
		return nil, err
	}
	sc, err := scanSchedule(s.pool.QueryRow(ctx, s.q.sched.get, ref.Tenant, ref.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ScheduleNotFound(ref)
	}
	if err != nil {
		return nil, s.fail(ctx, "get schedule", err)
	}
	return sc, nil
}

// ListSchedules implements store.ScheduleStore.
func (s *Store) ListSchedules(ctx context.Context, p store.ScheduleListParams) (*store.SchedulePage, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	if err := store.ValidName("list cursor", p.After, true); err != nil {
		return nil, err // a cursor is a schedule ID
	}
	rows, err := s.pool.Query(ctx, s.q.sched.list, p.Tenant, p.After, p.Limit+1)
	if err != nil {
		return nil, s.fail(ctx, "list schedules", err)
	}
	list, err := pgx.CollectRows(rows, scanScheduleRow)
	if err != nil {
		return nil, s.fail(ctx, "list schedules", err)
	}
	page := &store.SchedulePage{Schedules: list}
	if len(list) > p.Limit {
		page.Schedules = list[:p.Limit]
		page.Next = page.Schedules[p.Limit-1].ID
	}
	return page, nil
}

// PauseSchedules implements store.ScheduleStore with one UPDATE for the batch.
func (s *Store) PauseSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.refsStatement(ctx, "pause schedules", s.q.sched.pause, refs, false)
}

// DeleteSchedules implements store.ScheduleStore with one DELETE for the batch.
// A schedule named twice is deleted by the first mention; the second finds
// it gone.
func (s *Store) DeleteSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.refsStatement(ctx, "delete schedules", s.q.sched.remove, refs, true)
}

// refsStatement runs a statement over refs that returns the (tenant, id)
// of each schedule it touched, and answers ErrNotFound for the others (and,
// with once, for repeated mentions of a touched one).
func (s *Store) refsStatement(ctx context.Context, op, sql string, refs []store.ScheduleRef, once bool) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	errs := make([]error, len(refs))
	if len(refs) == 0 {
		return errs, nil
	}
	tenants, idList := refArrays(refs)
	rows, err := s.pool.Query(ctx, sql, tenants, idList)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	touched := map[store.ScheduleRef]bool{}
	var r store.ScheduleRef
	if _, err := pgx.ForEachRow(rows, []any{&r.Tenant, &r.ID}, func() error {
		touched[r] = true
		return nil
	}); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	for i, r := range refs {
		if !touched[r] {
			errs[i] = store.ScheduleNotFound(r)
		} else if once {
			touched[r] = false
		}
	}
	return errs, nil
}

// ResumeSchedules implements store.ScheduleStore: the paused schedules of the
// batch are locked, their next slots computed, and all written by one
// UPDATE. A schedule that is not paused is left as it is.
func (s *Store) ResumeSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	errs := make([]error, len(refs))
	if len(refs) == 0 {
		return errs, nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		found, err := s.lockSchedules(ctx, tx, refs)
		if err != nil {
			return err
		}
		var tenants, idList []string
		var next []pgtype.Timestamptz
		for i, r := range refs {
			sc := found[r]
			errs[i] = nil
			switch {
			case sc == nil:
				errs[i] = store.ScheduleNotFound(r)
				continue
			case !sc.Paused:
				continue
			}
			at, err := schedule.ResumeSlot(sc, now)
			if err != nil {
				errs[i] = err // a stored spec this build cannot read: it stays paused
				continue
			}
			sc.Paused = false // a second mention finds it resumed
			tenants, idList, next = append(tenants, r.Tenant), append(idList, r.ID), append(next, stamp(at))
		}
		if len(tenants) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, s.q.sched.resume, tenants, idList, next)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "resume schedules", err)
	}
	return errs, nil
}

// lockSchedules reads and locks the schedules refs name, in key order.
func (s *Store) lockSchedules(ctx context.Context, tx pgx.Tx, refs []store.ScheduleRef) (map[store.ScheduleRef]*store.Schedule, error) {
	tenants, idList := refArrays(refs)
	rows, err := tx.Query(ctx, s.q.sched.lock, tenants, idList)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanScheduleRow)
	if err != nil {
		return nil, err
	}
	out := make(map[store.ScheduleRef]*store.Schedule, len(list))
	for _, sc := range list {
		out[sc.Ref()] = sc
	}
	return out, nil
}

// firedArgs are the parallel arrays of firedSQL.
type firedArgs struct {
	tenants, ids         []string
	setNext              []bool
	next, last           []pgtype.Timestamptz
	live                 []pgtype.UUID
	fired, skip, dropped []int64
	recent               []*string
}

func (a *firedArgs) add(sc *store.Schedule, setNext bool, next, last time.Time, live store.ID, fired, skipped, dropped int, recent *string) {
	a.tenants, a.ids = append(a.tenants, sc.Tenant), append(a.ids, sc.ID)
	a.setNext, a.next, a.last = append(a.setNext, setNext), append(a.next, stamp(next)), append(a.last, stamp(last))
	a.live = append(a.live, pgtype.UUID{Bytes: live, Valid: !live.IsZero()})
	a.fired, a.skip, a.dropped = append(a.fired, int64(fired)), append(a.skip, int64(skipped)), append(a.dropped, int64(dropped))
	a.recent = append(a.recent, recent)
}

func (a *firedArgs) args() []any {
	return []any{a.tenants, a.ids, a.setNext, a.next, a.last, a.live, a.fired, a.skip, a.dropped, a.recent}
}

// TriggerSchedules implements store.ScheduleStore. In one transaction it locks
// the schedules (in key order), enqueues one run of each through the
// enqueue path, with the run key of the current second, and records the
// runs with one UPDATE. A run whose key a live job holds (an earlier
// trigger or slot in the same second, or the same schedule named earlier in
// the call) is answered Duplicate, naming that job, and is not recorded.
func (s *Store) TriggerSchedules(ctx context.Context, refs []store.ScheduleRef) ([]store.TriggerResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	results := make([]store.TriggerResult, len(refs))
	if len(refs) == 0 {
		return results, nil
	}
	var queues []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		slot := now.Truncate(time.Second).UTC()
		found, err := s.lockSchedules(ctx, tx, refs)
		if err != nil {
			return err
		}
		var jobs []store.EnqueueParams
		var at []int // the result index of each job
		for i, r := range refs {
			results[i] = store.TriggerResult{}
			sc := found[r]
			if sc == nil {
				results[i].Err = store.ScheduleNotFound(r)
				continue
			}
			p := schedule.RunJob(sc, slot)
			if err := p.Normalize(now); err != nil {
				return fmt.Errorf("schedule %s: %w", r, err)
			}
			jobs, at = append(jobs, p), append(at, i)
		}
		if len(jobs) == 0 {
			return nil
		}
		enq := make([]store.EnqueueResult, len(jobs))
		if err := s.insertRuns(ctx, tx, jobs, enq, nil, now); err != nil {
			return err
		}
		queues = availableQueues(jobs, enq)
		runs := map[store.ScheduleRef][]store.ScheduleRun{}
		var order []store.ScheduleRef
		for k, i := range at {
			run := store.ScheduleRun{Slot: slot, JobID: enq[k].ID, Triggered: true}
			results[i].Run, results[i].Duplicate = run, enq[k].Duplicate
			if enq[k].Duplicate {
				continue // the run of this second is live already: nothing to record
			}
			if _, ok := runs[refs[i]]; !ok {
				order = append(order, refs[i])
			}
			runs[refs[i]] = append(runs[refs[i]], run)
		}
		if len(order) == 0 {
			return nil
		}
		var a firedArgs
		for _, r := range order {
			sc, rs := found[r], runs[r]
			recent, err := encodeRecent(schedule.PushRecent(sc.Recent, rs...))
			if err != nil {
				return err
			}
			a.add(sc, false, time.Time{}, slot, rs[len(rs)-1].JobID, len(rs), 0, 0, recent)
		}
		_, err = tx.Exec(ctx, s.q.sched.fired, a.args()...)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "trigger schedules", err)
	}
	s.changed(queues, nil)
	return results, nil
}

// insertRuns inserts schedule runs through the enqueue path (insertJobs:
// a live job holding a run key means no insert and a Duplicate result
// naming it), at most store.MaxBatch per statement. jobs are normalized.
// When the caller records Duplicate results as live runs, tracked(k) is the
// live_job_id stored for the schedule of jobs[k], and the jobs those
// results name are held (holdDuplicates).
func (s *Store) insertRuns(ctx context.Context, tx pgx.Tx, jobs []store.EnqueueParams, results []store.EnqueueResult, tracked func(k int) store.ID, now time.Time) error {
	for lo := 0; lo < len(jobs); lo += store.MaxBatch {
		hi := min(lo+store.MaxBatch, len(jobs))
		if err := s.insertJobs(ctx, pgxExec{tx}, jobs[lo:hi], results[lo:hi], now); err != nil {
			return err
		}
	}
	if tracked == nil {
		return nil
	}
	return s.holdDuplicates(ctx, tx, jobs, results, tracked, now)
}

// holdDuplicates locks (FOR SHARE) the live jobs that Duplicate results
// name, so that none finishes before this transaction commits and records
// it as its schedule's live run. Otherwise one that finished meanwhile
// would fire the release trigger while its schedule did not yet name it,
// the release would find nothing to release, and live_job_id would be left
// on a finished job: harmless to Decide, which reads the job's state, but
// a fixed-delay schedule would wait for a release that never comes. A job
// that finished between the insert and the lock has freed its run key, so
// that run is inserted after all. A job its schedule already names is not
// locked: its release waits for this transaction's lock on the schedule
// and then finds it (and locking it could deadlock with that release).
func (s *Store) holdDuplicates(ctx context.Context, tx pgx.Tx, jobs []store.EnqueueParams, results []store.EnqueueResult, tracked func(k int) store.ID, now time.Time) error {
	for range 3 {
		var idx []int
		var want [][16]byte
		for k := range jobs {
			if results[k].Duplicate && results[k].ID != tracked(k) {
				idx, want = append(idx, k), append(want, results[k].ID)
			}
		}
		if len(want) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, s.q.sched.holdLive, want)
		if err != nil {
			return err
		}
		held := map[store.ID]bool{}
		var id [16]byte
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			held[id] = true
			return nil
		}); err != nil {
			return err
		}
		var again []store.EnqueueParams
		var at []int
		for _, k := range idx {
			if !held[results[k].ID] {
				again, at = append(again, jobs[k]), append(at, k)
			}
		}
		if len(again) == 0 {
			return nil
		}
		res := make([]store.EnqueueResult, len(again))
		if err := s.insertJobs(ctx, pgxExec{tx}, again, res, now); err != nil {
			return err
		}
		for n, k := range at {
			results[k] = res[n]
		}
	}
	return nil
}

// FireDue implements store.ScheduleStore. One transaction takes up to Limit due
// schedules with FOR UPDATE SKIP LOCKED (so racing schedulers, here or in
// other processes, take disjoint sets), reads the states of their live runs
// with one query, runs schedule.Decide on each, inserts every run with one
// INSERT per store.MaxBatch jobs (run keys as unique keys), and records the
// outcome with one UPDATE. A crash before commit changes nothing.
//
// NextDue passes over schedules another scheduler is firing at the time of
// the call (see nextDueSQL): they are due, but not for this caller.
//
// A run whose key a live job already holds is reported Duplicate, and that
// job becomes the schedule's live run (see holdDuplicates).
func (s *Store) FireDue(ctx context.Context, p store.FireParams) (*store.FireResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	var res *store.FireResult
	var queues []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = &store.FireResult{}
		var err error
		queues, err = s.fireBatch(ctx, tx, p.Limit, s.now(), res)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "fire schedules", err)
	}
	s.changed(queues, nil)
	return res, nil
}

// dueSchedule is one schedule FireDue took, with its decision.
type dueSchedule struct {
	sc    *store.Schedule
	d     schedule.Decision
	first int // index of its first job in the batch's jobs
}

// fireBatch is FireDue's transaction. It returns the queues that got
// claimable jobs.
func (s *Store) fireBatch(ctx context.Context, tx pgx.Tx, limit int, now time.Time, res *store.FireResult) ([]string, error) {
	rows, err := tx.Query(ctx, s.q.sched.due, now, limit)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanScheduleRow)
	if err != nil {
		return nil, err
	}
	res.Schedules = len(list)
	var queues []string
	if len(list) > 0 {
		if queues, err = s.fireSchedules(ctx, tx, list, now, res); err != nil {
			return nil, err
		}
	}
	var next time.Time
	switch err := tx.QueryRow(ctx, s.q.sched.nextDue, now, len(list) == limit).Scan(&next); {
	case err == nil:
		res.NextDue = next.UTC()
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	return queues, nil
}

// fireSchedules decides, enqueues and records the runs of schedules list,
// which the transaction holds locked.
func (s *Store) fireSchedules(ctx context.Context, tx pgx.Tx, list []*store.Schedule, now time.Time, res *store.FireResult) ([]string, error) {
	var liveIDs [][16]byte
	for _, sc := range list {
		if !sc.LiveJobID.IsZero() {
			liveIDs = append(liveIDs, sc.LiveJobID)
		}
	}
	states, err := s.jobStates(ctx, tx, liveIDs)
	if err != nil {
		return nil, err
	}
	due := make([]dueSchedule, len(list))
	var jobs []store.EnqueueParams
	for i, sc := range list {
		d, err := schedule.Decide(sc, states[sc.LiveJobID], now) // a missing job has no state: not live
		if err == nil {
			err = normalizeRuns(d.Jobs, now)
		}
		if err != nil {
			// Decide is pure, so this schedule fails the same way every
			// time: its stored spec or zone is one this build cannot read
			// (say, a zone dropped from the time zone database). Failing
			// the batch would stop every other schedule behind it, and
			// leaving its next_run_at would have it taken first by every
			// call. So it fires nothing, is logged, and is looked at again
			// after decideRetry (an upsert that fixes it sets a new slot).
			s.log.Error("spool: schedule cannot fire", "schedule", sc.Ref().String(), "err", err)
			d = schedule.Decision{Next: now.Add(decideRetry)}
		}
		due[i] = dueSchedule{sc: sc, d: d, first: len(jobs)}
		jobs = append(jobs, d.Jobs...)
	}
	owner := make([]*store.Schedule, 0, len(jobs)) // the schedule of each job
	for i := range due {
		for range due[i].d.Jobs {
			owner = append(owner, due[i].sc)
		}
	}
	enq := make([]store.EnqueueResult, len(jobs))
	if err := s.insertRuns(ctx, tx, jobs, enq, func(k int) store.ID { return owner[k].LiveJobID }, now); err != nil {
		return nil, err
	}
	var a firedArgs
	for i := range due {
		sc, d := due[i].sc, &due[i].d
		var last time.Time
		var live store.ID
		var recent *string
		fired := 0
		if n := len(d.Jobs); n > 0 {
			// A duplicate's run is already recorded (a trigger in the same
			// second): it becomes the live run but is not counted again.
			runs := make([]store.ScheduleRun, 0, n)
			for k := range n {
				r := enq[due[i].first+k]
				slot := d.Slots[k].UTC()
				res.Runs = append(res.Runs, store.FiredRun{Ref: sc.Ref(), Slot: slot, JobID: r.ID, Duplicate: r.Duplicate})
				live = r.ID
				if !r.Duplicate {
					runs = append(runs, store.ScheduleRun{Slot: slot, JobID: r.ID})
					last = slot
				}
			}
			if fired = len(runs); fired > 0 {
				if recent, err = encodeRecent(schedule.PushRecent(sc.Recent, runs...)); err != nil {
					return nil, err
				}
			}
		}
		a.add(sc, true, d.Next, last, live, fired, d.Skipped, d.Dropped, recent)
		res.Skipped += d.Skipped
		res.Dropped += d.Dropped
	}
	if _, err := tx.Exec(ctx, s.q.sched.fired, a.args()...); err != nil {
		return nil, err
	}
	return availableQueues(jobs, enq), nil
}

// normalizeRuns fills the defaults of a decision's jobs and checks them, as
// Enqueue does.
func normalizeRuns(jobs []store.EnqueueParams, now time.Time) error {
	for i := range jobs {
		if err := jobs[i].Normalize(now); err != nil {
			return err
		}
		if strings.IndexByte(jobs[i].UniqueKey, 0) >= 0 || strings.IndexByte(jobs[i].OrderingKey, 0) >= 0 {
			return &store.ValidationError{Field: "run key", Reason: "contains a NUL byte"}
		}
	}
	return nil
}
