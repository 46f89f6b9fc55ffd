-- Unique keys held past the job (store.EnqueueParams.UniqueFor). A job
-- enqueued with UniqueFor keeps its unique key until unique_until (its
-- created_at plus UniqueFor), even once finished: unique_held keeps a
-- finished job in the unique index, which stays the one arbiter of a key,
-- live or held, so concurrent enqueues and a job finishing meanwhile never
-- let two jobs through. A later enqueue of the key after unique_until
-- clears unique_held (the job gives the key up) and inserts its own job;
-- unique_until stays, for the job's view. Constant defaults make the new
-- columns catalog changes, not rewrites.
ALTER TABLE {schema}.jobs ADD COLUMN unique_until timestamptz;
ALTER TABLE {schema}.jobs ADD COLUMN unique_held boolean NOT NULL DEFAULT false;
DROP INDEX {schema}.jobs_unique;
CREATE UNIQUE INDEX jobs_unique ON {schema}.jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND (state IN ('scheduled', 'available', 'running') OR unique_held);
-- Finished jobs by unique key, newest last, for Store.GetByUniqueKey:
-- results read back by the key they were enqueued with. A job enters it
-- when it finishes, so live jobs' updates never touch it.
CREATE INDEX jobs_unique_finished ON {schema}.jobs (tenant, unique_key, created_at, id)
    WHERE unique_key IS NOT NULL AND state IN ('completed', 'cancelled', 'dead');
