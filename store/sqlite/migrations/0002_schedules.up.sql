-- Recurring schedules (docs/schedules.md). Times are Unix microseconds (UTC).
-- A schedule is due when it is not paused and next_run_at has come; firing
-- enqueues its runs and moves next_run_at in one transaction.
CREATE TABLE spool_schedules (
    tenant        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    spec          TEXT    NOT NULL,
    zone          TEXT    NOT NULL DEFAULT '',
    queue         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    payload       BLOB,
    priority      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 0,
    overlap       TEXT    NOT NULL,  -- skip, queue_one, allow
    misfire       TEXT    NOT NULL,  -- run_once, skip, catch_up
    catch_up_max  INTEGER NOT NULL DEFAULT 0,
    mode          TEXT    NOT NULL,  -- fixed_rate, fixed_delay
    -- Fixed delay only: when the live run finishes, next_run_at becomes its
    -- finished_at, rounded up to the second, plus this many microseconds.
    release_delay INTEGER NOT NULL DEFAULT 0,
    paused        INTEGER NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL,
    next_run_at   INTEGER,
    last_run_at   INTEGER,
    -- The newest run while it is live; its settlement clears it.
    live_job_id   BLOB,
    fired         INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    dropped       INTEGER NOT NULL DEFAULT 0,
    recent        TEXT,              -- JSON: the newest runs, newest first
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- The scheduler walks this index: due schedules, oldest slot first.
CREATE INDEX spool_schedules_due ON spool_schedules (next_run_at)
    WHERE paused = 0 AND next_run_at IS NOT NULL;
-- A finished run finds its schedule here.
CREATE INDEX spool_schedules_live ON spool_schedules (live_job_id)
    WHERE live_job_id IS NOT NULL;

-- A run's settlement, matched by job id, releases its schedule: whatever
-- finishes the job (a verdict, a cancel, the reaper), the same statement
-- clears live_job_id and, for a fixed-delay schedule, sets the next slot.
-- Run keys start with "sched", so other jobs pass the WHEN test and no more.
CREATE TRIGGER spool_schedules_release AFTER UPDATE OF state ON spool_jobs
    WHEN NEW.unique_key LIKE 'sched%'
     AND NEW.state IN ('completed', 'cancelled', 'dead')
     AND OLD.state IN ('scheduled', 'available', 'running')
BEGIN
    UPDATE spool_schedules
       SET live_job_id = NULL,
           next_run_at = CASE WHEN release_delay > 0
                              THEN (NEW.finished_at + 999999) / 1000000 * 1000000 + release_delay
                              ELSE next_run_at END
     WHERE live_job_id = NEW.id;
END;
