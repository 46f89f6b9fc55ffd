package crashtest

import (
	"bytes"
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/eventcrash"
	"github.com/spoolrun/spool/store/sqlite"
)

// The events crash test's processes and their settings.
const (
	evPublishers = 2
	evWorkers    = 2
	// evRate is each publisher's rate in events/s: about what two workers
	// keep up with on two cores, with three subscriptions per event.
	evRate = 100
	// evLock is short so that the deliveries a killed worker held come back
	// soon (evReap returns them promptly once their lock expired), yet twice
	// TestWorkerSurvivesSIGKILL's: here four processes and the mailer's own
	// transactions take turns at the file's write lock, renewals included.
	evLock = 2 * time.Second
	evReap = 100 * time.Millisecond
	// For evFor, a random process is killed every [evMinGap, evMaxGap) and
	// its successor started after a random pause below evMaxDown.
	evFor     = 20 * time.Second
	evMinGap  = 50 * time.Millisecond
	evMaxGap  = 500 * time.Millisecond
	evMaxDown = 300 * time.Millisecond
	// The application's tables in the SQLite file (as ./evchild names them).
	evOrders  = "app_orders"
	evEffects = "app_effects"
)

// evProc is one process of the events crash test.
type evProc struct {
	name, role string
	ch         *child
}

// TestEventsSurviveSIGKILL is the events contract under crashes, on one
// SQLite file: every committed event reaches every subscription, and an
// event whose transaction rolled back is never delivered.
//
// Two publishers and two workers run at once (the program in ./evchild,
// the workload in package internal/eventcrash): the publishers publish with
// Client.Publish and with Client.PublishTx inside transactions of their
// own on the file that also insert an application row, some of which they
// roll back on purpose; the workers work three subscriptions, one failing
// some attempts, one Ordered by key (failing some too), one an idempotent
// consumer through the inbox with a kind filter. For evFor the test kills a
// random process with SIGKILL every fraction of a second and starts a new
// one in its place; then it kills the rest, lets a last worker drain every
// subscription, and stops it gracefully. Right after each kill of a worker
// it notes the claims running in the store: those the dead worker held.
//
// What is committed is read from the file afterwards (the log, the
// application's rows), never taken from a child. eventcrash.Check says what
// is asserted: in short, every committed event was handled to completion by
// every subscription its kind filter allows; no handled event is missing
// from the log (so no rolled-back or killed publish was delivered); the
// outbox row and the event commit together; a handling is repeated only
// after a failure or when a kill lost its verdict, never two at once; the
// ordered subscription starts a key's version n+1 only after a handling of
// version n completed, never going back; and the inbox leaves exactly one
// effect per event.
func TestEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	began := time.Now()
	seed := eventcrash.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()

	dir := t.TempDir()
	bin := buildProgram(t, dir, "./evchild", "ev-child")
	dbPath := filepath.Join(dir, "spool.db")
	handledPath := filepath.Join(dir, "handled.log")
	publishedPath := filepath.Join(dir, "published.log")
	stderrPath := filepath.Join(dir, "children.log")

	st := openStore(t, dbPath) // the parent's own connection to the file
	c := newClient(t, st)
	for _, p := range eventcrash.Subscriptions(evLock) {
		if _, err := c.Subscriptions().Create(ctx, p); err != nil {
			t.Fatalf("create subscription %s: %v", p.Name, err)
		}
	}
	db, err := sql.Open("sqlite", sqlite.DSN(dbPath, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := eventcrash.SQL{DB: db, Orders: evOrders, Effects: evEffects}
	if err := tables.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}

	stderr, err := os.OpenFile(stderrPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	env := append(os.Environ(),
		"SPOOL_EVCRASH_DB="+dbPath,
		"SPOOL_EVCRASH_SEED="+strconv.FormatUint(seed%(1<<62), 10),
		"SPOOL_EVCRASH_RATE="+strconv.Itoa(evRate),
		"SPOOL_EVCRASH_REAP_INTERVAL="+evReap.String(),
	)
	started := 0
	start := func(role string) *evProc {
		started++
		name := role[:1] + strconv.Itoa(started) // p1, w2...
		logPath := publishedPath
		if role == "worker" {
			logPath = handledPath
		}
		childEnv := slices.Concat(env, []string{"SPOOL_EVCRASH_ROLE=" + role, "SPOOL_EVCRASH_ID=" + name, "SPOOL_EVCRASH_LOG=" + logPath})
		return &evProc{name: name, role: role, ch: startChild(t, bin, childEnv, stderr, stderrPath)}
	}
	killed := map[string]bool{}
	held := map[string]map[eventcrash.Claim]bool{}
	kills := map[string]int{}
	kill := func(p *evProc) {
		p.ch.kill(t)
		killed[p.name] = true
		kills[p.role]++
		if p.role == "worker" {
			// The dead worker's writes are all in the file: the claims
			// running now are the ones it held (no lock expires this soon).
			if held[p.name], err = eventcrash.RunningClaims(ctx, st); err != nil {
				t.Fatalf("list running jobs: %v", err)
			}
		}
	}

	var procs []*evProc
	for range evPublishers {
		procs = append(procs, start("publisher"))
	}
	for range evWorkers {
		procs = append(procs, start("worker"))
	}
	for end := time.Now().Add(evFor); time.Now().Before(end); {
		time.Sleep(evMinGap + time.Duration(rng.Int64N(int64(evMaxGap-evMinGap)))) // the kill schedule
		i := rng.IntN(len(procs))
		kill(procs[i])
		time.Sleep(time.Duration(rng.Int64N(int64(evMaxDown))))
		procs[i] = start(procs[i].role)
	}
	for _, p := range procs { // the last ones die at a random point too
		kill(p)
	}
	killPhase := time.Since(began)

	last := start("worker")
	subs := waitDrained(t, c, stderrPath)
	last.ch.terminate(t)

	o := &eventcrash.Outcome{Killed: killed, Held: held, Subs: subs}
	if err := eventcrash.Gather(ctx, c, tables, handledPath, publishedPath, o); err != nil {
		t.Fatal(err)
	}
	eventcrash.Verify(t, o, kills)

	lockLost := 0
	if b, err := os.ReadFile(stderrPath); err == nil {
		lockLost = bytes.Count(b, []byte("lock lost"))
	}
	t.Logf("%d processes: %d publishers and %d workers killed over %v, 1 worker stopped gracefully; torn records: %d; lock-lost warnings: %d",
		started, kills["publisher"], kills["worker"], killPhase.Round(time.Millisecond), o.Torn, lockLost)
	t.Logf("runtime %v", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("children's stderr (tail):\n%s", tail(stderrPath, 40))
	}
}

// waitDrained polls the subscriptions (the worker is another process:
// there is no signal to wait on) until none has anything left to handle,
// and returns them.
func waitDrained(t *testing.T, c *spool.Client, stderrPath string) []*spool.Subscription {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		subs, err := c.Subscriptions().List(context.Background(), eventcrash.Topic)
		if err != nil {
			t.Fatalf("list subscriptions: %v", err)
		}
		behind := int64(0)
		for _, s := range subs {
			behind += s.Lag.Behind
		}
		if behind == 0 {
			return subs
		}
		if time.Now().After(deadline) {
			var lags []string
			for _, s := range subs {
				lags = append(lags, s.Name+": "+strconv.FormatInt(s.Lag.Unrouted, 10)+" unrouted, "+strconv.Itoa(s.Lag.Pending)+" pending")
			}
			t.Fatalf("subscriptions not drained after %v: %s\nstderr (tail):\n%s", patience, strings.Join(lags, "; "), tail(stderrPath, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
