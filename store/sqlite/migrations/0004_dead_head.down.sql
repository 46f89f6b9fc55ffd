ALTER TABLE spool_subscriptions DROP COLUMN on_dead_head;
DROP INDEX spool_jobs_dead_holds;
ALTER TABLE spool_jobs DROP COLUMN hold_when_dead;
