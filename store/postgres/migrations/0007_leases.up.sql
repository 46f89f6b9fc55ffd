-- Named leases (store.LeaseStore): one holder at a time per name, until
-- its end, for chores one node does for all (the metrics' cluster-wide
-- gauges).
CREATE TABLE {schema}.leases (
    name   text        COLLATE "C" NOT NULL PRIMARY KEY,
    holder text        NOT NULL,
    until  timestamptz NOT NULL
);
