-- API keys of spool serve (store.KeyStore). A key is stored by its ID with
-- the SHA-256 of its secret part, never the secret itself. IDs compare
-- byte-wise (COLLATE "C"), so listings are in the same order on every
-- database.
CREATE TABLE {schema}.api_keys (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY,
    hash       bytea       NOT NULL,
    tenant     text        NOT NULL,       -- '*': every tenant (an operator's key)
    role       text        NOT NULL,       -- reader, producer, worker or admin
    queues     jsonb,                      -- array of queue names; NULL: every queue
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz,                -- NULL: never
    revoked_at timestamptz                 -- NULL: not revoked
);
