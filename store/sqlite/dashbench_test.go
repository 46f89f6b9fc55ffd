package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

// BenchmarkDashboard times the dashboard's calls on a file of a million
// jobs (storetest.BenchDashboard). Seeding takes a minute or so, so it
// runs only when asked:
//
//	SPOOL_BENCH_DASHBOARD=1 go test -run '^$' -bench Dashboard -benchtime 20x ./store/sqlite
func BenchmarkDashboard(b *testing.B) {
	n := storetest.DashboardJobCount()
	if n == 0 {
		b.Skip("set " + storetest.DashboardJobsEnv + "=1 to seed a million jobs and time the dashboard's calls")
	}
	path := filepath.Join(b.TempDir(), "dash.db")
	s, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	seedDashboard(b, path, n)
	b.Logf("seeded %d jobs in %v", n, time.Since(start).Round(time.Millisecond))
	storetest.BenchDashboard(b, s, n)
}

// seedDashboard inserts n jobs and a day of activity as
// storetest.BenchDashboard describes, with one INSERT … SELECT each from
// a generated series, through a connection of its own.
func seedDashboard(b *testing.B, path string, n int) {
	db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	base := now.Add(-24 * time.Hour).UnixMicro()
	step := (24 * time.Hour).Microseconds() / int64(n)
	if _, err := db.Exec(`WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < ?1),
	j(i, r, created) AS (SELECT i, ((i / 4) * 7919) % 100, ?2 + i * ?3 FROM g),
	s(i, r, created, state) AS (SELECT i, r, created, CASE WHEN r < 85 THEN 'completed' WHEN r < 90 THEN 'dead'
		WHEN r < 95 THEN 'available' WHEN r < 99 THEN 'scheduled' WHEN (i / 400) % 2 = 0 THEN 'cancelled' ELSE 'running' END FROM j)
	INSERT INTO spool_jobs (id, queue, kind, payload, priority, run_at, state, tenant, attempts, max_attempts, deliveries, max_deliveries,
		lock_token, locked_until, errors, dead_reason, created_at, finished_at, attempted_at)
	SELECT unhex(printf('%012x', created / 1000) || '7' || printf('%03x', i % 4096) || '8' || printf('%015x', i)),
		'q' || (i % 4), 'k' || (i % 7), CAST('{"user_id":' || printf('%08d', i) || ',"template":"welcome"}' AS BLOB), 0,
		CASE state WHEN 'scheduled' THEN ?4 + 3600000000 ELSE created END, state, '',
		CASE state WHEN 'dead' THEN 1 ELSE 0 END, 25,
		CASE WHEN state IN ('completed', 'dead', 'running') THEN 1 ELSE 0 END, 10,
		CASE state WHEN 'running' THEN random() | 1 END, CASE state WHEN 'running' THEN ?4 + 3600000000 END,
		CASE state WHEN 'dead' THEN '[{"at":"2031-03-04T05:06:07Z","attempt":1,"message":"the partner API answered 503"}]' END,
		CASE state WHEN 'dead' THEN 'dead_lettered' END,
		created, CASE WHEN state IN ('completed', 'dead', 'cancelled') THEN created + 1000000 END,
		CASE WHEN state IN ('completed', 'dead', 'running') THEN created END
	FROM s`, n, base, step, now.UnixMicro()); err != nil {
		b.Fatal(err)
	}
	minute := now.Truncate(time.Minute).UnixMicro()
	if _, err := db.Exec(`WITH RECURSIVE m(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM m WHERE k + 1 < 1440),
	q(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM q WHERE n + 1 < 4)
	INSERT INTO spool_activity (minute, queue, completed, failed, dead, pickup_0, pickup_4, pickup_15)
	SELECT ?1 - k * 60000000, 'q' || n, 600, 10, 1, 500, 100, 1 FROM m, q`, minute); err != nil {
		b.Fatal(err)
	}
}
