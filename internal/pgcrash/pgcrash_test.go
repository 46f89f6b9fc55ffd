package pgcrash

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
)

// serverSettle is how long the test lets the server finish statements a
// process sent just before it was killed or stopped, before looking at
// what that process holds. The server is another process: nothing signals
// that it is done with them.
const serverSettle = 200 * time.Millisecond

// TestKillAndPauseWorkers is contract clauses 2–4 (docs/ARCHITECTURE.md) with many processes on one
// PostgreSQL database. Four workers and two producers run; when a quarter
// of the jobs are completed, worker w1 is SIGKILLed; at half, worker w2 is
// SIGSTOPped for longer than the lock duration and then continued, so that
// its jobs are reaped and run elsewhere while it still believes it holds
// them. Then:
//   - every job the producers acknowledged is in the table once, completed;
//   - every job has exactly one execution of its last delivery, and its
//     deliveries are one more than the "lock expired" entries of its
//     history (each redelivery came from a reaped lock);
//   - every other execution or start belongs to w1 or w2 and to a delivery
//     that process held at the kill or the pause: no lock expired under a
//     live worker, and duplicates are only jobs in flight at the kill or
//     the pause;
//   - each surviving worker's settles refused with ErrLockLost are exactly
//     its executions of deliveries that had moved on, less those the
//     worker itself dropped when a renewal told it the lock was lost: every
//     stale settle was refused.
func TestKillAndPauseWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: skipped in -short mode")
	}
	r := newRun(t, pgtest.URL(t), pgtest.Schema(t))
	n := r.jobs
	r.startAll()

	r.waitFor("a quarter of the jobs completed", func(_, completed int) bool { return completed >= n/4 })
	killed := r.procs["w1"]
	r.kill(killed)
	killedAt := time.Since(r.started)
	time.Sleep(serverSettle)
	atKill := r.heldBy("w1")

	r.waitFor("half of the jobs completed", func(_, completed int) bool { return completed >= n/2 })
	paused := r.procs["w2"]
	r.signal(paused, syscall.SIGSTOP)
	pausedAt := time.Since(r.started)
	time.Sleep(serverSettle)
	atPause := r.heldBy("w2")
	// The scenario itself: stay stopped until every lock w2 holds expired
	// and was reaped.
	time.Sleep(lockFor + 5*reapEvery + time.Second)
	r.signal(paused, syscall.SIGCONT)

	r.waitProducers()
	r.waitFor("every job completed", func(total, completed int) bool { return total == n && completed == n })
	elapsed := time.Since(r.started)
	stats := map[string]workerStats{}
	for _, name := range []string{"w2", "w3", "w4"} {
		stats[name] = r.stopWorker(r.procs[name])
	}

	jobs := r.finalJobs()
	r.checkEnqueuedOnce(jobs)

	var recs []record
	for i := 1; i <= numWorkers; i++ {
		recs = append(recs, r.readLog(r.procs["w"+strconv.Itoa(i)])...)
	}
	inFlight := func(rec record) bool {
		switch rec.proc {
		case "w1":
			return atKill[rec.id] == rec.delivery
		case "w2":
			return atPause[rec.id] == rec.delivery
		}
		return false
	}
	type execs struct{ last, total int }
	perJob := map[store.ID]*execs{}
	stale := map[string]int{} // executions of a delivery that had moved on, per worker
	bad := 0
	problem := func(format string, args ...any) {
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, rec := range recs {
		j, ok := jobs[rec.id]
		if !ok {
			problem("%s ran job %s, which is not in the table", rec.proc, rec.id)
			continue
		}
		switch {
		case rec.delivery > j.deliveries:
			problem("%s ran job %s on delivery %d, but the job has only %d deliveries", rec.proc, rec.id, rec.delivery, j.deliveries)
		case rec.delivery < j.deliveries && !inFlight(rec):
			problem("%s ran job %s on delivery %d of %d, which it did not hold at the kill or the pause: a lock expired under a live worker",
				rec.proc, rec.id, rec.delivery, j.deliveries)
		}
		if rec.kind != 'E' {
			continue
		}
		e := perJob[rec.id]
		if e == nil {
			e = &execs{}
			perJob[rec.id] = e
		}
		e.total++
		if rec.delivery == j.deliveries {
			e.last++
		} else {
			stale[rec.proc]++
		}
	}
	duplicated, extra, redelivered := 0, 0, 0
	for id, j := range jobs {
		e := perJob[id]
		switch {
		case e == nil || e.last != 1:
			last := 0
			if e != nil {
				last = e.last
			}
			problem("job %s: %d executions of its last delivery (%d), want 1", id, last, j.deliveries)
		case j.deliveries-1 != j.expiries:
			problem("job %s: %d deliveries but %d lock expiries in its history", id, j.deliveries, j.expiries)
		}
		if e != nil && e.total > 1 {
			duplicated++
			extra += e.total - 1
		}
		if j.deliveries > 1 {
			redelivered++
		}
	}
	if bad > 20 {
		t.Errorf("... and %d more problems", bad-20)
	}

	refused, dropped := int64(0), 0
	for name, s := range stats {
		p := r.procs[name]
		d := countIn(p.stderrPath, "lock lost while running")
		// A job claimed ahead and never started is released at shutdown;
		// if its lock expired meanwhile (the pause), the release is
		// refused too, without an execution to account for it.
		released := int64(countIn(p.stderrPath, "outcome=release"))
		if s.LockLost > int64(stale[name])+released || int64(stale[name]) > s.LockLost+int64(d) {
			t.Errorf("%s: %d settles refused with ErrLockLost (%d of them releases of unstarted jobs) and %d verdicts dropped on a lost renewal, for %d executions of deliveries that had moved on",
				name, s.LockLost, released, d, stale[name])
		}
		if s.Abandoned != 0 {
			t.Errorf("%s abandoned %d verdicts", name, s.Abandoned)
		}
		refused += s.LockLost
		dropped += d
	}
	waited := countIn(paused.stderrPath, "lock lost while the job waited")
	if len(atPause) == 0 {
		t.Errorf("w2 held no job when it was paused: the pause tested nothing")
	} else if stats["w2"].LockLost+int64(countIn(paused.stderrPath, "lock lost while running"))+int64(waited) == 0 {
		t.Errorf("w2 held %d jobs at the pause but reported no lost lock after it", len(atPause))
	}

	t.Logf("%d jobs by %d producers and %d workers in %v (%.0f jobs/s); w1 SIGKILLed at %v holding %d jobs; w2 SIGSTOPped at %v for %v holding %d jobs",
		n, numProducers, numWorkers, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
		killedAt.Round(time.Millisecond), len(atKill), pausedAt.Round(time.Millisecond), lockFor+5*reapEvery+time.Second, len(atPause))
	t.Logf("redelivered jobs: %d; jobs executed more than once: %d (%d extra executions); stale settles refused with ErrLockLost: %d; verdicts dropped on a lost renewal: %d; prefetched jobs dropped unrun: %d",
		redelivered, duplicated, extra, refused, dropped, waited)
	for _, name := range []string{"w2", "w3", "w4"} {
		s := stats[name]
		t.Logf("%s: settled %d, refused %d (lock lost %d), stale executions %d, flush errors %d", name, s.Settled, s.Refused, s.LockLost, stale[name], s.FlushErrors)
	}
	if t.Failed() {
		t.Log(r.stderrTails())
	}
}

// The log lines that show a process noticed the restart and carried on.
var (
	workerRetryLines = []string{
		"claim failed; retrying",
		"settle call failed; retrying",
		"renewing locks failed; will retry",
		"reaping expired locks failed",
	}
	listenerLine = "listener lost its connection; reconnecting"
	producerLine = "producer: enqueue failed; retrying"
)

// TestPostgresRestart restarts PostgreSQL in immediate mode (what a crash
// does: connections cut, uncommitted and unflushed work lost, recovery on
// start) while four workers and two producers run, with no help from the
// test: nothing is lost or enqueued twice, every job completes, a job's
// deliveries match the lock expiries in its history, and each process's
// log says what failed and that it retried.
//
// It restarts only a server it started itself: a throwaway cluster
// (internal/pgtest), never the machine's or a user's, and never the
// server that other test packages of the same `go test ./...` use at the
// same time.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: skipped in -short mode")
	}
	bin, err := pgtest.Binaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and this test cannot start a PostgreSQL cluster of its own to restart: %v", err)
		}
		t.Skipf("no PostgreSQL cluster of this test's own to restart: %v", err)
	}
	cluster, err := pgtest.StartCluster(t.Context(), bin)
	if err != nil {
		t.Fatalf("start a throwaway cluster: %v", err)
	}
	t.Cleanup(cluster.Stop)

	r := newRun(t, cluster.URL, "pgcrash")
	n := r.jobs
	r.startAll()
	r.waitFor("40% of the jobs enqueued", func(total, _ int) bool { return total >= n*2/5 })
	_, completedBefore, _ := r.counts()
	restartAt := time.Since(r.started)
	began := time.Now()
	if err := cluster.Restart(t.Context(), "immediate"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	down := time.Since(began)

	r.waitProducers()
	r.waitFor("every job completed", func(total, completed int) bool { return total == n && completed == n })
	elapsed := time.Since(r.started)
	stats := map[string]workerStats{}
	for i := 1; i <= numWorkers; i++ {
		name := "w" + strconv.Itoa(i)
		stats[name] = r.stopWorker(r.procs[name])
	}

	jobs := r.finalJobs()
	r.checkEnqueuedOnce(jobs)
	execs := map[store.ID]int{}
	for i := 1; i <= numWorkers; i++ {
		for _, rec := range r.readLog(r.procs["w"+strconv.Itoa(i)]) {
			if rec.kind == 'E' {
				execs[rec.id]++
			}
		}
	}
	duplicated, extra, redelivered, bad := 0, 0, 0, 0
	for id, j := range jobs {
		if execs[id] == 0 || j.deliveries-1 != j.expiries {
			if bad++; bad <= 20 {
				t.Errorf("job %s: %d executions, %d deliveries, %d lock expiries in its history", id, execs[id], j.deliveries, j.expiries)
			}
		}
		if execs[id] > 1 {
			duplicated++
			extra += execs[id] - 1
		}
		if j.deliveries > 1 {
			redelivered++
		}
	}

	var refused int64
	for i := 1; i <= numWorkers; i++ {
		name := "w" + strconv.Itoa(i)
		p := r.procs[name]
		retries := 0
		for _, l := range workerRetryLines {
			retries += countIn(p.stderrPath, l)
		}
		if retries == 0 {
			t.Errorf("%s logged no failed call and retry across the restart", name)
		}
		if countIn(p.stderrPath, listenerLine) == 0 {
			t.Errorf("%s's listener did not log losing its connection", name)
		}
		if s := stats[name]; s.Abandoned != 0 {
			t.Errorf("%s abandoned %d verdicts", name, s.Abandoned)
		}
		refused += stats[name].LockLost
		t.Logf("%s: %d retry lines, %d listener reconnects; settled %d, refused %d (lock lost %d), failed settle calls %d",
			name, retries, countIn(p.stderrPath, listenerLine), stats[name].Settled, stats[name].Refused, stats[name].LockLost, stats[name].FlushErrors)
	}
	producerRetries := 0
	for i := 1; i <= numProducers; i++ {
		p := r.procs["p"+strconv.Itoa(i)]
		failed := countIn(p.stderrPath, producerLine)
		producerRetries += failed
		t.Logf("%s: %d failed enqueues retried, %d recovered, %d found committed by an earlier attempt",
			p.name, failed, countIn(p.stderrPath, "producer: enqueue recovered"), countIn(p.stderrPath, "producer: an earlier attempt had committed"))
	}
	if producerRetries == 0 {
		t.Errorf("no producer logged a failed enqueue across the restart: was it still producing? (restart at %v)", restartAt)
	}
	t.Logf("what w1 logged about the restart (first lines):\n%s", head(r.procs["w1"].stderrPath, "level=WARN", "level=ERROR", 10))
	t.Logf("what p1 logged about the restart:\n%s", head(r.procs["p1"].stderrPath, "producer:", "", 10))
	t.Logf("%d jobs in %v (%.0f jobs/s); PostgreSQL restarted (immediate) at %v with %d completed, down and back in %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), restartAt.Round(time.Millisecond), completedBefore, down.Round(time.Millisecond))
	t.Logf("redelivered jobs: %d; jobs executed more than once: %d (%d extra executions); settles refused with ErrLockLost: %d",
		redelivered, duplicated, extra, refused)
	if t.Failed() {
		t.Log(r.stderrTails())
	}
}
