DROP TABLE spool_audit;
DROP TABLE spool_activity;
