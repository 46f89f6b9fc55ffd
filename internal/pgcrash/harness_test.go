package pgcrash

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// The workload. Jobs come from SPOOL_PGCRASH_JOBS (default defaultJobs).
const (
	envJobs     = "SPOOL_PGCRASH_JOBS"
	defaultJobs = 20_000

	numWorkers   = 4
	numProducers = 2
	concurrency  = 16
	prefetch     = 4
	// lockFor is the workers' lock duration: long enough that a worker
	// starved of CPU on a small shared machine still renews in time, short
	// enough that a killed worker's jobs come back soon.
	lockFor   = 3 * time.Second
	reapEvery = 200 * time.Millisecond
	maxWork   = 10 * time.Millisecond
	// producerRate is each producer's enqueue rate in jobs/s, about what
	// the workers manage together on two cores, so the queue neither
	// starves nor piles up for long.
	producerRate = 2500
	batchSize    = 100
)

// jobCount is the number of jobs a test works.
func jobCount(t *testing.T) int {
	t.Helper()
	v := os.Getenv(envJobs)
	if v == "" {
		return defaultJobs
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < numProducers*batchSize {
		t.Fatalf("%s=%q: want a number of at least %d", envJobs, v, numProducers*batchSize)
	}
	return n
}

// patience bounds each wait: it keeps a broken build from hanging and says
// nothing about speed.
func patience(jobs int) time.Duration { return 2*time.Minute + time.Duration(jobs)*time.Millisecond }

// run is one multi-process run: a schema, the child binary, the processes.
type run struct {
	t       *testing.T
	dir     string
	bin     string
	url     string
	schema  string
	jobs    int
	pool    *pgxpool.Pool // the test's own connections, for watching the table
	procs   map[string]*proc
	started time.Time
}

// newRun migrates schema at url, builds the child and returns the run; the
// processes start with startAll.
func newRun(t *testing.T, url, schema string) *run {
	t.Helper()
	ctx := t.Context()
	st, err := postgres.Open(ctx, url, postgres.Config{Schema: schema, PollOnly: true}) // migrates the schema
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	st.Close()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	dir := t.TempDir()
	return &run{t: t, dir: dir, bin: buildChild(t, dir), url: url, schema: schema, jobs: jobCount(t), pool: pool, procs: map[string]*proc{}}
}

// buildChild compiles ./child into dir, without the race detector whatever
// the test binary has, so the children run at full speed.
func buildChild(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	if err != nil {
		t.Fatalf("the test builds its child with the go command: %v", err)
	}
	bin := filepath.Join(dir, "pgcrash-child")
	if out, err := exec.Command(goTool, "build", "-o", bin, "./child").CombinedOutput(); err != nil {
		t.Fatalf("build the child: %v\n%s", err, out)
	}
	return bin
}

// startAll starts the workers w1..w4 and then the producers p1 and p2.
func (r *run) startAll() {
	r.t.Helper()
	for i := 1; i <= numWorkers; i++ {
		r.start("w"+strconv.Itoa(i), "worker",
			"SPOOL_PGCRASH_CONCURRENCY="+strconv.Itoa(concurrency),
			"SPOOL_PGCRASH_PREFETCH="+strconv.Itoa(prefetch),
			"SPOOL_PGCRASH_LOCK="+lockFor.String(),
			"SPOOL_PGCRASH_REAP_INTERVAL="+reapEvery.String(),
			"SPOOL_PGCRASH_MAX_WORK="+maxWork.String())
	}
	r.started = time.Now()
	per := r.jobs / numProducers
	for i := 1; i <= numProducers; i++ {
		n := per
		if i == numProducers {
			n = r.jobs - per*(numProducers-1)
		}
		r.start("p"+strconv.Itoa(i), "producer",
			"SPOOL_PGCRASH_JOBS="+strconv.Itoa(n),
			"SPOOL_PGCRASH_RATE="+strconv.Itoa(producerRate),
			"SPOOL_PGCRASH_BATCH="+strconv.Itoa(batchSize))
	}
}

// proc is one child process.
type proc struct {
	name       string
	cmd        *exec.Cmd
	logPath    string
	stderrPath string
	lines      chan string   // its stdout, line by line; closed at EOF
	done       chan struct{} // closed when it exited
	err        error         // its exit; set before done closes
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start starts a child and returns once it printed "ready". It is killed
// when the test ends if it is still running.
func (r *run) start(name, role string, env ...string) *proc {
	t := r.t
	t.Helper()
	p := &proc{
		name:       name,
		logPath:    filepath.Join(r.dir, name+".log"),
		stderrPath: filepath.Join(r.dir, name+".stderr"),
		lines:      make(chan string, 16),
		done:       make(chan struct{}),
	}
	stderr, err := os.Create(p.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(r.bin)
	p.cmd.Env = append(os.Environ(),
		"SPOOL_PGCRASH_ROLE="+role,
		"SPOOL_PGCRASH_URL="+r.url,
		"SPOOL_PGCRASH_SCHEMA="+r.schema,
		"SPOOL_PGCRASH_LOG="+p.logPath,
		"SPOOL_PGCRASH_ID="+name)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = pw, stderr
	err = p.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // ends at EOF, when the child exited
		defer close(p.lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
		<-p.done
		for range p.lines { //nolint:revive // drain so the reader ends
		}
	})
	r.procs[name] = p
	select {
	case line := <-p.lines:
		if line != "ready" {
			t.Fatalf("%s said %q, want \"ready\"\nstderr:\n%s", name, line, tail(p.stderrPath, 20))
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s not ready after a minute\nstderr:\n%s", name, tail(p.stderrPath, 20))
	}
	return p
}

// signal sends sig to the child.
func (r *run) signal(p *proc, sig syscall.Signal) {
	r.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("%v to %s: %v\nstderr:\n%s", sig, p.name, err, tail(p.stderrPath, 20))
	}
}

// kill SIGKILLs the child and waits until it is gone.
func (r *run) kill(p *proc) {
	r.t.Helper()
	r.signal(p, syscall.SIGKILL)
	<-p.done
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() { //nolint:errcheck,forcetypeassert // Unix
		r.t.Fatalf("%s ended with %v, not by SIGKILL\nstderr:\n%s", p.name, p.err, tail(p.stderrPath, 20))
	}
}

// workerStats stops a worker gracefully and returns the counters it printed.
type workerStats struct {
	Settled     int64 `json:"settled"`
	Refused     int64 `json:"refused"`
	LockLost    int64 `json:"lock_lost"`
	Abandoned   int64 `json:"abandoned"`
	FlushErrors int64 `json:"flush_errors"`
}

func (r *run) stopWorker(p *proc) workerStats {
	r.t.Helper()
	r.signal(p, syscall.SIGTERM)
	var last string
	timeout := time.After(time.Minute)
	for done := false; !done; {
		select {
		case line, ok := <-p.lines:
			if !ok {
				done = true
				break
			}
			last = line
		case <-timeout:
			r.t.Fatalf("%s did not stop within a minute of SIGTERM\nstderr:\n%s", p.name, tail(p.stderrPath, 20))
		}
	}
	<-p.done
	if p.err != nil {
		r.t.Fatalf("%s did not stop cleanly: %v\nstderr:\n%s", p.name, p.err, tail(p.stderrPath, 20))
	}
	var s workerStats
	if err := json.Unmarshal([]byte(last), &s); err != nil {
		r.t.Fatalf("%s printed %q, not its stats: %v", p.name, last, err)
	}
	return s
}

// waitProducers waits until both producers exited 0.
func (r *run) waitProducers() {
	r.t.Helper()
	timeout := time.After(patience(r.jobs))
	for i := 1; i <= numProducers; i++ {
		p := r.procs["p"+strconv.Itoa(i)]
		select {
		case <-p.done:
		case <-timeout:
			r.t.Fatalf("%s still producing after %v\nstderr:\n%s", p.name, patience(r.jobs), tail(p.stderrPath, 20))
		}
		if p.err != nil {
			r.t.Fatalf("%s failed: %v\nstderr:\n%s", p.name, p.err, tail(p.stderrPath, 20))
		}
	}
}

// counts returns how many jobs the table holds and how many are completed.
// While the server restarts it fails; the caller polls again.
func (r *run) counts() (total, completed int, err error) {
	ctx, cancel := context.WithTimeout(r.t.Context(), 5*time.Second)
	defer cancel()
	err = r.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed') FROM `+r.schema+`.jobs`).Scan(&total, &completed)
	return total, completed, err
}

// waitFor polls the table (the workers are other processes: there is no
// signal to wait on) until cond holds.
func (r *run) waitFor(what string, cond func(total, completed int) bool) {
	r.t.Helper()
	deadline := time.Now().Add(patience(r.jobs))
	var total, completed int
	var err error
	for time.Now().Before(deadline) {
		if total, completed, err = r.counts(); err == nil && cond(total, completed) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("waited %v for %s: %d jobs, %d completed (last error %v)\n%s", patience(r.jobs), what, total, completed, err, r.stderrTails())
}

// stderrTails is the end of every child's stderr, for failure messages.
func (r *run) stderrTails() string {
	var b strings.Builder
	for name, p := range r.procs {
		fmt.Fprintf(&b, "--- %s stderr:\n%s\n", name, tail(p.stderrPath, 10))
	}
	return b.String()
}

// heldBy returns the running jobs a worker holds, with their delivery.
func (r *run) heldBy(worker string) map[store.ID]int {
	r.t.Helper()
	rows, err := r.pool.Query(r.t.Context(), `SELECT id, deliveries FROM `+r.schema+`.jobs WHERE state = 'running' AND worker = $1`, worker)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	out := map[store.ID]int{}
	for rows.Next() {
		var id [16]byte
		var d int
		if err := rows.Scan(&id, &d); err != nil {
			r.t.Fatal(err)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// finalJob is a job as the run left it.
type finalJob struct {
	state      string
	deliveries int
	expiries   int // "lock expired" entries in its error history
}

func (r *run) finalJobs() map[store.ID]finalJob {
	r.t.Helper()
	rows, err := r.pool.Query(r.t.Context(), `SELECT id, state, deliveries,
		(SELECT count(*) FROM jsonb_array_elements(coalesce(errors, '[]'::jsonb)) AS e WHERE e->>'message' LIKE 'lock expired%')
		FROM `+r.schema+`.jobs`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	out := map[store.ID]finalJob{}
	for rows.Next() {
		var id [16]byte
		var j finalJob
		if err := rows.Scan(&id, &j.state, &j.deliveries, &j.expiries); err != nil {
			r.t.Fatal(err)
		}
		out[id] = j
	}
	if err := rows.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// record is one line of a child's log: S (handler started), E (handler
// finished, about to return nil) or P (enqueued).
type record struct {
	kind     byte
	id       store.ID
	delivery int
	proc     string
}

// readLog reads a child's log. A last line without its newline (a write cut
// by SIGKILL) is ignored: its handler did not return.
func (r *run) readLog(p *proc) []record {
	r.t.Helper()
	b, err := os.ReadFile(p.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline, or a cut line
	out := make([]record, 0, len(lines))
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 1 {
			r.t.Fatalf("%s: bad log line %q", p.logPath, line)
		}
		id, err := store.ParseID(f[1])
		if err != nil {
			r.t.Fatalf("%s: %q: %v", p.logPath, line, err)
		}
		rec := record{kind: f[0][0], id: id, proc: p.name}
		if len(f) > 2 {
			if rec.delivery, err = strconv.Atoi(f[2]); err != nil {
				r.t.Fatalf("%s: %q: %v", p.logPath, line, err)
			}
		}
		out = append(out, rec)
	}
	return out
}

// checkEnqueuedOnce checks that the producers' acknowledged jobs are
// exactly the table's jobs, each enqueued once, every one completed.
func (r *run) checkEnqueuedOnce(jobs map[store.ID]finalJob) {
	t := r.t
	t.Helper()
	produced := map[store.ID]int{}
	for i := 1; i <= numProducers; i++ {
		for _, rec := range r.readLog(r.procs["p"+strconv.Itoa(i)]) {
			produced[rec.id]++
		}
	}
	if len(produced) != r.jobs || len(jobs) != r.jobs {
		t.Errorf("producers acknowledged %d distinct jobs and the table holds %d; want %d", len(produced), len(jobs), r.jobs)
	}
	bad := 0
	for id, n := range produced {
		j, ok := jobs[id]
		switch {
		case !ok:
			t.Errorf("job %s was acknowledged but is not in the table", id)
		case n != 1:
			t.Errorf("job %s was acknowledged %d times", id, n)
		case j.state != string(store.StateCompleted):
			t.Errorf("job %s is %s, want completed", id, j.state)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Fatalf("... and more")
		}
	}
	for id := range jobs {
		if produced[id] == 0 {
			t.Errorf("job %s is in the table but no producer acknowledged it", id)
		}
	}
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

// countIn counts the lines of the file at path that contain s.
func countIn(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}

// head returns the first n lines of the file at path that contain a or b
// (an empty b matches nothing).
func head(path, a, b string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if len(out) < n && (strings.Contains(line, a) || (b != "" && strings.Contains(line, b))) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
