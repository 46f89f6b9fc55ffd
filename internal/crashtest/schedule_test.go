package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// Schedule crash test sizes: schedules due every second, and how long the
// children are killed and restarted.
const (
	crashSchedules = 200
	crashFor       = 8 * time.Second
)

// TestSchedulesSurviveSIGKILL runs two processes that fire the same
// schedules and complete their runs, kills them with SIGKILL at random
// moments (often inside a firing transaction) and restarts them. Then every
// slot of every schedule must have exactly one run: none lost to a crash,
// none fired twice by the racing processes or by a retry after a crash.
// Runs are completed as they go, so a slot fired twice would find its run
// key free and show up as a second job.
func TestSchedulesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process crash test")
	}
	db := filepath.Join(t.TempDir(), "spool.db")
	scheduleCrash(t, []string{"SPOOL_SCHEDCRASH_DB=" + db}, func(t *testing.T) schedStore { return openStore(t, db) })
}

// TestSchedulesSurviveSIGKILLPostgres is TestSchedulesSurviveSIGKILL on
// PostgreSQL, where the racing processes take disjoint batches with SKIP
// LOCKED and a killed process's transaction is rolled back by the server.
func TestSchedulesSurviveSIGKILLPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process crash test")
	}
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	scheduleCrash(t, []string{"SPOOL_SCHEDCRASH_PG=" + url, "SPOOL_SCHEDCRASH_SCHEMA=" + schema}, func(t *testing.T) schedStore {
		st, err := postgres.Open(t.Context(), url, postgres.Config{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

type schedStore interface {
	store.Store
	store.ScheduleStore
}

func scheduleCrash(t *testing.T, storeEnv []string, open func(t *testing.T) schedStore) {
	dir := t.TempDir()
	bin := buildProgram(t, dir, "./schedchild", "sched-child")
	st := open(t)
	scs := make([]store.Schedule, crashSchedules)
	for i := range scs {
		// Every slot runs (allow), and catch-up reaches back far enough
		// that no slot missed while both processes were down is dropped.
		scs[i] = store.Schedule{ID: fmt.Sprintf("s%03d", i), Tenant: fmt.Sprintf("t%d", i%3), Spec: "* * * * * *",
			Queue: "ticks", Kind: "tick", Overlap: store.OverlapAllow, Misfire: store.MisfireCatchUp, CatchUpMax: 1000}
	}
	res, err := st.UpsertSchedules(t.Context(), scs)
	if err != nil {
		t.Fatal(err)
	}
	first := map[store.ScheduleRef]time.Time{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		first[scs[i].Ref()] = r.NextRunAt
	}
	st.Close()

	env := append(os.Environ(), storeEnv...)
	stderrPath := filepath.Join(dir, "stderr.log")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	kids := []*child{startChild(t, bin, env, stderr, stderrPath), startChild(t, bin, env, stderr, stderrPath)}
	kills := 0
	for end := time.Now().Add(crashFor); time.Now().Before(end); {
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		i := rand.IntN(len(kids))
		kids[i].kill(t)
		kills++
		if rand.IntN(3) == 0 { // sometimes both are down for a while
			other := kids[1-i]
			other.kill(t)
			kills++
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			kids[1-i] = startChild(t, bin, env, stderr, stderrPath)
		}
		kids[i] = startChild(t, bin, env, stderr, stderrPath)
	}
	for _, k := range kids {
		k.terminate(t)
	}

	// Fire what came due since, then check every slot up to then.
	st = open(t)
	ctx := context.Background()
	var until time.Time
	for {
		until = time.Now()
		r, err := st.FireDue(ctx, store.FireParams{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if r.Schedules == 0 {
			break
		}
	}
	jobs := listAll(t, st)
	byKey := map[string]int{}
	slots := map[store.ScheduleRef][]time.Time{}
	for _, j := range jobs {
		byKey[j.Tenant+"\x00"+j.UniqueKey]++
		parts := strings.Split(j.UniqueKey, ":") // sched:<tenant>:<id>:<slot>, slot with colons
		if len(parts) < 4 || parts[0] != "sched" {
			t.Fatalf("job %s has unique key %q, not a run key", j.ID, j.UniqueKey)
		}
		slot, err := time.Parse(time.RFC3339, strings.Join(parts[3:], ":"))
		if err != nil {
			t.Fatalf("run key %q: %v", j.UniqueKey, err)
		}
		ref := store.ScheduleRef{Tenant: parts[1], ID: parts[2]}
		slots[ref] = append(slots[ref], slot)
	}
	doubled := 0
	for k, n := range byKey {
		if n > 1 {
			doubled++
			t.Errorf("slot %q was enqueued %d times", k, n)
		}
	}
	lost := 0
	for ref, from := range first {
		have := map[time.Time]bool{}
		for _, s := range slots[ref] {
			have[s] = true
		}
		for s := from; !s.After(until); s = s.Add(time.Second) {
			if !have[s] {
				lost++
				if lost <= 10 {
					t.Errorf("schedule %s: slot %s has no run", ref, s.Format(time.RFC3339))
				}
			}
		}
	}
	completed := 0
	for _, j := range jobs {
		if j.State == store.StateCompleted {
			completed++
		}
	}
	t.Logf("%d kills; %d runs for %d schedules, %d completed by the children; %d lost, %d doubled",
		kills, len(jobs), len(first), completed, lost, doubled)
	// The children must have done the work, not the final FireDue above: on
	// a loaded machine they complete fewer, but never none.
	if completed == 0 {
		t.Errorf("none of %d runs completed: the children never worked", len(jobs))
	}
}
