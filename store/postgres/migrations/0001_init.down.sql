DROP TABLE {schema}.queues;
DROP TABLE {schema}.jobs;
