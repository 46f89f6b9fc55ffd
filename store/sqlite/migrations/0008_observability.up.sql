-- Observability (issue 14, tracing half). Version 0007 is left to the
-- metrics half; the runner applies every version above the file's, so a
-- gap is harmless.
--
-- Job metadata (store.EnqueueParams.Metadata): a JSON object of strings,
-- NULL for none; the producer's W3C trace context lives here. attempted_at
-- is when the current (or latest) delivery was claimed, last_attempt_us
-- how long the latest settled delivery took (Unix microseconds, and
-- microseconds).
ALTER TABLE spool_jobs ADD COLUMN metadata TEXT;
ALTER TABLE spool_jobs ADD COLUMN attempted_at INTEGER;
ALTER TABLE spool_jobs ADD COLUMN last_attempt_us INTEGER;

-- Workers online (store.WorkerStore): one row per running worker,
-- replaced by each heartbeat, deleted when the worker stops or its entry
-- expires. queues is a JSON array of names.
CREATE TABLE spool_workers (
    id         TEXT    NOT NULL PRIMARY KEY,
    host       TEXT    NOT NULL DEFAULT '',
    pid        INTEGER NOT NULL DEFAULT 0,
    version    TEXT    NOT NULL DEFAULT '',
    queues     TEXT,
    tenant     TEXT    NOT NULL DEFAULT '',
    busy       INTEGER NOT NULL DEFAULT 0,
    slots      INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX spool_workers_expires ON spool_workers (expires_at);
