package main

import (
	"net/url"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store/postgres"
)

// The tests of this package were written when the JSON views and the
// PostgreSQL URL parameters lived in package main. They now live in
// internal/wire and store/postgres (whose own tests pin the JSON field names
// and the URL parsing); these names let the tests read as they did.
type (
	jobJSON      = wire.Job
	queueJSON    = wire.QueueStats
	scheduleJSON = wire.Schedule
	runJSON      = wire.ScheduleRun
)

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
