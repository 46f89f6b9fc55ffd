DROP TABLE spool_queues;
DROP TABLE spool_jobs;
