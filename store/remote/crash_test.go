package remote_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	_ "github.com/spoolrun/spool/store/remote" // the child opens its store by URL
	"github.com/spoolrun/spool/store/sqlite"
)

// The crash test's workload and the child worker's settings.
const (
	crashJobs = 3000
	// The child works this many jobs at once, with this many claimed ahead.
	crashConcurrency = 8
	crashPrefetch    = 4
	// crashLock is short so the jobs a killed child held come back soon;
	// the server's reaper looks every crashReap.
	crashLock = time.Second
	crashReap = 100 * time.Millisecond
	// crashMaxWork is the longest a handler works before it records its
	// execution.
	crashMaxWork = 30 * time.Millisecond
	// A child is killed a random time in [crashMinLife, crashMaxLife) after
	// it said it was ready, crashKills times; a last child then finishes.
	crashMinLife = 100 * time.Millisecond
	crashMaxLife = 500 * time.Millisecond
	crashKills   = 10
	// crashPatience bounds every wait; no assertion is about speed.
	crashPatience = 60 * time.Second
)

// The environment of the child worker (the test binary run again).
const (
	envChildURL     = "SPOOL_REMOTE_CHILD_URL"      // the server's URL; makes the binary a child
	envChildExecLog = "SPOOL_REMOTE_CHILD_EXEC_LOG" // the executions log
	envChildID      = "SPOOL_REMOTE_CHILD_ID"       // the worker's ID
)

// TestRemoteWorkerSurvivesSIGKILL is the contract's at-least-once promise
// for a worker attached over HTTP. A server (spool serve's API over a
// SQLite file, with spool serve's upkeep returning expired locks) holds
// the jobs; a child process runs a spool.Worker on a remote store opened
// with store.Open("http://..."), and is killed with SIGKILL a random moment
// after it started, crashKills times, before a last child finishes the
// work and stops gracefully. The child's handler appends each job's ID to
// an executions log before it returns, so the log holds every execution
// that could have completed a job.
//
// A kill may cut any call short: a claim whose answer never arrived (the
// server locked jobs nobody holds), a settle the server applied or not, a
// long poll. After each kill the test waits until the server has closed
// every connection of the dead child (so each call it had begun is over),
// then lists the running jobs: exactly the deliveries the dead child held.
//
// What it proves, per job:
//   - it is completed, with no failed attempt: nothing lost, nothing stuck;
//   - it was executed at least once, and no more often than delivered;
//   - every delivery but the last was lost to a kill, and came back
//     through its lock's expiry: deliveries == 1 + the deliveries seen
//     running right after the kills == 1 + the lock expiries in its error
//     history. No lock expired under a live worker.
func TestRemoteWorkerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SPOOL_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SPOOL_CRASH_SEED: %v", err)
		}
	}
	t.Logf("kill schedule seed %d (replay with SPOOL_CRASH_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	execPath := filepath.Join(dir, "executions.log")
	stderrPath := filepath.Join(dir, "children.log")
	st, err := sqlite.Open(filepath.Join(dir, "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// The server, counting its open connections: none once a killed
	// child's calls are all over.
	srv, err := server.New(server.Config{Store: st, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Add(-1)
		}
	}
	hs.Start()
	defer hs.Close()
	defer srv.Drain()
	// spool serve's upkeep: expired locks come back.
	upkeep, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{},
		Maintenance: spool.MaintenanceConfig{ReapInterval: crashReap}})
	if err != nil {
		t.Fatal(err)
	}
	if err := upkeep.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), crashPatience)
		defer cancel()
		if err := upkeep.Stop(ctx); err != nil {
			t.Errorf("stop the upkeep: %v", err)
		}
	}()

	ids := enqueueCrashJobs(t, st)
	stderr, err := os.OpenFile(stderrPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	run := 0
	start := func() *crashChild {
		run++
		return startCrashChild(t, []string{envChildURL + "=" + hs.URL, envChildExecLog + "=" + execPath,
			envChildID + "=child-" + strconv.Itoa(run)}, stderr, stderrPath)
	}

	lost := map[store.ID]map[store.LockToken]bool{}
	caughtPerKill := make([]int, 0, crashKills)
	for range crashKills {
		c := start()
		time.Sleep(crashMinLife + time.Duration(rng.Int64N(int64(crashMaxLife-crashMinLife)))) // the kill schedule
		c.kill(t)
		waitUntil(t, "the server closed the killed child's connections", func() bool { return conns.Load() == 0 })
		caught := 0
		for _, j := range listJobs(t, st, store.StateRunning) {
			if lost[j.ID] == nil {
				lost[j.ID] = map[store.LockToken]bool{}
			}
			if !lost[j.ID][j.LockToken] {
				lost[j.ID][j.LockToken] = true
				caught++
			}
		}
		caughtPerKill = append(caughtPerKill, caught)
	}
	inFlight := 0
	for _, n := range caughtPerKill {
		if n > 0 {
			inFlight++
		}
	}
	if inFlight < crashKills/2 {
		t.Errorf("only %d of %d kills caught jobs in flight: the workload is too short for this machine (raise crashJobs)", inFlight, crashKills)
	}
	last := start()
	waitUntil(t, "every job completed", func() bool { return countState(t, st, store.StateCompleted) == crashJobs })
	last.terminate(t)

	execs := readExecLog(t, execPath)
	jobs := listJobs(t, st)
	if len(jobs) != crashJobs {
		t.Fatalf("the store holds %d jobs, want %d", len(jobs), crashJobs)
	}
	byID := map[store.ID]*store.Job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	bad, reruns, lostTotal := 0, 0, 0
	for _, tokens := range lost {
		lostTotal += len(tokens)
	}
	for i, id := range ids {
		j, n, l := byID[id], execs[id], len(lost[id])
		if j == nil {
			t.Errorf("job %d (%s) is missing", i, id)
			continue
		}
		var problems []string
		if j.State != store.StateCompleted || j.Attempts != 0 {
			problems = append(problems, fmt.Sprintf("%s with %d failed attempts, want completed with none", j.State, j.Attempts))
		}
		if n == 0 || n > j.Deliveries {
			problems = append(problems, fmt.Sprintf("executed %d times in %d deliveries", n, j.Deliveries))
		}
		if j.Deliveries != 1+l {
			problems = append(problems, fmt.Sprintf("%d deliveries but %d held by killed children: want exactly one more", j.Deliveries, l))
		}
		if e := lockExpiries(j); e != min(l, store.MaxErrorHistory) {
			problems = append(problems, fmt.Sprintf("%d lock expiries in its history, want %d", e, l))
		}
		if len(problems) > 0 {
			if bad++; bad <= 20 {
				t.Errorf("job %d (%s): %s", i, id, strings.Join(problems, "; "))
			}
		}
		reruns += max(n-1, 0)
	}
	if reruns > lostTotal {
		t.Errorf("%d re-executions but only %d deliveries lost to kills", reruns, lostTotal)
	}
	t.Logf("%d jobs, %d children (%d killed, 1 stopped); deliveries held at each kill: %v", crashJobs, run, crashKills, caughtPerKill)
	t.Logf("re-executions: %d of %d lost deliveries; runtime %v", reruns, lostTotal, time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("children's stderr (tail):\n%s", tailFile(stderrPath, 40))
	}
}

// enqueueCrashJobs enqueues the workload and returns its IDs in order.
// MaxDeliveries is far above what the kills can use up.
func enqueueCrashJobs(t *testing.T, st store.Store) []store.ID {
	t.Helper()
	ps := make([]store.EnqueueParams, crashJobs)
	for i := range ps {
		ps[i] = store.EnqueueParams{Kind: "work", MaxDeliveries: 1000}
	}
	res, err := st.Enqueue(t.Context(), ps)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]store.ID, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

func listJobs(t *testing.T, st store.Store, states ...store.State) []*store.Job {
	t.Helper()
	var out []*store.Job
	p := store.ListParams{States: states, Limit: store.MaxListLimit}
	for {
		page, err := st.List(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Jobs...)
		if page.Next.IsZero() {
			return out
		}
		p.After = page.Next
	}
}

func countState(t *testing.T, st store.Store, state store.State) int {
	t.Helper()
	stats, err := st.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stats {
		if q.Queue == store.DefaultQueue {
			return q.Counts[state]
		}
	}
	return 0
}

// lockExpiries counts the entries the reaper wrote in j's history.
func lockExpiries(j *store.Job) int {
	n := 0
	for _, e := range j.Errors {
		if strings.HasPrefix(e.Message, "lock expired") {
			n++
		}
	}
	return n
}

// waitUntil polls ok until it holds, failing the test after crashPatience.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(crashPatience)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", crashPatience, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readExecLog counts the executions log's lines per job. Each line is
// written whole by one write(2) on a file opened with O_APPEND, so SIGKILL
// cannot tear one (records are far smaller than a page).
func readExecLog(t *testing.T, path string) map[store.ID]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[store.ID]int{}
	for line := range strings.Lines(string(b)) {
		id, err := store.ParseID(strings.TrimSuffix(line, "\n"))
		if err != nil {
			t.Fatalf("executions log: %v", err)
		}
		counts[id]++
	}
	return counts
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// crashChild is one worker process: the test binary, run as a child.
type crashChild struct {
	cmd        *exec.Cmd
	stderrPath string
	waited     bool
}

// startCrashChild starts a child and returns once it said its worker runs.
func startCrashChild(t *testing.T, env []string, stderr *os.File, stderrPath string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, stderrPath: stderrPath}
	t.Cleanup(func() {
		if !c.waited {
			_ = cmd.Process.Kill()
			_ = c.wait()
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
	case <-time.After(crashPatience):
		_ = cmd.Process.Kill()
		err = fmt.Errorf("not ready after %v: %w", crashPatience, <-ready)
	}
	if err != nil {
		_ = c.wait()
		t.Fatalf("child did not start: %v\nstderr (tail):\n%s", err, tailFile(stderrPath, 40))
	}
	return c
}

func (c *crashChild) wait() error {
	c.waited = true
	return c.cmd.Wait()
}

// kill kills the child with SIGKILL and waits until it is gone.
func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		_ = c.wait()
		t.Fatalf("SIGKILL: %v (the child ended on its own)\nstderr (tail):\n%s", err, tailFile(c.stderrPath, 40))
	}
	err := c.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return
		}
	}
	t.Fatalf("child ended with %v, not by SIGKILL\nstderr (tail):\n%s", err, tailFile(c.stderrPath, 40))
}

// terminate stops the child with SIGTERM and checks that it exited 0.
func (c *crashChild) terminate(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child did not stop cleanly: %v\nstderr (tail):\n%s", err, tailFile(c.stderrPath, 40))
		}
	case <-time.After(crashPatience):
		_ = c.cmd.Process.Kill()
		err := <-done
		t.Fatalf("child did not stop within %v of SIGTERM (killed: %v)", crashPatience, err)
	}
}

// runChild is the child: a spool.Worker on the remote store at
// $SPOOL_REMOTE_CHILD_URL, opened by URL as spool work --store opens it.
// Its handler for kind "work" works a random moment (honouring its
// context), appends the job's ID to the executions log in one write, and
// only then returns. It prints "ready" once the worker runs, and on
// SIGTERM stops gracefully and exits 0.
func runChild() int {
	if err := child(); err != nil {
		fmt.Fprintln(os.Stderr, "remote crash child:", err)
		return 1
	}
	return 0
}

func child() error {
	id := os.Getenv(envChildID)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("worker", id)
	execLog, err := os.OpenFile(os.Getenv(envChildExecLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer execLog.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := store.Open(ctx, os.Getenv(envChildURL), store.OpenOptions{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:        st,
		ID:           id,
		Logger:       log,
		LockDuration: crashLock,
		PollInterval: 50 * time.Millisecond,
		Queues:       map[string]spool.QueueConfig{store.DefaultQueue: {Concurrency: crashConcurrency, Prefetch: crashPrefetch}},
		Maintenance:  spool.MaintenanceConfig{ReapInterval: crashReap},
	})
	if err != nil {
		return err
	}
	spool.HandleRaw(w, "work", func(ctx context.Context, job *spool.Job) ([]byte, error) {
		t := time.NewTimer(rand.N(crashMaxWork + 1))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if _, err := execLog.Write([]byte(job.ID.String() + "\n")); err != nil {
			return nil, fmt.Errorf("record execution: %w", err)
		}
		return nil, nil
	}, nil)
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Stop(stopCtx)
}
