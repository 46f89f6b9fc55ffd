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

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

var _ store.ScheduleStore = (*Store)(nil)

const scheduleColumns = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, paused, version, next_run_at, last_run_at, live_job_id,
	fired, skipped, dropped, recent, created_at, updated_at`

// scheduleColumnsAs is scheduleColumns qualified with the table alias s.
var scheduleColumnsAs = "s." + strings.Join(strings.Split(strings.ReplaceAll(scheduleColumns, "\n\t", " "), ", "), ", s.")

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

func notFound(r store.ScheduleRef) error { return store.ScheduleNotFound(r) }

// UpsertSchedules implements store.ScheduleStore.
func (s *Store) UpsertSchedules(ctx context.Context, in []store.Schedule) ([]store.ScheduleUpsertResult, error) {
	if err := store.CheckBatch(len(in)); err != nil {
		return nil, err
	}
	items := make([]store.Schedule, len(in))
	invalid := make([]error, len(in))
	for i := range in {
		items[i] = in[i]
		items[i].Normalize()
		invalid[i] = schedule.Validate(&items[i])
	}
	results := make([]store.ScheduleUpsertResult, len(in))
	err := s.writer.do(ctx, func(x execer) error {
		now := s.now()
		for i := range items {
			if invalid[i] != nil {
				results[i] = store.ScheduleUpsertResult{Err: invalid[i]}
				continue
			}
			res, err := upsertSchedule(x, &items[i], now)
			if err != nil {
				return err
			}
			results[i] = res
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return results, nil
}

const insertScheduleSQL = `INSERT INTO spool_schedules (tenant, id, spec, zone, queue, kind, payload, priority,
	max_attempts, overlap, misfire, catch_up_max, mode, release_delay, paused, version, next_run_at,
	created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`

const updateScheduleSQL = `UPDATE spool_schedules SET spec = ?, zone = ?, queue = ?, kind = ?, payload = ?,
	priority = ?, max_attempts = ?, overlap = ?, misfire = ?, catch_up_max = ?, mode = ?, release_delay = ?,
	version = version + 1, next_run_at = ?, updated_at = ?
	WHERE tenant = ? AND id = ?`

func upsertSchedule(x execer, it *store.Schedule, now time.Time) (store.ScheduleUpsertResult, error) {
	var (
		spec, zone, mode string
		version          int64
		next             sql.NullInt64
		nowUS            = now.UnixMicro()
		itMode           = it.Mode.String()
		ref              = it.Ref()
		defArgs          = []any{it.Spec, it.Zone, it.Queue, it.Kind, it.Payload, it.Priority, it.MaxAttempts,
			it.Overlap.String(), it.Misfire.String(), it.CatchUpMax, itMode, schedule.ReleaseDelay(it).Microseconds()}
	)
	switch err := x.queryRow(`SELECT spec, zone, mode, version, next_run_at FROM spool_schedules WHERE tenant = ? AND id = ?`,
		it.Tenant, it.ID).Scan(&spec, &zone, &mode, &version, &next); {
	case errors.Is(err, sql.ErrNoRows):
		if it.Version != 0 {
			return store.ScheduleUpsertResult{Err: notFound(ref)}, nil
		}
		first, err := schedule.FirstSlot(it, now)
		if err != nil {
			return store.ScheduleUpsertResult{}, err
		}
		args := slices.Concat([]any{it.Tenant, it.ID}, defArgs, []any{it.Paused, micros(first), nowUS, nowUS})
		if _, err := x.exec(insertScheduleSQL, args...); err != nil {
			return store.ScheduleUpsertResult{}, fmt.Errorf("spool: upsert schedule %s: %w", ref, err)
		}
		return store.ScheduleUpsertResult{Version: 1, Created: true, NextRunAt: first}, nil
	case err != nil:
		return store.ScheduleUpsertResult{}, fmt.Errorf("spool: upsert schedule %s: %w", ref, err)
	}
	if it.Version != 0 && it.Version != version {
		return store.ScheduleUpsertResult{Err: &store.ConflictError{Resource: "schedule", Name: ref.String(), Want: it.Version, Current: version}}, nil
	}
	nextAt := fromMicros(next)
	if spec != it.Spec || zone != it.Zone || mode != itMode {
		var err error
		if nextAt, err = schedule.FirstSlot(it, now); err != nil {
			return store.ScheduleUpsertResult{}, err
		}
	}
	args := slices.Concat(defArgs, []any{micros(nextAt), nowUS, it.Tenant, it.ID})
	if _, err := x.exec(updateScheduleSQL, args...); err != nil {
		return store.ScheduleUpsertResult{}, fmt.Errorf("spool: upsert schedule %s: %w", ref, err)
	}
	return store.ScheduleUpsertResult{Version: version + 1, NextRunAt: nextAt}, nil
}

// GetSchedule implements store.ScheduleStore.
func (s *Store) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	if err := store.CheckScheduleRefs([]store.ScheduleRef{ref}); err != nil {
		return nil, err
	}
	sc, err := scanSchedule(s.rdb.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM spool_schedules WHERE tenant = ? AND id = ?`, ref.Tenant, ref.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(ref)
	}
	return sc, s.readErr(err)
}

// ListSchedules implements store.ScheduleStore.
func (s *Store) ListSchedules(ctx context.Context, p store.ScheduleListParams) (*store.SchedulePage, error) {
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM spool_schedules
		WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?`, p.Tenant, p.After, p.Limit+1)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	page := &store.SchedulePage{}
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		page.Schedules = append(page.Schedules, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	if len(page.Schedules) > p.Limit {
		page.Schedules = page.Schedules[:p.Limit]
		page.Next = page.Schedules[p.Limit-1].ID
	}
	return page, nil
}

// perRef runs fn for each ref in one write and collects per-item answers.
func (s *Store) perRef(ctx context.Context, refs []store.ScheduleRef, fn func(x execer, r store.ScheduleRef, now time.Time) (error, error)) ([]error, error) {
	return perItem(ctx, s, refs, store.CheckScheduleRefs, fn, nil)
}

// execOne runs an update of one schedule and answers ErrNotFound when it
// matched no row.
func execOne(x execer, r store.ScheduleRef, q string, args ...any) (error, error) {
	res, err := x.exec(q, args...)
	if err != nil {
		return nil, fmt.Errorf("spool: schedule %s: %w", r, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		return notFound(r), nil
	}
	return nil, nil
}

// PauseSchedules implements store.ScheduleStore.
func (s *Store) PauseSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, refs, func(x execer, r store.ScheduleRef, _ time.Time) (error, error) {
		return execOne(x, r, `UPDATE spool_schedules SET paused = 1 WHERE tenant = ? AND id = ?`, r.Tenant, r.ID)
	})
}

// ResumeSchedules implements store.ScheduleStore.
func (s *Store) ResumeSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, refs, func(x execer, r store.ScheduleRef, now time.Time) (error, error) {
		sc, err := scanSchedule(x.queryRow(`SELECT `+scheduleColumns+` FROM spool_schedules WHERE tenant = ? AND id = ?`, r.Tenant, r.ID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return notFound(r), nil
		case err != nil:
			return nil, err
		case !sc.Paused:
			return nil, nil
		}
		next, err := schedule.ResumeSlot(sc, now)
		if err != nil {
			return nil, err
		}
		return execOne(x, r, `UPDATE spool_schedules SET paused = 0, next_run_at = ? WHERE tenant = ? AND id = ?`, micros(next), r.Tenant, r.ID)
	})
}

// DeleteSchedules implements store.ScheduleStore.
func (s *Store) DeleteSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, refs, func(x execer, r store.ScheduleRef, _ time.Time) (error, error) {
		return execOne(x, r, `DELETE FROM spool_schedules WHERE tenant = ? AND id = ?`, r.Tenant, r.ID)
	})
}

// TriggerSchedules implements store.ScheduleStore.
func (s *Store) TriggerSchedules(ctx context.Context, refs []store.ScheduleRef) ([]store.TriggerResult, error) {
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	results := make([]store.TriggerResult, len(refs))
	var jobs []store.EnqueueParams
	var enq []store.EnqueueResult
	err := s.writer.queue(ctx, func(x execer) error {
		now := s.now()
		jobs, enq = jobs[:0], enq[:0]
		for i, r := range refs {
			results[i] = store.TriggerResult{}
			sc, err := scanSchedule(x.queryRow(`SELECT `+scheduleColumns+` FROM spool_schedules WHERE tenant = ? AND id = ?`, r.Tenant, r.ID))
			if errors.Is(err, sql.ErrNoRows) {
				results[i].Err = notFound(r)
				continue
			} else if err != nil {
				return err
			}
			slot := now.Truncate(time.Second)
			p := schedule.RunJob(sc, slot)
			if err := p.Normalize(now); err != nil {
				return fmt.Errorf("spool: trigger schedule %s: %w", r, err)
			}
			res := make([]store.EnqueueResult, 1)
			if err := insertJobs(x, []store.EnqueueParams{p}, res, now, true); err != nil {
				return err
			}
			run := store.ScheduleRun{Slot: slot, JobID: res[0].ID, Triggered: true}
			if res[0].Duplicate {
				results[i] = store.TriggerResult{Run: run, Duplicate: true}
				continue
			}
			recent, err := encodeRecent(schedule.PushRecent(sc.Recent, run))
			if err != nil {
				return err
			}
			if _, err := x.exec(`UPDATE spool_schedules SET live_job_id = ?, fired = fired + 1, last_run_at = ?, recent = ?
				WHERE tenant = ? AND id = ?`, res[0].ID, slot.UnixMicro(), recent, r.Tenant, r.ID); err != nil {
				return err
			}
			results[i].Run = run
			jobs, enq = append(jobs, p), append(enq, res[0])
		}
		return nil
	}, opts{grows: true, onCommit: func() { s.wakeQueues(jobs, enq) }})
	if err != nil {
		return nil, err
	}
	return results, nil
}

const nextDueSQL = `SELECT min(next_run_at) FROM spool_schedules WHERE paused = 0 AND next_run_at IS NOT NULL`

var dueSQL = `SELECT ` + scheduleColumnsAs + `, j.state FROM spool_schedules AS s
	LEFT JOIN spool_jobs AS j ON j.id = s.live_job_id
	WHERE s.paused = 0 AND s.next_run_at IS NOT NULL AND s.next_run_at <= ?
	ORDER BY s.next_run_at LIMIT ?`

// fireChunk is how many schedules one firing UPDATE carries (9 parameters each).
const fireChunk = 64

var fireUpdateSQL [fireChunk + 1]string

func init() {
	for n := 1; n <= fireChunk; n++ {
		fireUpdateSQL[n] = `WITH v(tenant, id, next, last, live, fired, skipped, dropped, recent) AS (VALUES ` +
			strings.TrimSuffix(strings.Repeat("("+placeholders(9)+"), ", n), ", ") + `)
			UPDATE spool_schedules SET next_run_at = v.next,
				last_run_at = coalesce(v.last, spool_schedules.last_run_at),
				live_job_id = coalesce(v.live, spool_schedules.live_job_id),
				fired = spool_schedules.fired + v.fired,
				skipped = spool_schedules.skipped + v.skipped,
				dropped = spool_schedules.dropped + v.dropped,
				recent = coalesce(v.recent, spool_schedules.recent)
			FROM v WHERE spool_schedules.tenant = v.tenant AND spool_schedules.id = v.id`
	}
}

// FireDue implements store.ScheduleStore. The writer runs the whole batch in one
// transaction, and it is the only writer of the file, so a second scheduler
// (in this process or another) sees the batch either not at all or fired.
func (s *Store) FireDue(ctx context.Context, p store.FireParams) (*store.FireResult, error) {
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	// Most calls find nothing due: answer those from a reader, without
	// taking the write lock (which other processes may be waiting for).
	var next sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, nextDueSQL).Scan(&next); err != nil {
		return nil, s.readErr(err)
	}
	if !next.Valid || next.Int64 > s.now().UnixMicro() {
		return &store.FireResult{NextDue: fromMicros(next)}, nil
	}
	var (
		res  *store.FireResult
		jobs []store.EnqueueParams
		enq  []store.EnqueueResult
	)
	err := s.writer.queue(ctx, func(x execer) error {
		now := s.now()
		res = &store.FireResult{}
		var err error
		jobs, enq, err = s.fire(x, p.Limit, now, res)
		return err
	}, opts{grows: true, onCommit: func() { s.wakeQueues(jobs, enq) }})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type dueSchedule struct {
	sc    *store.Schedule
	d     schedule.Decision
	first int // index of its first job in the batch
}

// readDue reads up to limit due schedules and decides what firing each does.
func (s *Store) readDue(x execer, limit int, now time.Time) ([]dueSchedule, error) {
	rows, err := x.query(dueSQL, now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("spool: fire schedules: %w", err)
	}
	defer rows.Close()
	var due []dueSchedule
	for rows.Next() {
		var live sql.NullString
		sc, err := scanSchedule(rows, &live)
		if err != nil {
			return nil, err
		}
		d, err := schedule.Decide(sc, store.State(live.String), now)
		if err != nil {
			// A stored spec or zone this build cannot read (say, a zone
			// dropped from the IANA database): fire nothing and look again
			// in an hour, rather than stop the schedule or spin on it.
			s.log.Error("spool: schedule cannot fire", "schedule", sc.Ref().String(), "err", err)
			d = schedule.Decision{Next: now.Add(time.Hour)}
		}
		due = append(due, dueSchedule{sc: sc, d: d})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spool: fire schedules: %w", err)
	}
	return due, nil
}

func (s *Store) fire(x execer, limit int, now time.Time, res *store.FireResult) ([]store.EnqueueParams, []store.EnqueueResult, error) {
	due, err := s.readDue(x, limit, now)
	if err != nil {
		return nil, nil, err
	}
	res.Schedules = len(due)

	var jobs []store.EnqueueParams
	for i := range due {
		due[i].first = len(jobs)
		for _, p := range due[i].d.Jobs {
			if err := p.Normalize(now); err != nil {
				return nil, nil, fmt.Errorf("spool: schedule %s: %w", due[i].sc.Ref(), err)
			}
			jobs = append(jobs, p)
		}
	}
	enq := make([]store.EnqueueResult, len(jobs))
	if len(jobs) > 0 {
		if err := insertJobs(x, jobs, enq, now, true); err != nil {
			return nil, nil, err
		}
	}
	args := make([]any, 0, 9*min(len(due), fireChunk))
	for start := 0; start < len(due); start += fireChunk {
		chunk := due[start:min(start+fireChunk, len(due))]
		args = args[:0]
		for i := range chunk {
			sc, d := chunk[i].sc, &chunk[i].d
			var last, liveID, recent any
			fired := 0
			if n := len(d.Jobs); n > 0 {
				// A duplicate's run is already recorded (a trigger in the
				// same second): it becomes the live run but is not counted
				// again.
				runs := make([]store.ScheduleRun, 0, n)
				for k := range n {
					r := enq[chunk[i].first+k]
					res.Runs = append(res.Runs, store.FiredRun{Ref: sc.Ref(), Slot: d.Slots[k], JobID: r.ID, Duplicate: r.Duplicate})
					liveID = r.ID
					if !r.Duplicate {
						runs = append(runs, store.ScheduleRun{Slot: d.Slots[k], JobID: r.ID})
						last = d.Slots[k].UnixMicro()
					}
				}
				if fired = len(runs); fired > 0 {
					if recent, err = encodeRecent(schedule.PushRecent(sc.Recent, runs...)); err != nil {
						return nil, nil, err
					}
				}
			}
			args = append(args, sc.Tenant, sc.ID, micros(d.Next), last, liveID, fired, d.Skipped, d.Dropped, recent)
			res.Skipped += d.Skipped
			res.Dropped += d.Dropped
		}
		if _, err := x.exec(fireUpdateSQL[len(chunk)], args...); err != nil {
			return nil, nil, fmt.Errorf("spool: fire schedules: %w", err)
		}
	}
	var nextDue sql.NullInt64
	if err := x.queryRow(nextDueSQL).Scan(&nextDue); err != nil {
		return nil, nil, fmt.Errorf("spool: fire schedules: %w", err)
	}
	res.NextDue = fromMicros(nextDue)
	return jobs, enq, nil
}
