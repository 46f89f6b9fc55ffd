DROP TABLE spool_inbox;
DROP TABLE spool_subscriptions;
DROP TABLE spool_events;
DROP TABLE spool_topics;
