package postgres

import (
	"strconv"

	"github.com/spoolrun/spool/store"
)

// The SQL of the store. Each statement names tables as {schema}.jobs and
// {schema}.queues; newQueries renders them for one schema.

// jobColumns is the column list every job read returns, in scanJob's order.
const jobColumns = `id, queue, kind, payload, priority, run_at, state, tenant, unique_key, ordering_key,
	attempts, max_attempts, deliveries, max_deliveries, lock_token, locked_until,
	errors, result, dead_reason, created_at, finished_at, hold_when_dead, unique_until,
	metadata, attempted_at, last_attempt_us`

// live is the SQL list of live states; finishedStates of the others.
const (
	live           = `('scheduled', 'available', 'running')`
	finishedStates = `('completed', 'cancelled', 'dead')`
)

// insertSQL inserts a batch of jobs passed as parallel arrays, one row per
// element in array order. ON CONFLICT DO NOTHING skips a row whose ID is
// taken or whose (tenant, unique key) a job holds (a live one, a finished
// one with unique_held, or an earlier row of the same statement);
// RETURNING names the rows that went in.
const insertSQL = insertRowsSQL + skipConflictsSQL

// insertRowsSQL is insertSQL's INSERT, which, on its own, fails on a row
// it cannot insert instead of skipping it: the strict insert of a pipelined
// transaction (pipeExec).
const insertRowsSQL = `INSERT INTO {schema}.jobs (id, queue, kind, payload, priority, run_at, state, tenant,
	unique_key, ordering_key, max_attempts, max_deliveries, created_at)
SELECT id, queue, kind, payload, priority, run_at, state, tenant,
	NULLIF(unique_key, ''), NULLIF(ordering_key, ''), max_attempts, max_deliveries, $13
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::smallint[], $6::timestamptz[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::integer[], $12::integer[])
	AS t(id, queue, kind, payload, priority, run_at, state, tenant, unique_key, ordering_key, max_attempts, max_deliveries)`

// insertExtSQL is insertSQL that also sets hold_when_dead from $14, the
// unique key's window from $15 (UniqueFor in microseconds, 0 for none:
// unique_until is created_at plus it, and the job keeps its key past
// finishing, unique_held) and metadata from $16 (JSON text, NULL for
// none), for batches with a job that has HoldKeyWhenDead, UniqueFor or
// Metadata: the common insert sends no arrays for them.
const insertExtSQL = insertExtRowsSQL + skipConflictsSQL

// insertExtRowsSQL is insertExtSQL's INSERT on its own (see insertRowsSQL).
const insertExtRowsSQL = `INSERT INTO {schema}.jobs (id, queue, kind, payload, priority, run_at, state, tenant,
	unique_key, ordering_key, max_attempts, max_deliveries, created_at, hold_when_dead, unique_until, unique_held, metadata)
SELECT id, queue, kind, payload, priority, run_at, state, tenant,
	NULLIF(unique_key, ''), NULLIF(ordering_key, ''), max_attempts, max_deliveries, $13, hold,
	CASE WHEN unique_for > 0 THEN $13::timestamptz + unique_for * interval '1 microsecond' END, unique_for > 0, meta::jsonb
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::smallint[], $6::timestamptz[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::integer[], $12::integer[], $14::boolean[], $15::bigint[], $16::text[])
	AS t(id, queue, kind, payload, priority, run_at, state, tenant, unique_key, ordering_key, max_attempts, max_deliveries, hold, unique_for, meta)`

// skipConflictsSQL makes an insert skip the rows it cannot insert and name
// those it did.
const skipConflictsSQL = `
ON CONFLICT DO NOTHING
RETURNING id`

// holding is the SQL condition of a job in the unique index jobs_unique:
// live, or finished and keeping its key (unique_held). Written as in the
// index's predicate, so that every look-up of a key's holder is a probe of
// the index.
const holding = `(state IN ` + live + ` OR unique_held)`

// findHolderSQL finds the job holding a (tenant, unique key), which the
// unique index admits at most one of, and whether it holds it at $3 (a
// live job, or unique_until after $3).
const findHolderSQL = `SELECT id, state, state IN ` + live + ` OR coalesce(unique_until > $3, false)
FROM {schema}.jobs
WHERE tenant = $1 AND unique_key = $2 AND ` + holding

// releaseSQL makes a finished job whose window has passed give up its
// unique key. It is a no-op for a job that another transaction made live
// again, or that gave the key up already.
const releaseSQL = `UPDATE {schema}.jobs SET unique_held = false
WHERE id = $1 AND unique_held AND state NOT IN ` + live + ` AND unique_until <= $2`

// carrySQL records the attempts and errors a job starts with.
const carrySQL = `UPDATE {schema}.jobs SET attempts = $2, errors = $3 WHERE id = $1`

// idTakenSQL tells whether a job has this ID.
const idTakenSQL = `SELECT EXISTS (SELECT 1 FROM {schema}.jobs WHERE id = $1)`

// lightSQL makes the transaction it runs in commit without waiting for the
// WAL flush. Claims, renewals and reaps use it: if a crash loses one, the job
// only falls back to its earlier state (its lock was never granted,
// extended or taken), which at-least-once delivery already allows: a worker
// that ran a job whose claim was lost is refused at settle and the job runs
// again. Enqueues and settles stay durable on return.
const lightSQL = `SELECT set_config('synchronous_commit', 'off', true)`

// promoteSQL makes a queue's due scheduled jobs available just before a
// claim, so the claim sees them in priority order. It takes at most
// promoteBatch per claim (oldest run_at first) and skips rows another
// transaction holds, so concurrent claimers never wait on each other here.
const promoteSQL = `UPDATE {schema}.jobs SET state = 'available'
WHERE id IN (
	SELECT id FROM {schema}.jobs
	WHERE state = 'scheduled' AND queue = $1 AND run_at <= $2
	  AND NOT EXISTS (SELECT 1 FROM {schema}.queues WHERE name = $1 AND paused)
	ORDER BY run_at
	LIMIT ` + promoteBatch + `
	FOR UPDATE SKIP LOCKED)`

const promoteBatch = "10000"

// claimSQL locks up to $2 available jobs of queue $1 in priority, run_at,
// enqueue order and marks them running, each with its own token from $5.
//
// A job with an ordering key qualifies only when it is the head of its key
// (no earlier live job shares its tenant and key, nor an earlier dead job
// that holds the key: hold_when_dead, a probe of jobs_dead_holds) and no
// job of its key is running, and only when this transaction gets the key's
// advisory lock
// ($6, bucket of the key's hash). The CASE keeps the lock attempt last, so
// keys that cannot run now are not locked. The IDs of keyed jobs claimed are
// left in the transaction-local setting spool.claimed_keys for
// verifyKeysSQL, which runs next in the same transaction. See Store.Claim
// for why the lock and that second look make keyed claims exclusive.
const claimSQL = `WITH claimed AS (
	UPDATE {schema}.jobs AS j
	SET state = 'running', lock_token = c.token, locked_until = $3, attempted_at = $7, deliveries = j.deliveries + 1, worker = NULLIF($4, '')
	FROM (
		SELECT s.id, ($5::bigint[])[row_number() OVER ()] AS token
		FROM (
			SELECT a.id FROM {schema}.jobs AS a
			WHERE a.state = 'available' AND a.queue = $1
			  AND NOT EXISTS (SELECT 1 FROM {schema}.queues WHERE name = $1 AND paused)
			  AND (a.ordering_key IS NULL OR CASE
				WHEN EXISTS (SELECT 1 FROM {schema}.jobs AS o
					WHERE o.tenant = a.tenant AND o.ordering_key = a.ordering_key
					  AND o.state IN ` + live + ` AND o.id < a.id) THEN false
				WHEN EXISTS (SELECT 1 FROM {schema}.jobs AS r
					WHERE r.tenant = a.tenant AND r.ordering_key = a.ordering_key AND r.state = 'running') THEN false
				WHEN EXISTS (SELECT 1 FROM {schema}.jobs AS d
					WHERE d.tenant = a.tenant AND d.ordering_key = a.ordering_key
					  AND d.state = 'dead' AND d.hold_when_dead AND d.id < a.id) THEN false
				ELSE pg_try_advisory_xact_lock($6::integer, ` + keyBucket + `) END)
			ORDER BY a.priority, a.run_at, a.id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		) AS s
	) AS c
	WHERE j.id = c.id
	RETURNING j.id, j.queue, j.kind, j.payload, j.priority, j.run_at, j.state, j.tenant, j.unique_key, j.ordering_key,
		j.attempts, j.max_attempts, j.deliveries, j.max_deliveries, j.lock_token, j.locked_until,
		j.errors, j.result, j.dead_reason, j.created_at, j.finished_at, j.hold_when_dead, j.unique_until,
		j.metadata, j.attempted_at, j.last_attempt_us
), noted AS (
	SELECT set_config('spool.claimed_keys',
		coalesce(array_agg(id) FILTER (WHERE ordering_key IS NOT NULL), '{}')::text, true) AS keys
	FROM claimed
)
SELECT claimed.* FROM claimed, noted`

// keyBucket is the SQL of an ordering key's advisory lock: one of 256
// buckets of the hash of (tenant, key). Bucketing bounds the locks one claim
// holds (PostgreSQL's lock table is shared and finite) at the price of rare
// false contention between keys of one bucket, which only makes a claimer
// leave a key to the next claim.
const keyBucket = `(hashtext(a.tenant || chr(1) || a.ordering_key) & 255)`

// verifyKeysSQL takes back, inside the claiming transaction, any keyed job
// claimSQL just claimed (spool.claimed_keys) that another job of its key makes ineligible when looked at again
// after the key's advisory lock was taken: a job of the key running, an
// earlier live one, or an earlier dead one that holds the key. It returns
// the jobs it gave back.
const verifyKeysSQL = `UPDATE {schema}.jobs AS j
SET state = 'available', lock_token = NULL, locked_until = NULL, deliveries = j.deliveries - 1
WHERE j.id = ANY(coalesce(nullif(current_setting('spool.claimed_keys', true), ''), '{}')::uuid[])
  AND j.state = 'running' AND (EXISTS (
	SELECT 1 FROM {schema}.jobs AS o
	WHERE o.tenant = j.tenant AND o.ordering_key = j.ordering_key AND o.id <> j.id
	  AND (o.state = 'running' OR (o.id < j.id AND o.state IN ` + live + `)))
  OR EXISTS (
	SELECT 1 FROM {schema}.jobs AS d
	WHERE d.tenant = j.tenant AND d.ordering_key = j.ordering_key
	  AND d.state = 'dead' AND d.hold_when_dead AND d.id < j.id))
RETURNING j.id`

// renewSQL extends the locks (id, token) of $1, $2 to $3.
const renewSQL = `UPDATE {schema}.jobs AS j SET locked_until = v.until
FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS v(id, tok, until)
WHERE j.id = v.id AND j.lock_token = v.tok AND j.state = 'running'
RETURNING j.id, v.tok`

// existingSQL returns which of the IDs $1 name a job.
const existingSQL = `SELECT id FROM {schema}.jobs WHERE id = ANY($1::uuid[])`

// appendError is the SQL expression of a job's error history with one entry
// added: at ($2, RFC 3339 text), the attempt number (read from the row),
// message and stack (omitted when NULL). Only the newest
// store.MaxErrorHistory entries are kept.
func appendError(msg, stack string) string {
	entry := `jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('at', $2::text, 'attempt', j.attempts + 1, 'message', ` + msg + `, 'stack', ` + stack + `)))`
	return `(CASE WHEN jsonb_array_length(coalesce(j.errors, '[]'::jsonb)) >= ` + strconv.Itoa(store.MaxErrorHistory) + `
		THEN (j.errors - 0) || ` + entry + `
		ELSE coalesce(j.errors, '[]'::jsonb) || ` + entry + ` END)`
}

// fenced joins the verdicts v to the jobs they hold.
const fenced = ` WHERE j.id = v.id AND j.lock_token = v.tok AND j.state = 'running'
RETURNING j.id, j.queue, j.state`

// took sets how long the delivery being settled took, from its claim
// (attempted_at) to $1, the settle's now. Every verdict but a release sets
// it.
const took = ` last_attempt_us = greatest((extract(epoch FROM $1::timestamptz - j.attempted_at) * 1000000)::bigint, 0)`

// settleSQL applies one outcome to many deliveries, given as parallel
// arrays starting with the IDs and tokens, and returns the settled jobs.
// Statements that record an error take $1 now and $2 now as RFC 3339 text
// (for the entry); complete and snooze take $1 now; release takes no time.
var settleSQL = map[store.Outcome]string{
	store.Complete: `UPDATE {schema}.jobs AS j
		SET state = 'completed', finished_at = $1, result = v.result,` + took + `, lock_token = NULL, locked_until = NULL
		FROM unnest($2::uuid[], $3::bigint[], $4::bytea[]) AS v(id, tok, result)` + fenced,
	store.Fail: `UPDATE {schema}.jobs AS j SET
		errors = ` + appendError("v.msg", "v.stack") + `,
		state = CASE WHEN j.attempts + 1 >= j.max_attempts THEN 'dead' WHEN v.retry_at <= $1 THEN 'available' ELSE 'scheduled' END,
		dead_reason = CASE WHEN j.attempts + 1 >= j.max_attempts THEN 'max_attempts' END,
		finished_at = CASE WHEN j.attempts + 1 >= j.max_attempts THEN $1 END,
		run_at = CASE WHEN j.attempts + 1 >= j.max_attempts THEN j.run_at ELSE v.retry_at END,
		attempts = j.attempts + 1,` + took + `, lock_token = NULL, locked_until = NULL
		FROM unnest($3::uuid[], $4::bigint[], $5::timestamptz[], $6::text[], $7::text[]) AS v(id, tok, retry_at, msg, stack)` + fenced,
	store.DeadLetter: `UPDATE {schema}.jobs AS j SET
		errors = ` + appendError("v.msg", "v.stack") + `,
		state = 'dead', dead_reason = 'dead_lettered', finished_at = $1, attempts = j.attempts + 1,` + took + `,
		lock_token = NULL, locked_until = NULL
		FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[]) AS v(id, tok, msg, stack)` + fenced,
	store.Cancel: `UPDATE {schema}.jobs AS j SET
		errors = CASE WHEN v.msg IS NULL THEN j.errors ELSE ` + appendError("v.msg", "v.stack") + ` END,
		state = 'cancelled', finished_at = $1,` + took + `, lock_token = NULL, locked_until = NULL
		FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[]) AS v(id, tok, msg, stack)` + fenced,
	store.Snooze: `UPDATE {schema}.jobs AS j SET
		state = CASE WHEN v.retry_at <= $1 THEN 'available' ELSE 'scheduled' END, run_at = v.retry_at,` + took + `,
		lock_token = NULL, locked_until = NULL
		FROM unnest($2::uuid[], $3::bigint[], $4::timestamptz[]) AS v(id, tok, retry_at)` + fenced,
	store.Release: `UPDATE {schema}.jobs AS j SET
		state = 'available', deliveries = greatest(j.deliveries - 1, 0), lock_token = NULL, locked_until = NULL
		FROM unnest($1::uuid[], $2::bigint[]) AS v(id, tok)` + fenced,
}

// reapSQL returns up to $3 expired running jobs to available, or
// dead-letters those out of deliveries, recording the lost lock. SKIP LOCKED
// lets any number of nodes reap at once, each taking its own batch.
var reapSQL = `UPDATE {schema}.jobs AS j SET
	errors = ` + appendError("'lock expired on delivery ' || j.deliveries", "NULL::text") + `,
	state = CASE WHEN j.deliveries >= j.max_deliveries THEN 'dead' ELSE 'available' END,
	dead_reason = CASE WHEN j.deliveries >= j.max_deliveries THEN 'max_deliveries' END,
	finished_at = CASE WHEN j.deliveries >= j.max_deliveries THEN $1 END,
	lock_token = NULL, locked_until = NULL
FROM (
	SELECT id FROM {schema}.jobs WHERE state = 'running' AND locked_until < $1
	ORDER BY locked_until LIMIT $3
	FOR UPDATE SKIP LOCKED
) AS r
WHERE j.id = r.id
RETURNING j.state, j.queue, j.id`

// Reads.
const (
	getSQL = `SELECT ` + jobColumns + ` FROM {schema}.jobs WHERE id = $1`
	// uniqueKeySQL reads the job GetByUniqueKey answers: the one holding
	// the key (jobs_unique), else the newest finished one
	// (jobs_unique_finished).
	uniqueKeySQL = `SELECT ` + jobColumns + ` FROM (
	(SELECT ` + jobColumns + `, 0 AS pick FROM {schema}.jobs
	 WHERE tenant = $1 AND unique_key = $2 AND ` + holding + `)
	UNION ALL
	(SELECT ` + jobColumns + `, 1 AS pick FROM {schema}.jobs
	 WHERE tenant = $1 AND unique_key = $2 AND state IN ('completed', 'cancelled', 'dead')
	 ORDER BY created_at DESC, id DESC LIMIT 1)
) AS c
ORDER BY pick LIMIT 1`
	// statsSQL counts the live jobs of each queue per state exactly, each
	// state from its own partial index, with the oldest run_at of the
	// available ones; and each queue's finished jobs per state up to $1
	// (Stats stops at store.StatsCountCap), from jobs_queue_finished: the
	// queues that have finished jobs come from a skip-scan of it (one
	// probe per queue), and each count reads at most $1 of its entries.
	statsSQL = `SELECT queue, 'available', count(*), min(run_at) FROM {schema}.jobs WHERE state = 'available' GROUP BY queue
UNION ALL SELECT queue, 'scheduled', count(*), NULL FROM {schema}.jobs WHERE state = 'scheduled' GROUP BY queue
UNION ALL SELECT queue, 'running', count(*), NULL FROM {schema}.jobs WHERE state = 'running' GROUP BY queue
UNION ALL (
	WITH RECURSIVE q(name) AS (
		SELECT min(queue) FROM {schema}.jobs WHERE state IN ` + finishedStates + `
		UNION ALL
		SELECT (SELECT min(queue) FROM {schema}.jobs WHERE state IN ` + finishedStates + ` AND queue > q.name) FROM q WHERE q.name IS NOT NULL)
	SELECT q.name, s.state, (SELECT count(*) FROM (SELECT 1 FROM {schema}.jobs AS j
		WHERE j.queue = q.name AND j.state = s.state AND j.state IN ` + finishedStates + ` LIMIT $1) AS c), NULL
	FROM q, (VALUES ('completed'), ('cancelled'), ('dead')) AS s(state)
	WHERE q.name IS NOT NULL)`
	queueStatesSQL = `SELECT name, paused FROM {schema}.queues`
	jobStatesSQL   = `SELECT id, state FROM {schema}.jobs WHERE id = ANY($1::uuid[])`
)

// Administration.
const (
	cancelSQL = `UPDATE {schema}.jobs SET state = 'cancelled', finished_at = $1, lock_token = NULL, locked_until = NULL
WHERE id = ANY($2::uuid[]) AND state IN ` + live + `
RETURNING id`
	requeueLockSQL = `SELECT id, queue, tenant, coalesce(unique_key, ''), state FROM {schema}.jobs
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`
	requeueSQL = `UPDATE {schema}.jobs SET state = 'available', attempts = 0, deliveries = 0, run_at = $1,
	finished_at = NULL, dead_reason = NULL, result = NULL, lock_token = NULL, locked_until = NULL
WHERE id = ANY($2::uuid[])`
	// purgeSQL deletes dead jobs and returns how many, with the queues of
	// those that held their ordering key: the next job of the key may run.
	purgeSQL = `WITH purged AS (
	DELETE FROM {schema}.jobs
	WHERE state = 'dead' AND ($1 = '' OR queue = $1) AND ($2::uuid[] IS NULL OR id = ANY($2))
	RETURNING queue, hold_when_dead
)
SELECT count(*), coalesce(array_agg(DISTINCT queue) FILTER (WHERE hold_when_dead), '{}') FROM purged`
	setPausedSQL = `INSERT INTO {schema}.queues (name, paused, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at`
	pruneSQL = `DELETE FROM {schema}.jobs WHERE id IN (
	SELECT id FROM {schema}.jobs WHERE state = $1 AND finished_at < $2
	ORDER BY finished_at LIMIT $3
	FOR UPDATE SKIP LOCKED)`
)

// notifySQL sends one notification per payload on channel $1.
const notifySQL = `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`

// queries is every statement rendered for one schema.
type queries struct {
	insert, insertExt, findHolder, release, idTaken, carry string
	insertStrict, insertExtStrict                          string
	promote, claim, verifyKeys, renew, existing, reap      string
	settle                                                 map[store.Outcome]string
	get, uniqueKey, stats, queueStates, jobStates          string
	cancel, requeueLock, requeue, purge, setPaused, prune  string
	sched                                                  *scheduleQueries
	ev                                                     *eventQueries
	keys                                                   *keyQueries
	leases                                                 *leaseQueries
	workers                                                *workerQueries
	sqs                                                    *sqsQueries
}

func newQueries(schema string) *queries {
	r := func(s string) string { return render(s, schema) }
	q := &queries{
		insert: r(insertSQL), insertExt: r(insertExtSQL), findHolder: r(findHolderSQL), release: r(releaseSQL),
		idTaken: r(idTakenSQL), carry: r(carrySQL), insertStrict: r(insertRowsSQL), insertExtStrict: r(insertExtRowsSQL),
		promote: r(promoteSQL), claim: r(claimSQL), verifyKeys: r(verifyKeysSQL), renew: r(renewSQL),
		existing: r(existingSQL), reap: r(reapSQL),
		settle: map[store.Outcome]string{},
		get:    r(getSQL), uniqueKey: r(uniqueKeySQL), stats: r(statsSQL), queueStates: r(queueStatesSQL), jobStates: r(jobStatesSQL),
		cancel: r(cancelSQL), requeueLock: r(requeueLockSQL), requeue: r(requeueSQL), purge: r(purgeSQL),
		setPaused: r(setPausedSQL), prune: r(pruneSQL),
		sched:   newScheduleQueries(schema),
		ev:      newEventQueries(schema),
		keys:    newKeyQueries(schema),
		leases:  newLeaseQueries(schema),
		workers: newWorkerQueries(schema),
		sqs:     newSQSQueries(schema),
	}
	for o, s := range settleSQL {
		q.settle[o] = r(s)
	}
	return q
}
