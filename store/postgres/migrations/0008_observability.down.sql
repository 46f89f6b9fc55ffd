DROP TABLE {schema}.workers;
ALTER TABLE {schema}.jobs DROP COLUMN last_attempt_us;
ALTER TABLE {schema}.jobs DROP COLUMN attempted_at;
ALTER TABLE {schema}.jobs DROP COLUMN metadata;
