DROP TRIGGER schedules_release ON {schema}.jobs;
DROP FUNCTION {schema}.schedules_release();
DROP TABLE {schema}.schedules;
