-- The dashboard (issue 15).
--
-- Per-minute activity (store.ActivityStore): what workers did to each
-- queue's jobs in each minute, added to by every worker (and spool serve,
-- for remote workers) every few seconds with an upsert that adds. minute
-- is the start of the minute. pickup_0 .. pickup_15 are the buckets of the
-- pickup-latency histogram (store.PickupBounds; the last bucket counts the
-- rest). Rows older than store.ActivityRetention are deleted now and then
-- by the writers. Queues compare byte-wise, so rows come in the same
-- order on every database.
CREATE TABLE {schema}.activity (
    minute    timestamptz NOT NULL,
    queue     text        COLLATE "C" NOT NULL,
    completed bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    dead      bigint      NOT NULL DEFAULT 0,
    pickup_0  bigint      NOT NULL DEFAULT 0,
    pickup_1  bigint      NOT NULL DEFAULT 0,
    pickup_2  bigint      NOT NULL DEFAULT 0,
    pickup_3  bigint      NOT NULL DEFAULT 0,
    pickup_4  bigint      NOT NULL DEFAULT 0,
    pickup_5  bigint      NOT NULL DEFAULT 0,
    pickup_6  bigint      NOT NULL DEFAULT 0,
    pickup_7  bigint      NOT NULL DEFAULT 0,
    pickup_8  bigint      NOT NULL DEFAULT 0,
    pickup_9  bigint      NOT NULL DEFAULT 0,
    pickup_10 bigint      NOT NULL DEFAULT 0,
    pickup_11 bigint      NOT NULL DEFAULT 0,
    pickup_12 bigint      NOT NULL DEFAULT 0,
    pickup_13 bigint      NOT NULL DEFAULT 0,
    pickup_14 bigint      NOT NULL DEFAULT 0,
    pickup_15 bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
);

-- The audit log (store.AuditStore): actions taken through spool serve and
-- its dashboard. IDs come from an identity column, so they grow; they page
-- the log, newest first.
CREATE TABLE {schema}.audit (
    id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL,
    tenant text        NOT NULL DEFAULT '',
    key_id text        NOT NULL DEFAULT '',
    action text        NOT NULL,
    target text        NOT NULL DEFAULT '',
    count  bigint      NOT NULL DEFAULT 0,
    detail text        NOT NULL DEFAULT ''
);
-- A tenant's entries, newest first.
CREATE INDEX audit_tenant ON {schema}.audit (tenant, id);
