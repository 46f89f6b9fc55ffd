ALTER TABLE {schema}.api_keys DROP COLUMN sqs_secret;
DROP INDEX {schema}.jobs_dead_queue;
DROP TABLE {schema}.sqs_queues;
