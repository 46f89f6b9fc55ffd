package postgres

import "github.com/spoolrun/spool/store"

// The SQL of events (migrations 0003 and 0004). Durations are stored as bigint
// microseconds; a retention of -1 keeps events forever.

// eventColumns is the column list every event read returns, in scanEvent's order.
const eventColumns = `topic, position, id, kind, coalesce(key, ''), coalesce(version, 0), tenant, headers, payload, published_at`

// subscriptionColumns is the column list every subscription read returns,
// in scanSubscription's order.
const subscriptionColumns = `s.topic, s.name, s.kinds, s.ordered, s.on_dead_head, s.lock_for, s.max_attempts, s.max_deliveries,
	s.retry_base, s.retry_max, s.cursor, s.created_at, s.updated_at`

// lockTopicSQL creates topic $1 if it is new and, either way, takes its row
// lock and returns its head, in one statement. The lock is held until the
// transaction ends, so publishers of one topic take turns: the head a
// publisher reads here is final (every publisher before it has committed or
// rolled back), the positions it hands out after it are in commit order,
// and a rolled-back publish leaves the head where it was. The no-op update
// of the conflict arm is what takes the lock; in READ COMMITTED it also
// reads the newest committed head, after waiting for a holder to finish.
const lockTopicSQL = `INSERT INTO {schema}.topics AS t (name, created_at) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET head = t.head
RETURNING t.head`

// insertEventsSQL inserts a batch of events passed as parallel arrays.
// It also moves the topic's head to the last of them ($11) and its
// publish time ($12), in the same round trip (SetHead then has nothing
// left to do).
const insertEventsSQL = `WITH ins AS (INSERT INTO {schema}.events (topic, position, id, kind, key, version, tenant, headers, payload, published_at)
SELECT $1::text, position, id, kind, NULLIF(key, ''), NULLIF(version, 0), tenant, NULLIF(headers, '')::jsonb, payload, published_at
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bytea[],
	$10::timestamptz[]) AS v(position, id, kind, key, version, tenant, headers, payload, published_at))
UPDATE {schema}.topics SET head = $11, published_at = $12 WHERE name = $1`

// Statements of an event transaction.
const (
	setHeadSQL = `UPDATE {schema}.topics SET head = $2, published_at = $3 WHERE name = $1`
	headSQL    = `SELECT coalesce((SELECT head FROM {schema}.topics WHERE name = $1), 0)`
	// findEventsSQL and streamVersionsSQL look each ID and key up on its
	// own (a lateral subquery per element): with "= ANY(array)" a table
	// without statistics yet (a new topic, before autovacuum's first
	// ANALYZE) was planned as a scan of the topic, and publishing slowed
	// to a crawl as the topic grew.
	findEventsSQL = `SELECT e.id, e.position, coalesce(e.version, 0) FROM unnest($2::text[]) AS want(id)
CROSS JOIN LATERAL (SELECT id, position, version FROM {schema}.events
	WHERE topic = $1 AND id = want.id LIMIT 1) AS e`
	streamVersionsSQL = `SELECT want.key, v.version FROM unnest($2::text[]) AS want(key)
CROSS JOIN LATERAL (SELECT version FROM {schema}.events
	WHERE topic = $1 AND key = want.key AND version IS NOT NULL ORDER BY version DESC LIMIT 1) AS v`
	eventsAfterSQL = `SELECT ` + eventColumns + ` FROM {schema}.events
WHERE topic = $1 AND position > $2 ORDER BY position LIMIT $3`
	firstAtSQL   = `SELECT min(position) FROM {schema}.events WHERE topic = $1 AND published_at >= $2`
	retentionSQL = `INSERT INTO {schema}.topics (name, retention, created_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET retention = excluded.retention`

	// lockSubSQL and lockSubSkipSQL read and lock a subscription with its
	// newest delivery's ID; the second passes over one another transaction
	// holds, and subExistsSQL then tells "held" from "missing".
	lockSubSQL = `SELECT ` + subscriptionColumns + `, s.last_id FROM {schema}.subscriptions AS s
WHERE s.topic = $1 AND s.name = $2 FOR UPDATE`
	lockSubSkipSQL = lockSubSQL + ` SKIP LOCKED`
	countSubsSQL   = `SELECT count(*) FROM {schema}.subscriptions WHERE topic = $1`
	// lockCaughtUpSQL locks the subscriptions of a topic whose cursor is at
	// the head, passing over those a router holds.
	lockCaughtUpSQL = `SELECT ` + subscriptionColumns + `, s.last_id,
	(SELECT count(*) FROM {schema}.subscriptions WHERE topic = $1) FROM {schema}.subscriptions AS s
WHERE s.topic = $1 AND s.cursor = $2 ORDER BY s.name FOR UPDATE SKIP LOCKED`
	// lockCaughtUpAtHeadSQL is lockCaughtUpSQL at the topic's head as the
	// statement reads it: sent right after lockTopicSQL in one round trip
	// (pipeExec), it reads the head that lock returned, the lock's holder
	// being the only writer of the head.
	lockCaughtUpAtHeadSQL = `SELECT ` + subscriptionColumns + `, s.last_id FROM {schema}.subscriptions AS s
WHERE s.topic = $1 AND s.cursor = (SELECT head FROM {schema}.topics WHERE name = $1) ORDER BY s.name FOR UPDATE SKIP LOCKED`
	subExistsSQL = `SELECT EXISTS (SELECT 1 FROM {schema}.subscriptions WHERE topic = $1 AND name = $2)`
	// insertSubSQL creates a subscription; a row another transaction made
	// meanwhile is left alone (no row affected).
	insertSubSQL = `INSERT INTO {schema}.subscriptions (topic, name, kinds, ordered, lock_for, max_attempts,
	max_deliveries, retry_base, retry_max, cursor, created_at, updated_at, on_dead_head)
VALUES ($1, $2, NULLIF($3::text, '')::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (topic, name) DO NOTHING`
	setCursorSQL = `UPDATE {schema}.subscriptions SET cursor = $3, last_id = $4, updated_at = $5
WHERE topic = $1 AND name = $2`
	setCursorsSQL = `UPDATE {schema}.subscriptions AS s SET cursor = $3, last_id = v.last_id, updated_at = $5
FROM unnest($2::text[], $4::uuid[]) AS v(name, last_id)
WHERE s.topic = $1 AND s.name = v.name`
	deleteSubSQL    = `DELETE FROM {schema}.subscriptions WHERE topic = $1 AND name = $2`
	deleteQueueSQL  = `DELETE FROM {schema}.queues WHERE name = $1`
	deleteQueueJobs = `DELETE FROM {schema}.jobs WHERE queue = $1`
	dropWaitingSQL  = `DELETE FROM {schema}.jobs WHERE queue = $1 AND state IN ('scheduled', 'available')`
	// eventsInJob is how many events a delivery job carries: a batch's
	// payload starts with their count in store.BatchCountDigits (6) ASCII
	// digits (store.EncodeBatch).
	eventsInJob     = `CASE WHEN kind = '` + store.BatchKind + `' THEN convert_from(substring(payload from 1 for 6), 'UTF8')::int ELSE 1 END`
	countWaitingSQL = `SELECT (SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'available')
	+ (SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'scheduled')`
	pruneFloorsSQL = `SELECT t.name, t.retention,
	coalesce((SELECT min(s.cursor) FROM {schema}.subscriptions AS s WHERE s.topic = t.name), t.head)
FROM {schema}.topics AS t WHERE t.retention >= 0 ORDER BY t.name`
	pruneEventsSQL = `DELETE FROM {schema}.events WHERE topic = $1 AND position IN (
	SELECT position FROM {schema}.events WHERE topic = $1 AND position <= $2 AND published_at < $3
	ORDER BY position LIMIT $4)`
	pruneInboxSQL  = `DELETE FROM {schema}.inbox WHERE seen_at < $1`
	forgetInboxSQL = `DELETE FROM {schema}.inbox WHERE consumer = $1`
	markSeenSQL    = `INSERT INTO {schema}.inbox (consumer, id, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
)

// Reads outside a transaction.
const (
	readEventsSQL = eventsAfterSQL
	readStreamSQL = `SELECT ` + eventColumns + ` FROM {schema}.events
WHERE topic = $1 AND key = $2 AND version > $3 ORDER BY version LIMIT $4`
	getEventSQL    = `SELECT ` + eventColumns + ` FROM {schema}.events WHERE topic = $1 AND id = $2`
	getEventAnySQL = `SELECT ` + eventColumns + ` FROM {schema}.events WHERE id = $1 ORDER BY topic LIMIT 1`
	topicsSQL      = `SELECT t.name, t.head, t.retention, t.published_at,
	(SELECT min(e.position) FROM {schema}.events AS e WHERE e.topic = t.name)
FROM {schema}.topics AS t ORDER BY t.name`
	subscriptionsSQL = `SELECT ` + subscriptionColumns + `, coalesce(q.paused, false)
FROM {schema}.subscriptions AS s
LEFT JOIN {schema}.queues AS q ON q.name = 'sub/' || s.topic || '/' || s.name
WHERE ($1 = '' OR s.topic = $1) AND ($2 = '' OR s.name = $2)
ORDER BY s.topic, s.name`
	lagFactsSQL = `SELECT
	coalesce((SELECT head FROM {schema}.topics WHERE name = $1), 0),
	coalesce((SELECT retention FROM {schema}.topics WHERE name = $1), -1),
	(SELECT coalesce(sum(` + eventsInJob + `), 0) FROM {schema}.jobs WHERE queue = $2 AND state IN ` + live + `),
	(SELECT coalesce(sum(` + eventsInJob + `), 0) FROM {schema}.jobs WHERE queue = $2 AND state = 'dead'),
	(SELECT min(created_at) FROM {schema}.jobs WHERE queue = $2 AND state IN ` + live + `),
	(SELECT published_at FROM {schema}.events WHERE topic = $1 AND position > $3 ORDER BY position LIMIT 1)`
)

// eventQueries is every event statement rendered for one schema.
type eventQueries struct {
	lockTopic, insertEvents, setHead, head, find, versions, after, firstAt, retention       string
	lockSub, lockSubSkip, lockCaughtUp, lockCaughtUpAtHead, countSubs, subExists, insertSub string
	setCursor, setCursors                                                                   string
	deleteSub, deleteQueue, deleteQueueJobs, dropWaiting, countWaiting                      string
	pruneFloors, prune, pruneInbox, markSeen, forgetInbox                                   string
	read, readStream, get, getAny, topics, subscriptions, lagFacts                          string
}

func newEventQueries(schema string) *eventQueries {
	r := func(s string) string { return render(s, schema) }
	return &eventQueries{
		lockTopic: r(lockTopicSQL), insertEvents: r(insertEventsSQL), setHead: r(setHeadSQL), head: r(headSQL),
		find: r(findEventsSQL), versions: r(streamVersionsSQL), after: r(eventsAfterSQL), firstAt: r(firstAtSQL),
		retention: r(retentionSQL),
		lockSub:   r(lockSubSQL), lockSubSkip: r(lockSubSkipSQL), lockCaughtUp: r(lockCaughtUpSQL), lockCaughtUpAtHead: r(lockCaughtUpAtHeadSQL), countSubs: r(countSubsSQL), subExists: r(subExistsSQL), insertSub: r(insertSubSQL),
		setCursor: r(setCursorSQL), setCursors: r(setCursorsSQL),
		deleteSub: r(deleteSubSQL), deleteQueue: r(deleteQueueSQL), deleteQueueJobs: r(deleteQueueJobs),
		dropWaiting: r(dropWaitingSQL), countWaiting: r(countWaitingSQL),
		pruneFloors: r(pruneFloorsSQL), prune: r(pruneEventsSQL), pruneInbox: r(pruneInboxSQL), markSeen: r(markSeenSQL),
		forgetInbox: r(forgetInboxSQL),
		read:        r(readEventsSQL), readStream: r(readStreamSQL), get: r(getEventSQL), getAny: r(getEventAnySQL),
		topics: r(topicsSQL), subscriptions: r(subscriptionsSQL), lagFacts: r(lagFactsSQL),
	}
}
