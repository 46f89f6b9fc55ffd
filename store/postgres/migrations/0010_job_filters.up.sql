-- The dashboard's reads at a million jobs (issue 15). A queue's finished
-- jobs in one state, in ID order: the dashboard lists them newest first
-- with a cursor, counts them up to a cap (CountJobs, and Stats, which
-- stops counting a finished state at store.StatsCountCap), and finds the
-- queues that have any by a skip-scan. A job enters the index once, when
-- it finishes, and leaves it when retention deletes it; claims add no
-- entry to it.
--
-- Building it holds off writes to the jobs table for as long as it takes
-- (seconds per million finished jobs). On a large table, build it first
-- without blocking, and this migration then finds it:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_queue_finished ON <schema>.jobs (queue, state, id)
--       WHERE state IN ('completed', 'cancelled', 'dead');
CREATE INDEX IF NOT EXISTS jobs_queue_finished ON {schema}.jobs (queue, state, id)
    WHERE state IN ('completed', 'cancelled', 'dead');
