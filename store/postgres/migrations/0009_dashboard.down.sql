DROP TABLE {schema}.audit;
DROP TABLE {schema}.activity;
