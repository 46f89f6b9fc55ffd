package postgres

// The SQL of schedules (migration 0002). Batches are passed as parallel
// arrays; a batch of refs is ($1 tenants, $2 ids).

// scheduleColumns is the column list every schedule read returns, in
// scanSchedule's order.
const scheduleColumns = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, paused, version, next_run_at, last_run_at, live_job_id,
	fired, skipped, dropped, recent, created_at, updated_at`

// refsIn is the SQL condition "the schedule is one of the refs $1, $2".
const refsIn = `(tenant, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`

// scheduleDefs are the arrays of a batch of schedule definitions,
// parameters $1 to $18 (see scheduleArgs), and scheduleDefCols their names.
const (
	scheduleDefs = `$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
	$8::smallint[], $9::integer[], $10::text[], $11::text[], $12::integer[], $13::text[], $14::bigint[],
	$15::boolean[], $16::timestamptz[], $17::bigint[], $18::timestamptz[]`
	scheduleDefCols = `tenant, id, spec, zone, queue, kind, payload, priority, max_attempts,
	overlap, misfire, catch_up_max, mode, release_delay, paused, next_run_at, version, stamp`
)

// insertSchedulesSQL creates schedules that do not exist, with the version
// given and stamp as created_at and updated_at, and returns the ones it
// created. Rows go in key order so that concurrent batches lock in the same
// order.
const insertSchedulesSQL = `INSERT INTO {schema}.schedules (tenant, id, spec, zone, queue, kind, payload, priority,
	max_attempts, overlap, misfire, catch_up_max, mode, release_delay, paused, version, next_run_at, created_at, updated_at)
SELECT tenant, id, spec, zone, queue, kind, payload, priority, max_attempts, overlap, misfire, catch_up_max,
	mode, release_delay, paused, version, next_run_at, stamp, stamp
FROM unnest(` + scheduleDefs + `) AS v(` + scheduleDefCols + `)
ORDER BY tenant, id
ON CONFLICT (tenant, id) DO NOTHING
RETURNING tenant, id`

// updateSchedulesSQL replaces the definitions of existing schedules, which
// the transaction holds locked, with the version, next_run_at and stamp
// (updated_at) given; it leaves their pause, runs and counters.
const updateSchedulesSQL = `UPDATE {schema}.schedules AS s SET
	spec = v.spec, zone = v.zone, queue = v.queue, kind = v.kind, payload = v.payload, priority = v.priority,
	max_attempts = v.max_attempts, overlap = v.overlap, misfire = v.misfire, catch_up_max = v.catch_up_max,
	mode = v.mode, release_delay = v.release_delay, version = v.version, next_run_at = v.next_run_at,
	updated_at = v.stamp
FROM unnest(` + scheduleDefs + `) AS v(` + scheduleDefCols + `)
WHERE s.tenant = v.tenant AND s.id = v.id`

// Reads and the simple writes of a batch of refs.
const (
	getScheduleSQL   = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules WHERE tenant = $1 AND id = $2`
	listSchedulesSQL = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules
WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	lockSchedulesSQL = `SELECT ` + scheduleColumns + ` FROM {schema}.schedules WHERE ` + refsIn + `
ORDER BY tenant, id FOR UPDATE`
	pauseSchedulesSQL  = `UPDATE {schema}.schedules SET paused = $3 WHERE ` + refsIn
	deleteSchedulesSQL = `DELETE FROM {schema}.schedules WHERE ` + refsIn
	resumeSchedulesSQL = `UPDATE {schema}.schedules AS s SET paused = $4, next_run_at = v.next_run_at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(tenant, id, next_run_at)
WHERE s.tenant = v.tenant AND s.id = v.id`
	peekNextDueSQL = `SELECT min(next_run_at) FROM {schema}.schedules WHERE NOT paused AND next_run_at IS NOT NULL`
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

// nextDueSQL is the earliest next_run_at of an unpaused schedule; when $2
// is false, only among slots after $1 (see engine.ScheduleTx.NextDue: a
// schedule still due then is one another scheduler holds and is firing).
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
	insert, update, get, list, lock, pause, resume, remove string
	peek, due, nextDue, fired, holdLive                    string
}

func newScheduleQueries(schema string) *scheduleQueries {
	r := func(s string) string { return render(s, schema) }
	return &scheduleQueries{
		insert: r(insertSchedulesSQL), update: r(updateSchedulesSQL), get: r(getScheduleSQL), list: r(listSchedulesSQL),
		lock: r(lockSchedulesSQL), pause: r(pauseSchedulesSQL), resume: r(resumeSchedulesSQL), remove: r(deleteSchedulesSQL),
		peek: r(peekNextDueSQL), due: r(dueSchedulesSQL), nextDue: r(nextDueSQL), fired: r(firedSQL), holdLive: r(holdLiveSQL),
	}
}
