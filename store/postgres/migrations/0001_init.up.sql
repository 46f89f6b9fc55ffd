-- Jobs: live work plus finished jobs until retention prunes them.
-- The schema token in braces is replaced by the store's schema (Config.Schema, default spool).
-- IDs are UUIDv7, so the primary key is also enqueue order. Times are
-- timestamptz (microseconds). Every secondary index is partial, so a row sits
-- only in the indexes of its current state and finished rows never slow a
-- claim.
CREATE TABLE {schema}.jobs (
    id             uuid        NOT NULL PRIMARY KEY,
    queue          text        NOT NULL,
    kind           text        NOT NULL,
    payload        bytea,
    priority       smallint    NOT NULL DEFAULT 0,
    run_at         timestamptz NOT NULL,
    state          text        NOT NULL CHECK (state IN ('scheduled', 'available', 'running', 'completed', 'cancelled', 'dead')),
    tenant         text        NOT NULL DEFAULT '',
    unique_key     text,
    ordering_key   text,
    attempts       integer     NOT NULL DEFAULT 0,
    max_attempts   integer     NOT NULL,
    deliveries     integer     NOT NULL DEFAULT 0,
    max_deliveries integer     NOT NULL,
    lock_token     bigint,
    locked_until   timestamptz,
    worker         text,
    errors         jsonb,
    result         bytea,
    dead_reason    text,
    created_at     timestamptz NOT NULL,
    finished_at    timestamptz
) WITH (
    -- A queue table churns: vacuum it before dead tuples pile up in the claim index.
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);

-- The claim query walks exactly this index: one queue's available jobs in
-- priority, run_at, enqueue order.
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Scheduled jobs due in a queue are promoted to available just before a claim.
CREATE INDEX jobs_scheduled ON {schema}.jobs (queue, run_at) WHERE state = 'scheduled';
-- The reaper finds expired locks here.
CREATE INDEX jobs_running ON {schema}.jobs (locked_until) WHERE state = 'running';
-- Retention and dead-letter listings.
CREATE INDEX jobs_finished ON {schema}.jobs (state, finished_at) WHERE state IN ('completed', 'cancelled', 'dead');
-- Unique keys are enforced among live jobs of a tenant.
CREATE UNIQUE INDEX jobs_unique ON {schema}.jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
-- The head of each ordering key's line is its smallest live id.
CREATE INDEX jobs_ordering ON {schema}.jobs (tenant, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
-- "Is a job of this ordering key running?" without walking the key's backlog.
CREATE INDEX jobs_ordering_running ON {schema}.jobs (tenant, ordering_key)
    WHERE ordering_key IS NOT NULL AND state = 'running';

-- Queue settings; a queue needs no row until it has one.
CREATE TABLE {schema}.queues (
    name       text        NOT NULL PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL
);
