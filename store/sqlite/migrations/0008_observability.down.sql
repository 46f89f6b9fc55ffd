DROP TABLE spool_workers;
ALTER TABLE spool_jobs DROP COLUMN last_attempt_us;
ALTER TABLE spool_jobs DROP COLUMN attempted_at;
ALTER TABLE spool_jobs DROP COLUMN metadata;
