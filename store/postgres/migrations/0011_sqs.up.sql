-- The SQS facade of spool serve (server/sqs, issue 16). Versions 0009 and
-- 0010 are left to another change; the runner applies every version
-- above the schema's, so the gap is harmless.
--
-- Queues made through the facade (store.SQSStore): one row per queue, by
-- its stored name (the tenant's prefix and the SQS name), compared
-- byte-wise so listings are in the same order on every database.
-- attributes and tags are JSON objects of strings: the SQS attributes that
-- were set, defaults left to the facade. deleted_at marks a queue being
-- deleted: its row stays until its jobs are gone.
CREATE TABLE {schema}.sqs_queues (
    queue      text        COLLATE "C" NOT NULL PRIMARY KEY,
    attributes jsonb       NOT NULL DEFAULT '{}',
    tags       jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz
);

-- A queue's dead jobs, oldest first: moving an SQS queue's dead letters to
-- its dead-letter queue reads them here. Only dead rows are in it.
CREATE INDEX jobs_dead_queue ON {schema}.jobs (queue, id) WHERE state = 'dead';

-- The secret access key AWS SDKs sign SQS requests with (SigV4), for keys
-- made with spool keys create --sqs; NULL for the others. It is derived
-- from the key's secret one way, so reading it does not give the /v1 API.
ALTER TABLE {schema}.api_keys ADD COLUMN sqs_secret text;
