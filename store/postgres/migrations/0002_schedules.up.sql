-- Recurring schedules (package schedule). Times are timestamptz
-- (microseconds); release_delay is in microseconds. A schedule is due when
-- it is not paused and next_run_at has come; firing enqueues its runs and
-- moves next_run_at in one transaction. Tenants and IDs compare byte-wise
-- (COLLATE "C"), so listings are in the same ID order on every database.
CREATE TABLE {schema}.schedules (
    tenant        text        COLLATE "C" NOT NULL,
    id            text        COLLATE "C" NOT NULL,
    spec          text        NOT NULL,
    zone          text        NOT NULL DEFAULT '',
    queue         text        NOT NULL,
    kind          text        NOT NULL,
    payload       bytea,
    priority      smallint    NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 0,
    overlap       text        NOT NULL CHECK (overlap IN ('skip', 'queue_one', 'allow')),
    misfire       text        NOT NULL CHECK (misfire IN ('run_once', 'skip', 'catch_up')),
    catch_up_max  integer     NOT NULL DEFAULT 0,
    mode          text        NOT NULL CHECK (mode IN ('fixed_rate', 'fixed_delay')),
    -- Fixed delay only: when the live run finishes, next_run_at becomes its
    -- finished_at, rounded up to the second, plus this many microseconds.
    release_delay bigint      NOT NULL DEFAULT 0,
    paused        boolean     NOT NULL DEFAULT false,
    version       bigint      NOT NULL,
    next_run_at   timestamptz,
    last_run_at   timestamptz,
    -- The newest run while it is live; its settlement clears it.
    live_job_id   uuid,
    fired         bigint      NOT NULL DEFAULT 0,
    skipped       bigint      NOT NULL DEFAULT 0,
    dropped       bigint      NOT NULL DEFAULT 0,
    recent        jsonb,      -- the newest runs, newest first
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- The scheduler walks this index: due schedules, oldest slot first.
CREATE INDEX schedules_due ON {schema}.schedules (next_run_at)
    WHERE NOT paused AND next_run_at IS NOT NULL;
-- A finished run finds its schedule here.
CREATE INDEX schedules_live ON {schema}.schedules (live_job_id)
    WHERE live_job_id IS NOT NULL;

-- A run's settlement, matched by job id, releases its schedule: whatever
-- finishes the job (a verdict, a cancel, the reaper), the same statement
-- clears live_job_id and, for a fixed-delay schedule, sets the next slot to
-- finished_at rounded up to the whole second (in UTC) plus release_delay.
CREATE FUNCTION {schema}.schedules_release() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    done timestamp := date_trunc('second', NEW.finished_at AT TIME ZONE 'UTC');
BEGIN
    IF done < NEW.finished_at AT TIME ZONE 'UTC' THEN
        done := done + interval '1 second';
    END IF;
    UPDATE {schema}.schedules
       SET live_job_id = NULL,
           next_run_at = CASE WHEN release_delay > 0
                              THEN (done AT TIME ZONE 'UTC') + release_delay * interval '1 microsecond'
                              ELSE next_run_at END
     WHERE live_job_id = NEW.id;
    RETURN NULL;
END
$$;

-- Run keys start with "sched", so other jobs pass the WHEN test and no more.
CREATE TRIGGER schedules_release AFTER UPDATE OF state ON {schema}.jobs
    FOR EACH ROW
    WHEN (NEW.unique_key LIKE 'sched%'
      AND NEW.state IN ('completed', 'cancelled', 'dead')
      AND OLD.state IN ('scheduled', 'available', 'running'))
    EXECUTE FUNCTION {schema}.schedules_release();
