DROP INDEX spool_jobs_queue_finished;
