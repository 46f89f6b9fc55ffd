DROP TABLE {schema}.inbox;
DROP TABLE {schema}.subscriptions;
DROP TABLE {schema}.events;
DROP TABLE {schema}.topics;
