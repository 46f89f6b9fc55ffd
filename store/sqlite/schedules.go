package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

var _ engine.ScheduleDriver = (*backend)(nil)

const scheduleColumns = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, paused, version, next_run_at, last_run_at, live_job_id,
	fired, skipped, dropped, recent, created_at, updated_at`

func scanSchedule(r scanner, extra ...any) (*store.Schedule, error) {
	var (
		s                         store.Schedule
		overlap, misfire, mode    string
		next, last                sql.NullInt64
		live                      []byte
		recent                    sql.NullString
		paused                    bool
		created, updated          int64
		priority, attempts, catch int
	)
	dest := []any{&s.Tenant, &s.ID, &s.Spec, &s.Zone, &s.Queue, &s.Kind, &s.Payload, &priority, &attempts,
		&overlap, &misfire, &catch, &mode, &paused, &s.Version, &next, &last, &live,
		&s.Fired, &s.Skipped, &s.Dropped, &recent, &created, &updated}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	s.Priority, s.MaxAttempts, s.CatchUpMax, s.Paused = priority, attempts, catch, paused
	var err error
	if s.Overlap, err = store.ParseOverlap(overlap); err != nil {
		return nil, err
	}
	if s.Misfire, err = store.ParseMisfire(misfire); err != nil {
		return nil, err
	}
	if s.Mode, err = store.ParseScheduleMode(mode); err != nil {
		return nil, err
	}
	s.NextRunAt, s.LastRunAt = fromMicros(next), fromMicros(last)
	if len(live) == len(s.LiveJobID) {
		copy(s.LiveJobID[:], live)
	}
	if recent.Valid && recent.String != "" {
		if err := json.Unmarshal([]byte(recent.String), &s.Recent); err != nil {
			return nil, fmt.Errorf("spool: schedule %s: decode recent runs: %w", s.Ref(), err)
		}
	}
	s.CreatedAt, s.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return &s, nil
}

// micros stores t as Unix microseconds, or NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func encodeRecent(runs []store.ScheduleRun) (any, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(runs)
	if err != nil {
		return nil, fmt.Errorf("spool: encode recent runs: %w", err)
	}
	return string(b), nil
}

// GetSchedule implements engine.ScheduleDriver.
func (s *backend) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	sc, err := scanSchedule(s.rdb.QueryRowContext(ctx, getScheduleSQL, ref.Tenant, ref.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return sc, s.readErr(err)
}

// ListSchedules implements engine.ScheduleDriver.
func (s *backend) ListSchedules(ctx context.Context, p store.ScheduleListParams) ([]*store.Schedule, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM spool_schedules
		WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?`, p.Tenant, p.After, p.Limit+1)
	if err != nil {
		return nil, s.readErr(err)
	}
	out, err := scanSchedules(rows)
	return out, s.readErr(err)
}

// scanSchedules reads every row of rows and closes it.
func scanSchedules(rows *sql.Rows) ([]*store.Schedule, error) {
	defer rows.Close()
	var out []*store.Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// PeekNextDue implements engine.ScheduleDriver from a reader, without the
// write lock (which other processes may be waiting for).
func (s *backend) PeekNextDue(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, nextDueSQL, false, 0).Scan(&next); err != nil {
		return time.Time{}, s.readErr(err)
	}
	return fromMicros(next), nil
}

// Tx implements engine.ScheduleDriver: fn runs as one op of the writer,
// which is the only writer of the file, so the schedules it reads are
// "locked" for as long as it runs. The op may run twice (the writer's
// savepoint fallback); each run starts a fresh scheduleTx.
func (s *backend) Tx(ctx context.Context, grows bool, fn func(tx engine.ScheduleTx) error) error {
	var tx *scheduleTx
	return s.writer.queue(ctx, func(x execer) error {
		tx = &scheduleTx{s: s, x: x, now: s.now()}
		return fn(tx)
	}, opts{grows: grows, onCommit: func() {
		if tx != nil {
			s.wakeQueues(tx.jobs, tx.enq)
		}
	}})
}

// scheduleTx is one schedule transaction inside a writer op.
type scheduleTx struct {
	s   *backend
	x   execer
	now time.Time
	// jobs and enq are every job inserted and its result, to wake their
	// queues after the commit.
	jobs []store.EnqueueParams
	enq  []store.EnqueueResult
}

// Now implements engine.ScheduleTx.
func (t *scheduleTx) Now() time.Time { return t.now }

const getScheduleSQL = `SELECT ` + scheduleColumns + ` FROM spool_schedules WHERE tenant = ? AND id = ?`

// LockSchedules implements engine.ScheduleTx.
func (t *scheduleTx) LockSchedules(refs []store.ScheduleRef) (map[store.ScheduleRef]*store.Schedule, error) {
	out := make(map[store.ScheduleRef]*store.Schedule, len(refs))
	for _, r := range refs {
		if _, ok := out[r]; ok {
			continue
		}
		sc, err := scanSchedule(t.x.queryRow(getScheduleSQL, r.Tenant, r.ID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, fmt.Errorf("spool: schedule %s: %w", r, err)
		}
		out[r] = sc
	}
	return out, nil
}

const dueSQL = `SELECT ` + scheduleColumns + ` FROM spool_schedules
	WHERE paused = 0 AND next_run_at IS NOT NULL AND next_run_at <= ?
	ORDER BY next_run_at LIMIT ?`

// LockDue implements engine.ScheduleTx.
func (t *scheduleTx) LockDue(limit int) ([]*store.Schedule, error) {
	rows, err := t.x.query(dueSQL, t.now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("spool: fire schedules: %w", err)
	}
	return scanSchedules(rows)
}

// idChunk is how many IDs one IN list carries.
const idChunk = 64

var jobStatesSQL [idChunk + 1]string

func init() {
	for n := 1; n <= idChunk; n++ {
		jobStatesSQL[n] = `SELECT id, state FROM spool_jobs WHERE id IN (` + placeholders(n) + `)`
	}
}

// JobStates implements engine.ScheduleTx.
func (t *scheduleTx) JobStates(ids []store.ID) (map[store.ID]store.State, error) {
	out := make(map[store.ID]store.State, len(ids))
	args := make([]any, 0, min(len(ids), idChunk))
	for lo := 0; lo < len(ids); lo += idChunk {
		part := ids[lo:min(lo+idChunk, len(ids))]
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		if err := t.readStates(jobStatesSQL[len(part)], args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readStates runs a query of (id, state) rows and adds them to out.
func (t *scheduleTx) readStates(q string, args []any, out map[store.ID]store.State) error {
	rows, err := t.x.query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id store.ID
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			return err
		}
		out[id] = store.State(st)
	}
	return rows.Err()
}

// HoldLive implements engine.ScheduleTx. Nothing else writes while the op
// runs, so a job live now stays live until the commit: reading suffices.
func (t *scheduleTx) HoldLive(ids []store.ID) (map[store.ID]bool, error) {
	states, err := t.JobStates(ids)
	if err != nil {
		return nil, err
	}
	out := make(map[store.ID]bool, len(states))
	for id, st := range states {
		if st.Live() {
			out[id] = true
		}
	}
	return out, nil
}

// InsertJobs implements engine.ScheduleTx.
func (t *scheduleTx) InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(jobs))
	if err := insertJobs(t.x, jobs, res, t.now, true); err != nil {
		return nil, err
	}
	t.jobs, t.enq = append(t.jobs, jobs...), append(t.enq, res...)
	return res, nil
}

const insertScheduleSQL = `INSERT INTO spool_schedules (tenant, id, spec, zone, queue, kind, payload, priority,
	max_attempts, overlap, misfire, catch_up_max, mode, release_delay, paused, version, next_run_at,
	created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, id) DO NOTHING`

// defArgs are a schedule's definition columns, in the order of
// insertScheduleSQL and updateScheduleSQL.
func defArgs(sc *store.Schedule) []any {
	return []any{sc.Spec, sc.Zone, sc.Queue, sc.Kind, sc.Payload, sc.Priority, sc.MaxAttempts,
		sc.Overlap.String(), sc.Misfire.String(), sc.CatchUpMax, sc.Mode.String(), schedule.ReleaseDelay(sc).Microseconds()}
}

// InsertSchedules implements engine.ScheduleTx.
func (t *scheduleTx) InsertSchedules(scs []*store.Schedule) ([]bool, error) {
	created := make([]bool, len(scs))
	for i, sc := range scs {
		args := slices.Concat([]any{sc.Tenant, sc.ID}, defArgs(sc),
			[]any{sc.Paused, sc.Version, micros(sc.NextRunAt), sc.CreatedAt.UnixMicro(), sc.UpdatedAt.UnixMicro()})
		res, err := t.x.exec(insertScheduleSQL, args...)
		if err != nil {
			return nil, fmt.Errorf("spool: create schedule %s: %w", sc.Ref(), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		created[i] = n == 1
	}
	return created, nil
}

const updateScheduleSQL = `UPDATE spool_schedules SET spec = ?, zone = ?, queue = ?, kind = ?, payload = ?,
	priority = ?, max_attempts = ?, overlap = ?, misfire = ?, catch_up_max = ?, mode = ?, release_delay = ?,
	version = ?, next_run_at = ?, updated_at = ?
	WHERE tenant = ? AND id = ?`

// UpdateSchedules implements engine.ScheduleTx.
func (t *scheduleTx) UpdateSchedules(scs []*store.Schedule) error {
	for _, sc := range scs {
		args := slices.Concat(defArgs(sc), []any{sc.Version, micros(sc.NextRunAt), sc.UpdatedAt.UnixMicro(), sc.Tenant, sc.ID})
		if _, err := t.x.exec(updateScheduleSQL, args...); err != nil {
			return fmt.Errorf("spool: update schedule %s: %w", sc.Ref(), err)
		}
	}
	return nil
}

// SetPaused implements engine.ScheduleTx.
func (t *scheduleTx) SetPaused(refs []store.ScheduleRef, paused bool, next []time.Time) error {
	for i, r := range refs {
		var err error
		if next == nil {
			_, err = t.x.exec(`UPDATE spool_schedules SET paused = ? WHERE tenant = ? AND id = ?`, paused, r.Tenant, r.ID)
		} else {
			_, err = t.x.exec(`UPDATE spool_schedules SET paused = ?, next_run_at = ? WHERE tenant = ? AND id = ?`,
				paused, micros(next[i]), r.Tenant, r.ID)
		}
		if err != nil {
			return fmt.Errorf("spool: schedule %s: %w", r, err)
		}
	}
	return nil
}

// DeleteSchedules implements engine.ScheduleTx.
func (t *scheduleTx) DeleteSchedules(refs []store.ScheduleRef) error {
	for _, r := range refs {
		if _, err := t.x.exec(`DELETE FROM spool_schedules WHERE tenant = ? AND id = ?`, r.Tenant, r.ID); err != nil {
			return fmt.Errorf("spool: delete schedule %s: %w", r, err)
		}
	}
	return nil
}

// nextDueSQL is the earliest next_run_at of an unpaused schedule; with ?1
// set, only those after ?2.
const nextDueSQL = `SELECT min(next_run_at) FROM spool_schedules
	WHERE paused = 0 AND next_run_at IS NOT NULL AND (NOT ?1 OR next_run_at > ?2)`

// NextDue implements engine.ScheduleTx.
func (t *scheduleTx) NextDue(afterNow bool) (time.Time, error) {
	var next sql.NullInt64
	if err := t.x.queryRow(nextDueSQL, afterNow, t.now.UnixMicro()).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("spool: fire schedules: %w", err)
	}
	return fromMicros(next), nil
}

// firedChunk is how many schedules one RecordFired UPDATE carries (10
// parameters each).
const firedChunk = 64

var firedSQL [firedChunk + 1]string

func init() {
	for n := 1; n <= firedChunk; n++ {
		firedSQL[n] = `WITH v(tenant, id, set_next, next, last, live, fired, skipped, dropped, recent) AS (VALUES ` +
			strings.TrimSuffix(strings.Repeat("("+placeholders(10)+"), ", n), ", ") + `)
			UPDATE spool_schedules SET
				next_run_at = CASE WHEN v.set_next THEN v.next ELSE spool_schedules.next_run_at END,
				last_run_at = CASE WHEN v.last IS NULL THEN spool_schedules.last_run_at
					WHEN spool_schedules.last_run_at IS NULL OR v.last > spool_schedules.last_run_at THEN v.last
					ELSE spool_schedules.last_run_at END,
				live_job_id = coalesce(v.live, spool_schedules.live_job_id),
				fired = spool_schedules.fired + v.fired,
				skipped = spool_schedules.skipped + v.skipped,
				dropped = spool_schedules.dropped + v.dropped,
				recent = coalesce(v.recent, spool_schedules.recent)
			FROM v WHERE spool_schedules.tenant = v.tenant AND spool_schedules.id = v.id`
	}
}

// RecordFired implements engine.ScheduleTx with multi-row UPDATEs.
func (t *scheduleTx) RecordFired(recs []engine.Fired) error {
	args := make([]any, 0, 10*min(len(recs), firedChunk))
	for lo := 0; lo < len(recs); lo += firedChunk {
		part := recs[lo:min(lo+firedChunk, len(recs))]
		args = args[:0]
		for i := range part {
			f := &part[i]
			var live, recent any
			if !f.Live.IsZero() {
				live = f.Live
			}
			if f.Recent != nil {
				var err error
				if recent, err = encodeRecent(f.Recent); err != nil {
					return err
				}
			}
			args = append(args, f.Ref.Tenant, f.Ref.ID, f.SetNext, micros(f.Next), micros(f.Last), live,
				f.Fired, f.Skipped, f.Dropped, recent)
		}
		if _, err := t.x.exec(firedSQL[len(part)], args...); err != nil {
			return fmt.Errorf("spool: record fired schedules: %w", err)
		}
	}
	return nil
}
