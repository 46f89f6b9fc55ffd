-- Named leases (store.LeaseStore): one holder at a time per name, until
-- its end, for chores one node does for all (the metrics' cluster-wide
-- gauges). Times are Unix microseconds.
CREATE TABLE spool_leases (
    name   TEXT    NOT NULL PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) WITHOUT ROWID;
