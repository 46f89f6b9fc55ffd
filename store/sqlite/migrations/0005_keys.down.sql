DROP TABLE spool_api_keys;
