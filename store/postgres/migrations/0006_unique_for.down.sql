DROP INDEX {schema}.jobs_unique_finished;
DROP INDEX {schema}.jobs_unique;
CREATE UNIQUE INDEX jobs_unique ON {schema}.jobs (tenant, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
ALTER TABLE {schema}.jobs DROP COLUMN unique_held;
ALTER TABLE {schema}.jobs DROP COLUMN unique_until;
