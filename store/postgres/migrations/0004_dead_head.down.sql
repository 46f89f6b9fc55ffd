ALTER TABLE {schema}.subscriptions DROP COLUMN on_dead_head;
DROP INDEX {schema}.jobs_dead_holds;
ALTER TABLE {schema}.jobs DROP COLUMN hold_when_dead;
