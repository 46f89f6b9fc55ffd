package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// fill enqueues batches of jobs with 1 KiB payloads until the store refuses
// one, and returns that error and how many jobs went in.
func fill(t *testing.T, s *sqlite.Store, queue string) (int, error) {
	t.Helper()
	payload := bytes.Repeat([]byte("x"), 1024)
	n := 0
	for range 10_000 {
		ps := make([]store.EnqueueParams, 50)
		for i := range ps {
			ps[i] = store.EnqueueParams{Kind: "k", Queue: queue, Payload: payload}
		}
		if _, err := s.Enqueue(context.Background(), ps); err != nil {
			return n, err
		}
		n += len(ps)
	}
	t.Fatalf("%d jobs enqueued and the store is not full", n)
	return n, nil
}

// drain claims and completes every job of queue, as a worker would, and
// fails the test if any claim or settle is refused.
func drain(t *testing.T, s *sqlite.Store, queue string) int {
	t.Helper()
	ctx := context.Background()
	done := 0
	for {
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: queue, Limit: 100, LockFor: time.Minute})
		if err != nil {
			t.Fatalf("claim while full: %v", err)
		}
		if len(jobs) == 0 {
			return done
		}
		vs := make([]store.Verdict, len(jobs))
		for i, j := range jobs {
			vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
		}
		errs, err := s.Settle(ctx, vs)
		if err != nil {
			t.Fatalf("settle while full: %v", err)
		}
		for _, err := range errs {
			if err != nil {
				t.Fatalf("settle while full: %v", err)
			}
		}
		done += len(jobs)
	}
}

// Past MaxSize, enqueues (also in a caller's transaction) are refused with
// ErrStoreFull while workers still claim and complete everything; once
// retention has deleted the finished jobs, enqueues succeed again.
func TestMaxSizeRefusesEnqueuesOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := sqlite.Open(path, sqlite.Config{MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	n, err := fill(t, s, "q")
	if !errors.Is(err, store.ErrStoreFull) || store.Code(err) != "store_full" {
		t.Fatalf("after %d jobs: got %v, want ErrStoreFull", n, err)
	}
	if !strings.Contains(err.Error(), "MaxSize") {
		t.Errorf("the error does not say which limit: %v", err)
	}

	db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueTx(ctx, tx, []store.EnqueueParams{{Kind: "k", Queue: "q"}}); !errors.Is(err, store.ErrStoreFull) {
		t.Errorf("EnqueueTx while full: got %v, want ErrStoreFull", err)
	}
	tx.Rollback() //nolint:errcheck // nothing to keep

	if got := drain(t, s, "q"); got != n {
		t.Fatalf("drained %d jobs, want %d", got, n)
	}
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}}); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("completed jobs still fill the store: got %v, want ErrStoreFull", err)
	}
	if _, err := s.Prune(ctx, store.PruneParams{CompletedBefore: time.Now().Add(time.Hour), Limit: 100_000}); err != nil {
		t.Fatalf("prune while full: %v", err)
	}
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}}); err != nil {
		t.Fatalf("enqueue after the store was drained and pruned: %v", err)
	}
}

// Below MinFreeDisk, enqueues are refused and claims go on; enqueues resume
// as soon as there is space again.
func TestMinFreeDiskRefusesEnqueuesOnly(t *testing.T) {
	t.Parallel()
	var free atomic.Int64
	free.Store(1 << 30)
	s, err := sqlite.OpenWithHooks(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{},
		sqlite.Hooks{FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}}); err != nil {
		t.Fatal(err)
	}
	free.Store(sqlite.DefaultMinFreeDisk - 1)
	_, err = fill(t, s, "q") // the verdict is cached: a few more may go in
	if !errors.Is(err, store.ErrStoreFull) || !strings.Contains(err.Error(), "MinFreeDisk") {
		t.Fatalf("with little free space: got %v, want ErrStoreFull naming MinFreeDisk", err)
	}
	drain(t, s, "q")
	free.Store(1 << 30)
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}}); err != nil {
		t.Fatalf("enqueue once space is back: %v", err)
	}
}

// SQLite's own "database or disk is full" on an enqueue is ErrStoreFull
// too, and the other ops of its group still commit, though SQLite rolls
// back the whole transaction for a one-row INSERT that hits the limit.
func TestSQLiteFullIsStoreFull(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"))
	ctx := context.Background()
	const n = 32
	ps := make([]store.EnqueueParams, n)
	for i := range ps {
		ps[i] = store.EnqueueParams{Kind: "k", Queue: "q"}
	}
	if _, err := s.Enqueue(ctx, ps); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Claim(ctx, store.ClaimParams{Queue: "q", Limit: n, LockFor: time.Minute})
	if err != nil || len(jobs) != n {
		t.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	// No page may be added: the limit is at least the current size.
	if err := sqlite.ExecOnWriter(s, "PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	enq, renew := make(chan error, n), make(chan error, n)
	for _, j := range jobs {
		go func() {
			_, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q", Payload: big}})
			enq <- err
		}()
		go func() {
			errs, err := s.Renew(ctx, []store.Renewal{{ID: j.ID, Token: j.LockToken, LockFor: time.Hour}})
			if err == nil {
				err = errs[0]
			}
			renew <- err
		}()
	}
	for range n {
		if err := <-enq; !errors.Is(err, store.ErrStoreFull) {
			t.Errorf("enqueue past SQLite's page limit: got %v, want ErrStoreFull", err)
		}
		if err := <-renew; err != nil {
			t.Errorf("renew beside it: %v", err)
		}
	}
	for _, j := range jobs {
		got, err := s.Get(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LockedUntil.After(time.Now().Add(30 * time.Minute)) {
			t.Errorf("job %s: the renewal answered nil did not land (locked until %v)", j.ID, got.LockedUntil)
		}
	}
	if err := sqlite.ExecOnWriter(s, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Payload: big}}); err != nil {
		t.Fatalf("enqueue once the limit is lifted: %v", err)
	}
}

// Open reports every mistake in a Config at once.
func TestOpenReportsEveryConfigMistake(t *testing.T) {
	t.Parallel()
	_, err := sqlite.Open("", sqlite.Config{BusyTimeout: -time.Second, MaxGroup: -1, Readers: -1, CacheMiB: -1, MaxSize: -1})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	for _, field := range []string{"path", "BusyTimeout", "MaxGroup", "Readers", "CacheMiB", "MaxSize"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("the error does not name %s: %v", field, err)
		}
	}
}

// The free-space floor is checked from a cached verdict, not with a statfs
// per enqueue.
func TestHeadroomIsNotMeasuredPerEnqueue(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	s, err := sqlite.OpenWithHooks(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{},
		sqlite.Hooks{FreeSpace: func(string) (int64, error) { calls.Add(1); return 1 << 40, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	start := time.Now()
	for range n {
		if _, err := s.Enqueue(context.Background(), []store.EnqueueParams{{Kind: "k"}}); err != nil {
			t.Fatal(err)
		}
	}
	// At most one measurement per 250 ms, plus the first.
	if got, most := calls.Load(), 2+int64(time.Since(start)/(250*time.Millisecond)); got > most {
		t.Fatalf("%d enqueues measured free space %d times, want at most %d", n, got, most)
	}
}

// A schedule's runs are jobs too: while the store is full, triggering (and
// firing) a schedule is refused with ErrStoreFull.
func TestFullStoreRefusesScheduleRuns(t *testing.T) {
	t.Parallel()
	var free atomic.Int64
	free.Store(1 << 40)
	s, err := sqlite.OpenWithHooks(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{},
		sqlite.Hooks{FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	res, err := s.UpsertSchedules(ctx, []store.Schedule{{ID: "t", Spec: "0 * * * *", Queue: "q", Kind: "k", Paused: true}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("upsert: %v %+v", err, res)
	}
	free.Store(0)
	if _, err := fill(t, s, "q"); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("got %v, want ErrStoreFull", err)
	}
	if _, err := s.TriggerSchedules(ctx, []store.ScheduleRef{{ID: "t"}}); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("trigger while full: got %v, want ErrStoreFull", err)
	}
	free.Store(1 << 40)
	tr, err := s.TriggerSchedules(ctx, []store.ScheduleRef{{ID: "t"}})
	if err != nil || tr[0].Err != nil {
		t.Fatalf("trigger once there is room: %v %+v", err, tr)
	}
}
