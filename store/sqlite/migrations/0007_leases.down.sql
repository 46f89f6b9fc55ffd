DROP TABLE spool_leases;
