DROP TRIGGER spool_schedules_release;
DROP TABLE spool_schedules;
