DROP INDEX {schema}.jobs_queue_finished;
