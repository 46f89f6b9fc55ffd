-- Observability (issue 14, tracing half). Version 0007 is left to the
-- metrics half; the runner applies every version above the schema's, so
-- a gap is harmless.
--
-- Job metadata (store.EnqueueParams.Metadata): a JSON object of strings,
-- NULL for none; the producer's W3C trace context lives here. attempted_at
-- is when the current (or latest) delivery was claimed, last_attempt_us
-- how long the latest settled delivery took, in microseconds. Columns
-- without defaults are catalog changes, not rewrites.
ALTER TABLE {schema}.jobs ADD COLUMN metadata jsonb;
ALTER TABLE {schema}.jobs ADD COLUMN attempted_at timestamptz;
ALTER TABLE {schema}.jobs ADD COLUMN last_attempt_us bigint;

-- Workers online (store.WorkerStore): one row per running worker,
-- replaced by each heartbeat, deleted when the worker stops or its entry
-- expires. IDs compare byte-wise, so listings are in the same order on
-- every database.
CREATE TABLE {schema}.workers (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY,
    host       text        NOT NULL DEFAULT '',
    pid        integer     NOT NULL DEFAULT 0,
    version    text        NOT NULL DEFAULT '',
    queues     jsonb,
    tenant     text        NOT NULL DEFAULT '',
    busy       integer     NOT NULL DEFAULT 0,
    slots      integer     NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX workers_expires ON {schema}.workers (expires_at);
