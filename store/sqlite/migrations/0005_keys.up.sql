-- API keys of spool serve (store.KeyStore). A key is stored by its ID with
-- the SHA-256 of its secret part, never the secret itself. Times are Unix
-- microseconds (UTC); IDs compare byte-wise, so listings are in ID order.
CREATE TABLE spool_api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    hash       BLOB    NOT NULL,
    tenant     TEXT    NOT NULL,           -- '*': every tenant (an operator's key)
    role       TEXT    NOT NULL,           -- reader, producer, worker or admin
    queues     TEXT,                       -- JSON array; NULL: every queue
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,                    -- NULL: never
    revoked_at INTEGER                     -- NULL: not revoked
) WITHOUT ROWID;
