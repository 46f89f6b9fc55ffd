package crashtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/eventcrash"
	"github.com/spoolrun/spool/store"
)

// The crash test's workload and the child worker's settings.
const (
	crashJobs        = 5000
	crashConcurrency = 16
	crashPrefetch    = 4
	// crashLock is short so that the jobs a killed child held come back
	// soon; crashReap returns them promptly once their lock expired.
	crashLock = time.Second
	crashReap = 100 * time.Millisecond
	// crashMaxWork is the longest a handler works before it records its
	// execution; each takes a random time up to it.
	crashMaxWork = 30 * time.Millisecond
	// A child is killed a random time in [crashMinLife, crashMaxLife) after
	// it reported ready. The test kills at least crashMinKills and at most
	// crashMaxKills children, then lets a last one finish the work.
	crashMinLife  = 20 * time.Millisecond
	crashMaxLife  = 300 * time.Millisecond
	crashMinKills = 20
	crashMaxKills = 50
)

// TestWorkerSurvivesSIGKILL is the contract's at-least-once promise under
// crashes. It enqueues thousands of jobs in a SQLite file, then runs the
// worker in a child process (./child) on that file and kills it with
// SIGKILL a random moment after it started, many times, before letting a
// last child finish. The child's handler appends each job's ID to an
// executions log before returning nil, so the log holds every execution
// that could have completed a job.
//
// What it proves, per job:
//   - it is completed, never dead, available, running or lost;
//   - it was executed at least once;
//   - every delivery but the last was lost to a kill: after each kill the
//     test lists the running jobs, which are exactly the jobs the dead child
//     held (claimed, and not completed durably); deliveries == 1 + the
//     number of such lost deliveries, so no lock ever expired under a live
//     worker and every lost lock came back (contract clause 4 (docs/ARCHITECTURE.md));
//   - executions <= deliveries, hence a job ran more than once only if it
//     was in flight at a kill, at most once more per kill that caught it;
//   - each lost delivery is recorded in its error history.
//
// The total of re-executions is thus bounded by the jobs in flight at the
// kills, which the test measures and logs; a child can hold at most its
// Concurrency+Prefetch jobs not yet handed to its settler, plus the
// verdicts its settler has not made durable yet.
//
// The test does not run in parallel with the others: its children keep
// the CPUs busy, which would starve the timing of the lock-renewal test.
func TestWorkerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	began := time.Now()
	rng := rand.New(rand.NewPCG(eventcrash.Seed(t), 0))

	dir := t.TempDir()
	bin := buildChild(t, dir)
	dbPath := filepath.Join(dir, "spool.db")
	execPath := filepath.Join(dir, "executions.log")
	stderrPath := filepath.Join(dir, "children.log")

	st := openStore(t, dbPath) // the parent's own connection to the file
	c := newClient(t, st)
	// MaxDeliveries is far above what the kills can use up: this test is
	// about never losing a job, not about poison-message protection.
	ids := enqueueWork(t, c, crashJobs, &spool.EnqueueOptions{MaxDeliveries: 1000})

	stderr, err := os.OpenFile(stderrPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	env := append(os.Environ(),
		"SPOOL_CRASH_DB="+dbPath,
		"SPOOL_CRASH_EXEC_LOG="+execPath,
		"SPOOL_CRASH_CONCURRENCY="+strconv.Itoa(crashConcurrency),
		"SPOOL_CRASH_PREFETCH="+strconv.Itoa(crashPrefetch),
		"SPOOL_CRASH_LOCK="+crashLock.String(),
		"SPOOL_CRASH_REAP_INTERVAL="+crashReap.String(),
		"SPOOL_CRASH_MAX_WORK="+crashMaxWork.String(),
	)
	run := 0
	start := func() *child {
		run++
		childEnv := slices.Concat(env, []string{"SPOOL_CRASH_WORKER_ID=child-" + strconv.Itoa(run)})
		return startChild(t, bin, childEnv, stderr, stderrPath)
	}

	// lost[id] holds the lock tokens of the job's deliveries that a kill
	// caught: the job was running, held by the dead child, right after it.
	// A delivery that outlives several kills (its lock had not expired yet)
	// is one token, counted once.
	lost := map[spool.ID]map[store.LockToken]bool{}
	// newLost[k] counts the deliveries kill k caught that no earlier kill had.
	var newLost []int
	for len(newLost) < crashMaxKills {
		if len(newLost) >= crashMinKills && countStates(t, st)[spool.StateCompleted] == crashJobs {
			break
		}
		ch := start()
		life := crashMinLife + time.Duration(rng.Int64N(int64(crashMaxLife-crashMinLife)))
		time.Sleep(life) // the kill schedule, not a synchronisation
		ch.kill(t)
		caught := 0
		for _, j := range listAll(t, st, spool.StateRunning) {
			if lost[j.ID] == nil {
				lost[j.ID] = map[store.LockToken]bool{}
			}
			if !lost[j.ID][j.LockToken] {
				lost[j.ID][j.LockToken] = true
				caught++
			}
		}
		newLost = append(newLost, caught)
	}
	kills, killsInFlight, maxCaught := len(newLost), 0, 0
	for _, n := range newLost {
		if n > 0 {
			killsInFlight++
		}
		maxCaught = max(maxCaught, n)
	}
	if killsInFlight < crashMinKills {
		t.Errorf("only %d of %d kills caught jobs in flight, want at least %d: the workload is too short for this machine (raise crashJobs or crashMaxWork)",
			killsInFlight, kills, crashMinKills)
	}

	// The last child runs until every job is completed, then stops gracefully.
	last := start()
	waitCompleted(t, st, last)
	last.terminate(t)

	// The store's view: every job completed, nothing left in any other state.
	jobs := listAll(t, st)
	if len(jobs) != crashJobs {
		t.Fatalf("the store holds %d jobs, want %d", len(jobs), crashJobs)
	}
	counts := countStates(t, st)
	for _, s := range store.States {
		want := 0
		if s == spool.StateCompleted {
			want = crashJobs
		}
		if counts[s] != want {
			t.Errorf("%d jobs %s, want %d", counts[s], s, want)
		}
	}

	execs, torn := readExecutions(t, execPath)
	totalExecs, duplicated, extra, lostDeliveries := 0, 0, 0, 0
	for _, n := range execs {
		totalExecs += n
	}
	for _, tokens := range lost {
		lostDeliveries += len(tokens)
	}
	byID := make(map[spool.ID]*spool.Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	for id := range execs {
		if byID[id] == nil {
			t.Errorf("the executions log names job %s, which was never enqueued", id)
		}
	}
	bad := 0
	for i, id := range ids {
		j, n, l := byID[id], execs[id], len(lost[id])
		var problems []string
		if j == nil {
			t.Errorf("job %d (%s) is missing from the store", i, id)
			continue
		}
		if j.State != spool.StateCompleted {
			problems = append(problems, fmt.Sprintf("state %s, want completed", j.State))
		}
		if n == 0 {
			problems = append(problems, "never executed")
		}
		if j.Deliveries != 1+l {
			problems = append(problems, fmt.Sprintf("%d deliveries but %d lost to kills: want exactly one delivery more than were lost", j.Deliveries, l))
		}
		if n > j.Deliveries {
			problems = append(problems, fmt.Sprintf("executed %d times in %d deliveries", n, j.Deliveries))
		}
		if n-1 > l {
			problems = append(problems, fmt.Sprintf("executed %d times but in flight at only %d kills", n, l))
		}
		if j.Attempts != 0 {
			problems = append(problems, fmt.Sprintf("%d failed attempts, want 0", j.Attempts))
		}
		if got := lockExpiries(j); got != min(l, store.MaxErrorHistory) {
			problems = append(problems, fmt.Sprintf("%d lock expiries in its error history, want %d", got, min(l, store.MaxErrorHistory)))
		}
		if len(problems) > 0 {
			if bad++; bad <= 20 {
				t.Errorf("job %d (%s): %s", i, id, strings.Join(problems, "; "))
			}
		}
		if n > 1 {
			duplicated++
			extra += n - 1
		}
	}
	if bad > 20 {
		t.Errorf("... and %d more jobs with problems", bad-20)
	}
	if extra > lostDeliveries {
		t.Errorf("%d re-executions but only %d deliveries lost to kills", extra, lostDeliveries)
	}

	lockLost := 0
	if b, err := os.ReadFile(stderrPath); err == nil {
		lockLost = bytes.Count(b, []byte("lock lost"))
	}
	t.Logf("%d jobs, %d children: %d killed (%d with jobs in flight), 1 stopped gracefully", crashJobs, run, kills, killsInFlight)
	t.Logf("deliveries lost to kills: %d, at most %d at one kill (a child holds up to %d claimed jobs before its settler); per kill: %v",
		lostDeliveries, maxCaught, crashConcurrency+crashPrefetch, newLost)
	t.Logf("executions: %d (%d re-executions); jobs executed more than once: %d; torn log records: %d; lock-lost warnings: %d",
		totalExecs, extra, duplicated, torn, lockLost)
	t.Logf("runtime %v", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("children's stderr (tail):\n%s", tail(stderrPath, 40))
	}
}

// lockExpiries counts the entries the reaper wrote in j's error history.
func lockExpiries(j *spool.Job) int {
	n := 0
	for _, e := range j.Errors {
		if strings.HasPrefix(e.Message, "lock expired") {
			n++
		}
	}
	return n
}

// buildChild compiles ./child into dir. It is built without the race
// detector whatever the test binary has, so the children run at full speed.
func buildChild(t *testing.T, dir string) string {
	t.Helper()
	return buildProgram(t, dir, "./child", "crash-child")
}

// buildProgram builds the command in package pkg (relative to this
// package) into dir/name.
func buildProgram(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	if err != nil {
		t.Fatalf("the crash test builds its child with the go command: %v", err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goTool, "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// child is one worker process.
type child struct {
	cmd        *exec.Cmd
	stderrPath string
	done       bool
}

// startChild starts the worker program and returns once it reported that
// its worker runs. The child is killed when the test ends, if still alive.
func startChild(t *testing.T, bin string, env []string, stderr *os.File, stderrPath string) *child {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the crash child: %v", err)
	}
	ch := &child{cmd: cmd, stderrPath: stderrPath}
	t.Cleanup(func() {
		if !ch.done {
			_ = cmd.Process.Kill()
			_ = ch.wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("child said %q, want \"ready\"", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(patience):
		_ = cmd.Process.Kill()
		err = fmt.Errorf("not ready after %v: %w", patience, <-ready)
	}
	if err != nil {
		_ = ch.wait()
		t.Fatalf("crash child did not start: %v\nstderr (tail):\n%s", err, tail(stderrPath, 40))
	}
	return ch
}

// kill kills the child with SIGKILL and waits until it is gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	// A child that ended before the kill crashed on its own: a failure.
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		_ = c.wait()
		t.Fatalf("SIGKILL: %v\nstderr (tail):\n%s", err, tail(c.stderrPath, 40))
	}
	err := c.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return
		}
	}
	t.Fatalf("crash child ended with %v, not by SIGKILL\nstderr (tail):\n%s", err, tail(c.stderrPath, 40))
}

// terminate asks the child to stop gracefully and checks that it exited 0.
func (c *child) terminate(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("crash child did not stop cleanly: %v\nstderr (tail):\n%s", err, tail(c.stderrPath, 40))
		}
	case <-time.After(patience):
		_ = c.cmd.Process.Kill()
		err := <-done
		t.Fatalf("crash child did not stop within %v of SIGTERM (killed: %v)\nstderr (tail):\n%s", patience, err, tail(c.stderrPath, 40))
	}
}

func (c *child) wait() error {
	c.done = true
	return c.cmd.Wait()
}

// waitCompleted polls the store (the child is another process, so there is
// no in-process signal) until every job is completed.
func waitCompleted(t *testing.T, st store.Store, ch *child) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(patience)
	for {
		counts := countStates(t, st)
		if counts[spool.StateCompleted] == crashJobs {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("jobs not all completed after %v: %v\nstderr (tail):\n%s", patience, counts, tail(ch.stderrPath, 40))
		}
	}
}

// readExecutions reads the executions log and counts lines per job. A
// write cut short by SIGKILL (possible only when a record straddles a page
// boundary) leaves a fragment that the next child's record continues on the
// same line: the record is the line's last 36 bytes, the fragment is
// counted as torn and ignored (its execution did not return, so it
// completed nothing).
func readExecutions(t *testing.T, path string) (map[spool.ID]int, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the executions log: %v", err)
	}
	const idLen = 36
	counts := map[spool.ID]int{}
	torn := 0
	lines := strings.Split(string(b), "\n")
	if last := lines[len(lines)-1]; last != "" {
		torn++ // a fragment at the very end
	}
	for _, line := range lines[:len(lines)-1] {
		if len(line) < idLen {
			t.Fatalf("executions log: line %q is shorter than a job ID", line)
		}
		if len(line) > idLen {
			torn++
			line = line[len(line)-idLen:]
		}
		id, err := spool.ParseID(line)
		if err != nil {
			t.Fatalf("executions log: %v", err)
		}
		counts[id]++
	}
	return counts, torn
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
