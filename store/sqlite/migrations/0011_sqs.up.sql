-- The SQS facade of spool serve (server/sqs, issue 16). Versions 0009 and
-- 0010 are left to another change; the runner applies every version
-- above the file's, so the gap is harmless.
--
-- Queues made through the facade (store.SQSStore): one row per queue, by
-- its stored name (the tenant's prefix and the SQS name). attributes and
-- tags are JSON objects of strings: the SQS attributes that were set,
-- defaults left to the facade. deleted_at marks a queue being deleted: its
-- row stays until its jobs are gone. Times are Unix microseconds.
CREATE TABLE spool_sqs_queues (
    queue      TEXT    NOT NULL PRIMARY KEY,
    attributes TEXT    NOT NULL DEFAULT '{}',
    tags       TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) WITHOUT ROWID;

-- A queue's dead jobs, oldest first: moving an SQS queue's dead letters to
-- its dead-letter queue reads them here. Only dead rows are in it.
CREATE INDEX spool_jobs_dead_queue ON spool_jobs (queue, id) WHERE state = 'dead';

-- The secret access key AWS SDKs sign SQS requests with (SigV4), for keys
-- made with spool keys create --sqs; NULL for the others. It is derived
-- from the key's secret one way, so reading it does not give the /v1 API.
ALTER TABLE spool_api_keys ADD COLUMN sqs_secret TEXT;
