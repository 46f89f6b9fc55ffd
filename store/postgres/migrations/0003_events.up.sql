-- Events (store.EventStore). Times are timestamptz (microseconds); durations
-- are bigint microseconds. Topic and subscription names compare byte-wise
-- (COLLATE "C"), so listings are in the same order on every database.
--
-- A topic's head is the last position given out. A publisher takes the
-- topic's row lock (an upsert of its row) before it reads the head and
-- holds it until its transaction ends, so positions are handed out in
-- commit order and a rolled-back publish gives its positions back: a
-- reader that sees position p sees every committed event below p. There is
-- deliberately no sequence: a sequence hands out numbers that commit out of
-- order and leaves holes when a transaction rolls back.
CREATE TABLE {schema}.topics (
    name         text        COLLATE "C" NOT NULL PRIMARY KEY,
    head         bigint      NOT NULL DEFAULT 0,
    retention    bigint      NOT NULL DEFAULT -1,  -- microseconds; -1: forever
    published_at timestamptz,
    created_at   timestamptz NOT NULL
);

-- The log: one row per event, kept until retention deletes it.
CREATE TABLE {schema}.events (
    topic        text        COLLATE "C" NOT NULL,
    position     bigint      NOT NULL,
    id           text        COLLATE "C" NOT NULL,
    kind         text        NOT NULL,
    key          text        COLLATE "C",
    version      bigint,               -- place in the key's stream
    tenant       text        NOT NULL DEFAULT '',
    headers      jsonb,                -- object of strings
    payload      bytea,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (topic, position)
);
CREATE UNIQUE INDEX events_id ON {schema}.events (topic, id);
-- A stream is one key's events; its versions are unique.
CREATE UNIQUE INDEX events_stream ON {schema}.events (topic, key, version) WHERE key IS NOT NULL;

-- Durable subscriptions. Cursor is the last position routed: every event
-- up to it has a delivery in the queue 'sub/TOPIC/NAME' (or was filtered
-- out). A router locks its subscription's row (FOR UPDATE SKIP LOCKED), so
-- one router at a time moves a cursor.
CREATE TABLE {schema}.subscriptions (
    topic          text        COLLATE "C" NOT NULL,
    name           text        COLLATE "C" NOT NULL,
    kinds          jsonb,                -- array of kinds; NULL: every kind
    ordered        boolean     NOT NULL DEFAULT false,
    lock_for       bigint      NOT NULL,  -- microseconds
    max_attempts   integer     NOT NULL,
    max_deliveries integer     NOT NULL,
    retry_base     bigint      NOT NULL,  -- microseconds
    retry_max      bigint      NOT NULL,  -- microseconds
    cursor         bigint      NOT NULL,
    last_id        uuid,                  -- the newest delivery's job id
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (topic, name)
);

-- The inbox: which messages a consumer has handled (MarkSeen).
CREATE TABLE {schema}.inbox (
    consumer text        NOT NULL,
    id       text        NOT NULL,
    seen_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, id)
);
CREATE INDEX inbox_seen ON {schema}.inbox (seen_at);
