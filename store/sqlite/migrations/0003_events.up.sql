-- Events (docs/events.md). Times are Unix microseconds (UTC).
-- A topic's head is the last position given out. The writer publishes one
-- transaction at a time, so positions are in commit order.
CREATE TABLE spool_topics (
    name         TEXT    NOT NULL PRIMARY KEY,
    head         INTEGER NOT NULL DEFAULT 0,
    retention    INTEGER NOT NULL DEFAULT -1,  -- microseconds; -1: forever
    published_at INTEGER,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- The log: one row per event, kept until retention deletes it.
CREATE TABLE spool_events (
    topic        TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    key          TEXT,
    version      INTEGER,               -- place in the key's stream
    tenant       TEXT    NOT NULL DEFAULT '',
    headers      TEXT,                  -- JSON object
    payload      BLOB,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (topic, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX spool_events_id ON spool_events (topic, id);
-- A stream is one key's events; its versions are unique.
CREATE UNIQUE INDEX spool_events_stream ON spool_events (topic, key, version) WHERE key IS NOT NULL;

-- Durable subscriptions. Cursor is the last position routed: every event
-- up to it has a delivery in the queue "sub/TOPIC/NAME" (or was filtered out).
CREATE TABLE spool_subscriptions (
    topic          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    kinds          TEXT,                -- JSON array; NULL: every kind
    ordered        INTEGER NOT NULL DEFAULT 0,
    lock_for       INTEGER NOT NULL,    -- microseconds
    max_attempts   INTEGER NOT NULL,
    max_deliveries INTEGER NOT NULL,
    retry_base     INTEGER NOT NULL,
    retry_max      INTEGER NOT NULL,
    cursor         INTEGER NOT NULL,
    last_id        BLOB,                -- the newest delivery's job id
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (topic, name)
) WITHOUT ROWID;

-- The inbox: which messages a consumer has handled (MarkSeen).
CREATE TABLE spool_inbox (
    consumer TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (consumer, id)
) WITHOUT ROWID;
CREATE INDEX spool_inbox_seen ON spool_inbox (seen_at);
