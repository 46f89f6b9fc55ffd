package pgcrash

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/eventcrash"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store/postgres"
)

// The events test's processes and their settings.
const (
	evPublishers  = 2
	evSubscribers = 3
	// evRate is each publisher's rate in events/s, which the subscribers
	// keep up with on two cores next to the server.
	evRate        = 100
	evConcurrency = 8
	evPrefetch    = 2
	// For evFor, a random process is killed every [evMinGap, evMaxGap) and
	// its successor started after a random pause below evMaxDown.
	evFor     = 15 * time.Second
	evMinGap  = 50 * time.Millisecond
	evMaxGap  = 500 * time.Millisecond
	evMaxDown = 300 * time.Millisecond
)

// evProc is a process of the events test with its role.
type evProc struct {
	p    *proc
	role string // publisher or subscriber
}

// TestEventsSurviveSIGKILLPostgres is the events contract under crashes
// with several processes on one PostgreSQL database: every committed event
// reaches every subscription, and an event whose transaction rolled back is
// never delivered.
//
// Two publishers and three subscribers (the program in ./child, running the
// workload of package internal/eventcrash) run at once: the publishers
// publish with Client.Publish and with Client.PublishTx in *sql.Tx
// transactions of their own that also insert an application row, some of
// which they roll back on purpose; the subscribers are workers of three
// subscriptions, one failing some attempts, one Ordered by key (failing
// some too), one an idempotent consumer through the inbox with a kind
// filter, so that routers, claims and ordering keys race across processes.
// For evFor the test kills a random process with SIGKILL every fraction of
// a second and starts a new one in its place; then it kills the rest, lets
// a last subscriber drain every subscription, and stops it gracefully.
// After each kill of a subscriber, once the server had time to finish what
// it sent, the test notes the claims running in the store: those the dead
// process held.
//
// What is committed is read from the database afterwards, never taken from
// a child. eventcrash.Check says what is asserted; see also
// TestEventsSurviveSIGKILL in internal/crashtest, its SQLite twin.
func TestEventsSurviveSIGKILLPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: skipped in -short mode")
	}
	began := time.Now()
	seed := eventcrash.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	r := newRun(t, url, schema)
	ctx := t.Context()

	st, err := postgres.Open(ctx, url, postgres.Config{Schema: schema, PollOnly: true, SkipMigrate: true}) // the test's own view
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer st.Close()
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range eventcrash.Subscriptions(lockFor) {
		if _, err := c.Subscriptions().Create(ctx, p); err != nil {
			t.Fatalf("create subscription %s: %v", p.Name, err)
		}
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := eventcrash.SQL{DB: db, Orders: schema + ".app_orders", Effects: schema + ".app_effects", Dollar: true}
	if err := tables.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}

	handledPath := filepath.Join(r.dir, "handled.log")
	publishedPath := filepath.Join(r.dir, "published.log")
	started := 0
	start := func(role string) *evProc {
		started++
		name := role[:1] + strconv.Itoa(started) // p1, s2...
		records := publishedPath
		if role == "subscriber" {
			records = handledPath
		}
		return &evProc{role: role, p: r.start(name, role,
			"SPOOL_PGCRASH_RECORDS="+records,
			"SPOOL_PGCRASH_SEED="+strconv.FormatUint(seed%(1<<62), 10),
			"SPOOL_PGCRASH_RATE="+strconv.Itoa(evRate),
			"SPOOL_PGCRASH_CONCURRENCY="+strconv.Itoa(evConcurrency),
			"SPOOL_PGCRASH_PREFETCH="+strconv.Itoa(evPrefetch),
			"SPOOL_PGCRASH_REAP_INTERVAL="+reapEvery.String())}
	}
	killed := map[string]bool{}
	held := map[string]map[eventcrash.Claim]bool{}
	kills := map[string]int{}
	kill := func(e *evProc) {
		r.kill(e.p)
		killed[e.p.name] = true
		if e.role == "publisher" {
			kills["publisher"]++
			return
		}
		kills["worker"]++
		time.Sleep(serverSettle)
		if held[e.p.name], err = eventcrash.RunningClaims(ctx, st); err != nil {
			t.Fatalf("list running jobs: %v", err)
		}
	}

	var procs []*evProc
	for range evSubscribers {
		procs = append(procs, start("subscriber"))
	}
	for range evPublishers {
		procs = append(procs, start("publisher"))
	}
	for end := time.Now().Add(evFor); time.Now().Before(end); {
		time.Sleep(evMinGap + time.Duration(rng.Int64N(int64(evMaxGap-evMinGap)))) // the kill schedule
		i := rng.IntN(len(procs))
		kill(procs[i])
		time.Sleep(time.Duration(rng.Int64N(int64(evMaxDown))))
		procs[i] = start(procs[i].role)
	}
	for _, e := range procs { // the last ones die at a random point too
		kill(e)
	}
	killPhase := time.Since(began)

	last := start("subscriber")
	subs := r.waitDrained(c)
	drained := time.Since(began) - killPhase
	stats := r.stopWorker(last.p)
	if stats.Abandoned != 0 {
		t.Errorf("%s abandoned %d verdicts", last.p.name, stats.Abandoned)
	}

	o := &eventcrash.Outcome{Killed: killed, Held: held, Subs: subs}
	if err := eventcrash.Gather(ctx, c, tables, handledPath, publishedPath, o); err != nil {
		t.Fatal(err)
	}
	eventcrash.Verify(t, o, kills)

	lockLost := 0
	for _, p := range r.procs {
		lockLost += countIn(p.stderrPath, "lock lost")
	}
	t.Logf("%d processes: %d publishers and %d subscribers killed over %v; 1 subscriber drained the rest in %v (settled %d, refused %d) and stopped gracefully; torn records: %d; lock-lost warnings: %d",
		started, kills["publisher"], kills["worker"], killPhase.Round(time.Millisecond), drained.Round(time.Millisecond), stats.Settled, stats.Refused, o.Torn, lockLost)
	t.Logf("runtime %v", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Log(r.stderrTails())
	}
}

// waitDrained polls the subscriptions (the subscribers are other
// processes: there is no signal to wait on) until none has anything left
// to handle, and returns them.
func (r *run) waitDrained(c *spool.Client) []*spool.Subscription {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		subs, err := c.Subscriptions().List(context.Background(), eventcrash.Topic)
		if err != nil {
			r.t.Fatalf("list subscriptions: %v", err)
		}
		behind := int64(0)
		var lags []string
		for _, s := range subs {
			behind += s.Lag.Behind
			lags = append(lags, s.Name+": "+strconv.FormatInt(s.Lag.Unrouted, 10)+" unrouted, "+strconv.Itoa(s.Lag.Pending)+" pending")
		}
		if behind == 0 {
			return subs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("subscriptions not drained after a minute: %s\n%s", strings.Join(lags, "; "), r.stderrTails())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
