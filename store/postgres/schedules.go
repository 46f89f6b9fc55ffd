package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

var _ engine.ScheduleDriver = (*backend)(nil)

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
func stampOf(t time.Time) pgtype.Timestamptz {
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

// scheduleArgs are the parallel arrays of scheduleDefs.
type scheduleArgs struct {
	tenants, ids, specs, zones, queues, kinds []string
	payloads                                  [][]byte
	priorities                                []int16
	maxAttempts, catchUp                      []int32
	overlaps, misfires, modes                 []string
	delays                                    []int64
	paused                                    []bool
	next                                      []pgtype.Timestamptz
	versions                                  []int64
	stamps                                    []time.Time
}

func (a *scheduleArgs) add(s *store.Schedule, stamp time.Time) {
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
	a.next = append(a.next, stampOf(s.NextRunAt))
	a.versions = append(a.versions, s.Version)
	a.stamps = append(a.stamps, stamp)
}

func (a *scheduleArgs) args() []any {
	return []any{a.tenants, a.ids, a.specs, a.zones, a.queues, a.kinds, a.payloads, a.priorities, a.maxAttempts,
		a.overlaps, a.misfires, a.catchUp, a.modes, a.delays, a.paused, a.next, a.versions, a.stamps}
}

// GetSchedule implements engine.ScheduleDriver.
func (s *backend) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	sc, err := scanSchedule(s.pool.QueryRow(ctx, s.q.sched.get, ref.Tenant, ref.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "get schedule", err)
	}
	return sc, nil
}

// ListSchedules implements engine.ScheduleDriver.
func (s *backend) ListSchedules(ctx context.Context, p store.ScheduleListParams) ([]*store.Schedule, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q.sched.list, p.Tenant, p.After, p.Limit+1)
	if err != nil {
		return nil, s.fail(ctx, "list schedules", err)
	}
	list, err := pgx.CollectRows(rows, scanScheduleRow)
	if err != nil {
		return nil, s.fail(ctx, "list schedules", err)
	}
	return list, nil
}

// PeekNextDue implements engine.ScheduleDriver.
func (s *backend) PeekNextDue(ctx context.Context) (time.Time, error) {
	if err := s.start(ctx); err != nil {
		return time.Time{}, err
	}
	var next *time.Time
	if err := s.pool.QueryRow(ctx, s.q.sched.peek).Scan(&next); err != nil {
		return time.Time{}, s.fail(ctx, "fire schedules", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return next.UTC(), nil
}

// Tx implements engine.ScheduleDriver: a READ COMMITTED transaction, run
// again (up to three times in all) when PostgreSQL aborts it to break a
// deadlock. Schedule writes lock a schedule and then may wait for a job (an
// insert that meets a run key a settling job still holds), while a settle
// locks the job and then its schedule (the release trigger); the rare
// deadlock between them costs a retry.
func (s *backend) Tx(ctx context.Context, _ bool, fn func(tx engine.ScheduleTx) error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	var t *scheduleTx
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error {
			t = &scheduleTx{s: s, ctx: ctx, tx: tx, now: s.now()}
			return fn(t)
		})
		var pe *pgconn.PgError
		if attempt < 3 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") && ctx.Err() == nil {
			continue
		}
		if err != nil {
			var ie *store.ItemError
			if errors.As(err, &ie) {
				return err
			}
			return s.fail(ctx, "schedules", err)
		}
		s.changed(availableQueues(t.jobs, t.enq), nil)
		return nil
	}
}

// scheduleTx is one schedule transaction.
type scheduleTx struct {
	s   *backend
	ctx context.Context
	tx  pgx.Tx
	now time.Time
	// jobs and enq are every job inserted and its result, to wake their
	// queues after the commit.
	jobs []store.EnqueueParams
	enq  []store.EnqueueResult
}

// Now implements engine.ScheduleTx.
func (t *scheduleTx) Now() time.Time { return t.now }

// LockSchedules implements engine.ScheduleTx, locking in key order.
func (t *scheduleTx) LockSchedules(refs []store.ScheduleRef) (map[store.ScheduleRef]*store.Schedule, error) {
	tenants, idList := refArrays(refs)
	rows, err := t.tx.Query(t.ctx, t.s.q.sched.lock, tenants, idList)
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

// LockDue implements engine.ScheduleTx with FOR UPDATE SKIP LOCKED, so that
// racing schedulers, here or in other processes, take disjoint sets.
func (t *scheduleTx) LockDue(limit int) ([]*store.Schedule, error) {
	rows, err := t.tx.Query(t.ctx, t.s.q.sched.due, t.now, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanScheduleRow)
}

// JobStates implements engine.ScheduleTx.
func (t *scheduleTx) JobStates(want []store.ID) (map[store.ID]store.State, error) {
	return t.s.jobStates(t.ctx, t.tx, ids(want))
}

// HoldLive implements engine.ScheduleTx with a share lock (FOR SHARE).
func (t *scheduleTx) HoldLive(want []store.ID) (map[store.ID]bool, error) {
	rows, err := t.tx.Query(t.ctx, t.s.q.sched.holdLive, ids(want))
	if err != nil {
		return nil, err
	}
	held := map[store.ID]bool{}
	var id [16]byte
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		held[id] = true
		return nil
	})
	return held, err
}

// InsertJobs implements engine.ScheduleTx through the enqueue path.
func (t *scheduleTx) InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(jobs))
	if err := t.s.insertJobs(t.ctx, pgxExec{t.tx}, jobs, res, t.now); err != nil {
		return nil, err
	}
	t.jobs, t.enq = append(t.jobs, jobs...), append(t.enq, res...)
	return res, nil
}

// InsertSchedules implements engine.ScheduleTx with one INSERT.
func (t *scheduleTx) InsertSchedules(scs []*store.Schedule) ([]bool, error) {
	created := make([]bool, len(scs))
	if len(scs) == 0 {
		return created, nil
	}
	var a scheduleArgs
	for _, sc := range scs {
		a.add(sc, sc.CreatedAt)
	}
	rows, err := t.tx.Query(t.ctx, t.s.q.sched.insert, a.args()...)
	if err != nil {
		return nil, err
	}
	done := map[store.ScheduleRef]bool{}
	var r store.ScheduleRef
	if _, err := pgx.ForEachRow(rows, []any{&r.Tenant, &r.ID}, func() error {
		done[r] = true
		return nil
	}); err != nil {
		return nil, err
	}
	for i, sc := range scs {
		created[i] = done[sc.Ref()]
	}
	return created, nil
}

// UpdateSchedules implements engine.ScheduleTx with one UPDATE.
func (t *scheduleTx) UpdateSchedules(scs []*store.Schedule) error {
	if len(scs) == 0 {
		return nil
	}
	var a scheduleArgs
	for _, sc := range scs {
		a.add(sc, sc.UpdatedAt)
	}
	_, err := t.tx.Exec(t.ctx, t.s.q.sched.update, a.args()...)
	return err
}

// SetPaused implements engine.ScheduleTx with one UPDATE.
func (t *scheduleTx) SetPaused(refs []store.ScheduleRef, paused bool, next []time.Time) error {
	if len(refs) == 0 {
		return nil
	}
	tenants, idList := refArrays(refs)
	if next == nil {
		_, err := t.tx.Exec(t.ctx, t.s.q.sched.pause, tenants, idList, paused)
		return err
	}
	at := make([]pgtype.Timestamptz, len(next))
	for i, n := range next {
		at[i] = stampOf(n)
	}
	_, err := t.tx.Exec(t.ctx, t.s.q.sched.resume, tenants, idList, at, paused)
	return err
}

// DeleteSchedules implements engine.ScheduleTx with one DELETE.
func (t *scheduleTx) DeleteSchedules(refs []store.ScheduleRef) error {
	if len(refs) == 0 {
		return nil
	}
	tenants, idList := refArrays(refs)
	_, err := t.tx.Exec(t.ctx, t.s.q.sched.remove, tenants, idList)
	return err
}

// RecordFired implements engine.ScheduleTx with one UPDATE.
func (t *scheduleTx) RecordFired(recs []engine.Fired) error {
	if len(recs) == 0 {
		return nil
	}
	var a firedArgs
	for i := range recs {
		if err := a.add(&recs[i]); err != nil {
			return err
		}
	}
	_, err := t.tx.Exec(t.ctx, t.s.q.sched.fired, a.args()...)
	return err
}

// NextDue implements engine.ScheduleTx.
func (t *scheduleTx) NextDue(afterNow bool) (time.Time, error) {
	var next time.Time
	switch err := t.tx.QueryRow(t.ctx, t.s.q.sched.nextDue, t.now, !afterNow).Scan(&next); {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, err
	}
	return next.UTC(), nil
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

func (a *firedArgs) add(f *engine.Fired) error {
	var recent *string
	if f.Recent != nil {
		var err error
		if recent, err = encodeRecent(f.Recent); err != nil {
			return err
		}
	}
	a.tenants, a.ids = append(a.tenants, f.Ref.Tenant), append(a.ids, f.Ref.ID)
	a.setNext, a.next, a.last = append(a.setNext, f.SetNext), append(a.next, stampOf(f.Next)), append(a.last, stampOf(f.Last))
	a.live = append(a.live, pgtype.UUID{Bytes: f.Live, Valid: !f.Live.IsZero()})
	a.fired, a.skip, a.dropped = append(a.fired, int64(f.Fired)), append(a.skip, int64(f.Skipped)), append(a.dropped, int64(f.Dropped))
	a.recent = append(a.recent, recent)
	return nil
}

func (a *firedArgs) args() []any {
	return []any{a.tenants, a.ids, a.setNext, a.next, a.last, a.live, a.fired, a.skip, a.dropped, a.recent}
}
