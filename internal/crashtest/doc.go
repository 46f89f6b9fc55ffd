// Package crashtest holds Spool's durability tests: they check the contract
// in docs/ARCHITECTURE.md (at least once, one holder at a time, expired
// locks return) against a real Worker on a real SQLite file when things go
// wrong.
//
//   - TestWorkerSurvivesSIGKILL runs the worker in a child process (the
//     program in ./child) and kills it with SIGKILL at random moments, many
//     times, over thousands of jobs: every job ends completed, none is lost,
//     and a job runs more than once only when a kill caught it in flight.
//   - TestStopMidRunLosesNothingAndLeaksNothing stops a busy worker with a
//     short deadline: every job is completed or released untouched, no
//     goroutine outlives Stop, and a fresh worker finishes the rest.
//   - TestWorkerRidesOutStoreOutage fails the store's calls for a while: the
//     worker keeps its verdicts, resumes by itself, and every job completes
//     exactly once.
//   - TestLockRenewalUnderLoad runs many jobs several times longer than
//     their lock while the reaper runs often: renewal keeps each job with
//     its first delivery.
//   - TestPrefetchedJobsKeepTheirLocks does the same with prefetch: a job
//     waiting in the prefetch buffer keeps its lock too.
//   - TestEventsSurviveSIGKILL runs publishers and workers of events (the
//     program in ./evchild, the workload in internal/eventcrash) at once and
//     kills them at random moments: every committed event reaches every
//     subscription, no rolled-back event is delivered, an ordered
//     subscription keeps each key's order, and the inbox makes each effect
//     happen once.
//   - TestSchedulesSurviveSIGKILL (and its PostgreSQL twin) runs two
//     processes firing the same schedules and kills them mid-fire: every
//     slot has exactly one run.
//
// The package has no API; it exists for its tests. Run them with
//
//	go test -race -count=1 ./internal/crashtest/
//
// and set SPOOL_CRASH_SEED to replay a crash test's kill schedule (the seed
// is logged by every run).
package crashtest
