DROP INDEX spool_jobs_unique_finished;
DROP INDEX spool_jobs_unique;
CREATE UNIQUE INDEX spool_jobs_unique ON spool_jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
ALTER TABLE spool_jobs DROP COLUMN unique_held;
ALTER TABLE spool_jobs DROP COLUMN unique_until;
