DROP TABLE {schema}.api_keys;
