// Package pgcrash holds Spool's multi-process tests on PostgreSQL (the
// contract in docs/ARCHITECTURE.md, with many nodes): four worker processes and two producer processes (the program
// in ./child) share one database while the test kills, pauses or restarts
// what they depend on.
//
//   - TestKillAndPauseWorkers SIGKILLs one worker and SIGSTOPs another for
//     longer than the lock duration, mid-run: every job ends completed and
//     was enqueued once, a job runs more than once only when it was in
//     flight at the kill or the pause, every settle the paused worker sends
//     for a job that moved on is refused with ErrLockLost, and no lock
//     expires under a live worker.
//   - TestPostgresRestart restarts the server mid-run (immediate mode: a
//     crash and recovery) on a throwaway cluster of its own: nothing is lost,
//     and workers and producers recover by themselves, saying so in their
//     logs.
//   - TestEventsSurviveSIGKILLPostgres runs two publishers and three
//     subscribers of events (the publisher and subscriber roles of ./child,
//     the workload of internal/eventcrash) and SIGKILLs a random one every
//     fraction of a second for a while: every committed event reaches every
//     subscription, no rolled-back event is delivered, an ordered
//     subscription keeps each key's order across processes, and the inbox
//     makes each effect happen once.
//
// The job tests work SPOOL_PGCRASH_JOBS jobs (default 20,000, so that the
// repository's test run stays short; the full run is 200,000):
//
//	SPOOL_PGCRASH_JOBS=200000 go test -count=1 -v -timeout 30m ./internal/pgcrash/
//
// TestKillAndPauseWorkers runs on the package's database (internal/pgtest).
// TestPostgresRestart never restarts a server it did not start: it makes a
// throwaway cluster with initdb and pg_ctl (found as internal/pgtest finds
// them), skipping when there are none, except under CI, where it fails.
// The package has no API; it exists for its tests.
package pgcrash
