-- Unique keys held past the job (store.EnqueueParams.UniqueFor). A job
-- enqueued with UniqueFor keeps its unique key until unique_until (its
-- created_at plus UniqueFor), even once finished: unique_held puts a
-- finished job in the unique index, which is then the one arbiter of a
-- key, live or held. A later enqueue of the key after unique_until clears
-- unique_held (the job gives the key up) and inserts its own job;
-- unique_until stays, for the job's view. Times are Unix microseconds.
ALTER TABLE spool_jobs ADD COLUMN unique_until INTEGER;
ALTER TABLE spool_jobs ADD COLUMN unique_held INTEGER NOT NULL DEFAULT 0;
DROP INDEX spool_jobs_unique;
CREATE UNIQUE INDEX spool_jobs_unique ON spool_jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND (state IN ('scheduled', 'available', 'running') OR unique_held = 1);
-- Finished jobs by unique key, newest last, for Store.GetByUniqueKey:
-- results read back by the key they were enqueued with.
CREATE INDEX spool_jobs_unique_finished ON spool_jobs (tenant, unique_key, created_at)
    WHERE unique_key IS NOT NULL AND state IN ('completed', 'cancelled', 'dead');
