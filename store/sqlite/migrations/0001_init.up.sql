-- Jobs: live work plus finished jobs until retention prunes them.
-- Times are Unix microseconds (UTC). IDs are 16-byte UUIDv7, so the primary
-- key is also enqueue order. Every index is partial, so a row sits only in
-- the indexes of its current state and finished rows never slow a claim.
CREATE TABLE spool_jobs (
    id             BLOB    NOT NULL PRIMARY KEY,
    queue          TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    payload        BLOB,
    priority       INTEGER NOT NULL DEFAULT 0,
    run_at         INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    tenant         TEXT    NOT NULL DEFAULT '',
    unique_key     TEXT,
    ordering_key   TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    deliveries     INTEGER NOT NULL DEFAULT 0,
    max_deliveries INTEGER NOT NULL,
    lock_token     INTEGER,
    locked_until   INTEGER,
    worker         TEXT,
    errors         TEXT,
    result         BLOB,
    dead_reason    TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
) WITHOUT ROWID;

-- The claim query walks exactly this index.
CREATE INDEX spool_jobs_claim ON spool_jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Scheduled jobs due in a queue are promoted to available just before a claim.
CREATE INDEX spool_jobs_scheduled ON spool_jobs (queue, run_at) WHERE state = 'scheduled';
-- The reaper finds expired locks here.
CREATE INDEX spool_jobs_running ON spool_jobs (locked_until) WHERE state = 'running';
-- Retention and dead-letter listings.
CREATE INDEX spool_jobs_finished ON spool_jobs (state, finished_at) WHERE state IN ('completed', 'cancelled', 'dead');
-- Unique keys are enforced among live jobs of a tenant.
CREATE UNIQUE INDEX spool_jobs_unique ON spool_jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
-- The head of each ordering key's line is its smallest live id.
CREATE INDEX spool_jobs_ordering ON spool_jobs (tenant, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');

-- Queue settings; a queue needs no row until it has one.
CREATE TABLE spool_queues (
    name       TEXT    NOT NULL PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
