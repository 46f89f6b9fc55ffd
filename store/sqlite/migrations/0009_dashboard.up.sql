-- The dashboard (issue 15).
--
-- Per-minute activity (store.ActivityStore): what workers did to each
-- queue's jobs in each minute, added to by every worker (and spool serve,
-- for remote workers) every few seconds. minute is the start of the
-- minute, in Unix microseconds. pickup_0 .. pickup_15 are the buckets of
-- the pickup-latency histogram (store.PickupBounds; the last bucket counts
-- the rest). Rows older than store.ActivityRetention are deleted now and
-- then by the writers.
CREATE TABLE spool_activity (
    minute    INTEGER NOT NULL,
    queue     TEXT    NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    pickup_0  INTEGER NOT NULL DEFAULT 0,
    pickup_1  INTEGER NOT NULL DEFAULT 0,
    pickup_2  INTEGER NOT NULL DEFAULT 0,
    pickup_3  INTEGER NOT NULL DEFAULT 0,
    pickup_4  INTEGER NOT NULL DEFAULT 0,
    pickup_5  INTEGER NOT NULL DEFAULT 0,
    pickup_6  INTEGER NOT NULL DEFAULT 0,
    pickup_7  INTEGER NOT NULL DEFAULT 0,
    pickup_8  INTEGER NOT NULL DEFAULT 0,
    pickup_9  INTEGER NOT NULL DEFAULT 0,
    pickup_10 INTEGER NOT NULL DEFAULT 0,
    pickup_11 INTEGER NOT NULL DEFAULT 0,
    pickup_12 INTEGER NOT NULL DEFAULT 0,
    pickup_13 INTEGER NOT NULL DEFAULT 0,
    pickup_14 INTEGER NOT NULL DEFAULT 0,
    pickup_15 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
) WITHOUT ROWID;

-- The audit log (store.AuditStore): actions taken through spool serve and
-- its dashboard, newest last. IDs only grow (AUTOINCREMENT never reuses
-- one), so they page the log. at is Unix microseconds.
CREATE TABLE spool_audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    tenant TEXT    NOT NULL DEFAULT '',
    key_id TEXT    NOT NULL DEFAULT '',
    action TEXT    NOT NULL,
    target TEXT    NOT NULL DEFAULT '',
    count  INTEGER NOT NULL DEFAULT 0,
    detail TEXT    NOT NULL DEFAULT ''
);
-- A tenant's entries, newest first.
CREATE INDEX spool_audit_tenant ON spool_audit (tenant, id);
