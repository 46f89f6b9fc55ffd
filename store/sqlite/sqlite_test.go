package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A group whose ops partly fail must commit the good ones and refuse only
// the bad: taken IDs fail their own Enqueue call, not their neighbours'.
func TestGroupCommitIsolatesFailingOps(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"))
	ctx := context.Background()
	taken := store.NewID()
	if _, err := s.Enqueue(ctx, []store.EnqueueParams{{ID: taken, Kind: "k"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := store.EnqueueParams{Kind: "k"}
			if i%8 == 0 {
				p.ID = taken
			}
			_, errs[i] = s.Enqueue(ctx, []store.EnqueueParams{p})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%8 == 0 {
			var ie *store.ItemError
			if !errors.As(err, &ie) || !errors.Is(err, store.ErrInvalid) {
				t.Errorf("enqueue %d with a taken id: got %v, want an *ItemError matching ErrInvalid", i, err)
			}
		} else if err != nil {
			t.Errorf("enqueue %d: %v", i, err)
		}
	}
	page, err := s.List(ctx, store.ListParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(page.Jobs), 1+64-8; got != want {
		t.Fatalf("jobs stored: got %d, want %d", got, want)
	}
}

// Two stores on one file, as two processes would have, share the work
// without errors from busy locks and never hand out a job twice.
func TestTwoStoresOnOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	a, b := open(t, path), open(t, path)
	ctx := context.Background()
	const n = 2000
	var wg sync.WaitGroup
	for _, s := range []*sqlite.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 2 / 50 {
				ps := make([]store.EnqueueParams, 50)
				for i := range ps {
					ps[i] = store.EnqueueParams{Kind: "k"}
				}
				if _, err := s.Enqueue(ctx, ps); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := make(map[store.ID]bool)
	var mu sync.Mutex
	for _, s := range []*sqlite.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := s.Claim(ctx, store.ClaimParams{Queue: "default", Limit: 37, LockFor: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if seen[j.ID] {
						t.Errorf("job %s claimed twice", j.ID)
					}
					seen[j.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d jobs, want %d", len(seen), n)
	}
}

// A file migrated by a newer build is refused, not misread.
func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path)
	s.Close()
	db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO spool_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(path, sqlite.Config{}); !errors.Is(err, store.ErrSchema) {
		t.Fatalf("got %v, want ErrSchema", err)
	}
}
