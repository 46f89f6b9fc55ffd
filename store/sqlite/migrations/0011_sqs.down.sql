ALTER TABLE spool_api_keys DROP COLUMN sqs_secret;
DROP INDEX spool_jobs_dead_queue;
DROP TABLE spool_sqs_queues;
