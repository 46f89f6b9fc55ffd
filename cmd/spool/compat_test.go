package main

import (
	"net/url"

	"github.com/spoolrun/spool/store/postgres"
)

// The tests of this package were written when the PostgreSQL URL
// parameters were parsed in package main. They now live in store/postgres
// (whose own tests check the parsing); these names let the tests read as
// they did.
const (
	pgParamSchema      = postgres.ParamSchema
	pgParamPollOnly    = postgres.ParamPollOnly
	pgParamSkipMigrate = postgres.ParamSkipMigrate
)

// withQuery returns the URL raw with query parameter key set to value.
func withQuery(raw, key, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err) // the tests' own URLs
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
