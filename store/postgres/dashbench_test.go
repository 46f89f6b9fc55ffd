package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// BenchmarkDashboard times the dashboard's calls on a schema of a million
// jobs (storetest.BenchDashboard). Seeding takes a minute or so, so it
// runs only when asked:
//
//	SPOOL_BENCH_DASHBOARD=1 go test -run '^$' -bench Dashboard -benchtime 20x ./store/postgres
func BenchmarkDashboard(b *testing.B) {
	n := storetest.DashboardJobCount()
	if n == 0 {
		b.Skip("set " + storetest.DashboardJobsEnv + "=1 to seed a million jobs and time the dashboard's calls")
	}
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.URL(b), postgres.Config{Schema: pgtest.Schema(b), MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	seedDashboard(b, s, n)
	b.Logf("seeded %d jobs in %v", n, time.Since(start).Round(time.Millisecond))
	storetest.BenchDashboard(b, s, n)
}

// seedDashboard inserts n jobs and a day of activity as
// storetest.BenchDashboard describes, with one INSERT … SELECT each from
// generate_series, then vacuums and analyzes the tables as autovacuum
// would (it is off on the benchmark machine).
func seedDashboard(b *testing.B, s *postgres.Store, n int) {
	ctx := context.Background()
	pool, schema := s.Pool(), s.Schema()
	now := time.Now()
	step := (24 * time.Hour).Microseconds() / int64(n)
	if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.jobs (id, queue, kind, payload, priority, run_at, state, tenant, attempts, max_attempts,
		deliveries, max_deliveries, lock_token, locked_until, errors, dead_reason, created_at, finished_at, attempted_at)
	SELECT (lpad(to_hex((extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex(i % 4096), 3, '0')
			|| '8' || lpad(to_hex(i), 15, '0'))::uuid,
		'q' || (i % 4), 'k' || (i % 7), convert_to('{"user_id":' || lpad(i::text, 8, '0') || ',"template":"welcome"}', 'UTF8'), 0,
		CASE state WHEN 'scheduled' THEN $2::timestamptz + interval '1 hour' ELSE created END, state, '',
		CASE state WHEN 'dead' THEN 1 ELSE 0 END, 25,
		CASE WHEN state IN ('completed', 'dead', 'running') THEN 1 ELSE 0 END, 10,
		CASE state WHEN 'running' THEN i * 2 + 1 END, CASE state WHEN 'running' THEN $2::timestamptz + interval '1 hour' END,
		CASE state WHEN 'dead' THEN '[{"at":"2031-03-04T05:06:07Z","attempt":1,"message":"the partner API answered 503"}]'::jsonb END,
		CASE state WHEN 'dead' THEN 'dead_lettered' END,
		created, CASE WHEN state IN ('completed', 'dead', 'cancelled') THEN created + interval '1 second' END,
		CASE WHEN state IN ('completed', 'dead', 'running') THEN created END
	FROM (
		SELECT i, created, CASE WHEN r < 85 THEN 'completed' WHEN r < 90 THEN 'dead' WHEN r < 95 THEN 'available'
			WHEN r < 99 THEN 'scheduled' WHEN (i / 400) % 2 = 0 THEN 'cancelled' ELSE 'running' END AS state
		FROM (
			SELECT i, ((i / 4) * 7919) % 100 AS r, $2::timestamptz - interval '24 hours' + i * $3::bigint * interval '1 microsecond' AS created
			FROM generate_series(0::bigint, $1::bigint - 1) AS i
		) AS g
	) AS j`, n, now, step); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.activity (minute, queue, completed, failed, dead, pickup_0, pickup_4, pickup_15)
	SELECT date_trunc('minute', $1::timestamptz) - k * interval '1 minute', 'q' || q, 600, 10, 1, 500, 100, 1
	FROM generate_series(0, 1439) AS k, generate_series(0, 3) AS q`, now); err != nil {
		b.Fatal(err)
	}
	for _, table := range []string{"jobs", "activity"} {
		if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+schema+`.`+table); err != nil {
			b.Fatal(err)
		}
	}
}
