package spool_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/loader"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// loadFixture is a store (on clk, shared with the Client), a worker that
// runs the "posts" loads with load, and Loaders on it.
type loadFixture struct {
	t      *testing.T
	clk    *clockwork.FakeClock
	client *spool.Client
}

func newLoadFixture(t *testing.T, load func(ctx context.Context, key string) (string, error)) *loadFixture {
	t.Helper()
	clk := clockwork.NewFakeClockAt(time.Now())
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := spool.NewClient(spool.Config{Store: st, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"loader": {Concurrency: 8}}},
		func(w *spool.Worker) { spool.HandleLoads(w, "posts", load, nil) })
	return &loadFixture{t: t, clk: clk, client: c}
}

// loader returns a new Loader on the fixture's store: another node's.
func (f *loadFixture) loader(ttl time.Duration) *spool.Loader[string, string] {
	f.t.Helper()
	l, err := spool.NewLoader(spool.LoaderConfig[string, string]{Client: f.client, Name: "posts", TTL: ttl,
		Local: loader.Options[string, string]{ErrorTTL: -1}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(l.Close)
	return l
}

func (f *loadFixture) loadJobs() []*spool.Job {
	f.t.Helper()
	page, err := f.client.List(context.Background(), spool.ListParams{Kind: "loader.posts"})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Jobs
}

// Four loaders (four nodes' first levels) × 250 goroutines ask for one
// cold key: one load job, one load, everyone gets its value.
func TestLoaderStampede(t *testing.T) {
	t.Parallel()
	var loads atomic.Int32
	started, release := make(chan struct{}, 1), make(chan struct{})
	f := newLoadFixture(t, func(_ context.Context, key string) (string, error) {
		loads.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return "post " + key, nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 4 {
		l := f.loader(time.Hour)
		for range 250 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := l.Get(context.Background(), "hello")
				if err == nil && v != "post hello" {
					err = errors.New("wrong value " + v)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
	}
	// Let the load finish once it has started, with every request made
	// or on its way.
	<-started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads, want 1", n)
	}
	if jobs := f.loadJobs(); len(jobs) != 1 {
		t.Errorf("%d load jobs, want 1", len(jobs))
	}
	// A later request on a fresh node reads the stored value: no load.
	if v, err := f.loader(time.Hour).Get(context.Background(), "hello"); err != nil || v != "post hello" || loads.Load() != 1 {
		t.Errorf("later Get: %q, %v, loads %d", v, err, loads.Load())
	}
}

// After the TTL (by the store's clock) the next request loads again.
func TestLoaderTTL(t *testing.T) {
	t.Parallel()
	var loads atomic.Int32
	f := newLoadFixture(t, func(context.Context, string) (string, error) {
		return fmt.Sprintf("v%d", loads.Add(1)), nil
	})
	l := f.loader(time.Minute)
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "v1" {
		t.Fatalf("first: %q, %v", v, err)
	}
	f.clk.Advance(30 * time.Second)
	l.Invalidate("k") // past the first level: the stored value is still served
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "v1" {
		t.Fatalf("within the TTL: %q, %v", v, err)
	}
	f.clk.Advance(31 * time.Second)
	l.Invalidate("k")
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "v2" {
		t.Fatalf("after the TTL: %q, %v", v, err)
	}
	if jobs := f.loadJobs(); len(jobs) != 2 {
		t.Errorf("%d load jobs, want 2", len(jobs))
	}
}

// A load that fails for good is every waiter's *LoadError; the next
// request runs it again (the dead job is requeued), and it can succeed.
func TestLoaderFailedLoad(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	var loads atomic.Int32
	f := newLoadFixture(t, func(context.Context, string) (string, error) {
		loads.Add(1)
		if fail.Load() {
			return "", spool.DeadLetter(errors.New("source down"))
		}
		return "ok", nil
	})
	l := f.loader(time.Hour)
	_, err := l.Get(context.Background(), "k")
	var le *spool.LoadError
	if !errors.As(err, &le) || le.Message != "source down" {
		t.Fatalf("failed load: %v", err)
	}
	fail.Store(false)
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "ok" {
		t.Fatalf("after the failure: %q, %v", v, err)
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("%d loads, want 2", n)
	}
	if jobs := f.loadJobs(); len(jobs) != 1 {
		t.Errorf("%d load jobs, want the one, requeued", len(jobs))
	}
}

// A waiter whose context ends leaves; the load goes on for the others.
func TestLoaderWaiterLeaves(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	f := newLoadFixture(t, func(context.Context, string) (string, error) {
		started <- struct{}{}
		<-release
		return "v", nil
	})
	l := f.loader(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := l.Get(ctx, "k")
		left <- err
	}()
	<-started
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiter got %v", err)
	}
	close(release)
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "v" {
		t.Fatalf("another waiter: %q, %v", v, err)
	}
}

// Bad configuration is refused, all at once.
func TestLoaderConfig(t *testing.T) {
	t.Parallel()
	_, err := spool.NewLoader(spool.LoaderConfig[string, string]{TTL: -1})
	if !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("empty config: %v", err)
	}
	st, _ := openStore(t)
	_, err = spool.NewLoader(spool.LoaderConfig[string, string]{Client: newClient(t, st), Name: "x", TTL: store.MaxUniqueFor + 1})
	if !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("TTL too long: %v", err)
	}
}

// With StaleFor, a process that holds a value serves it past the TTL
// while one reload runs, and the reload's value afterwards.
func TestLoaderServesStaleWhileReloading(t *testing.T) {
	t.Parallel()
	var loads atomic.Int32
	release := make(chan struct{}, 1)
	f := newLoadFixture(t, func(context.Context, string) (string, error) {
		n := loads.Add(1)
		if n > 1 {
			<-release
		}
		return fmt.Sprintf("v%d", n), nil
	})
	l, err := spool.NewLoader(spool.LoaderConfig[string, string]{Client: f.client, Name: "posts", TTL: time.Minute,
		StaleFor: time.Hour, Local: loader.Options[string, string]{Clock: f.clk, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if v, err := l.Get(context.Background(), "k"); err != nil || v != "v1" {
		t.Fatalf("first: %q, %v", v, err)
	}
	f.clk.Advance(61 * time.Second) // past the TTL, within StaleFor
	for range 3 {
		if v, err := l.Get(context.Background(), "k"); err != nil || v != "v1" {
			t.Fatalf("while reloading: %q, %v", v, err)
		}
	}
	release <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		v, err := l.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if v == "v2" {
			break
		}
		select { // the reload runs in the background: look again when it may be done
		case <-ctx.Done():
			t.Fatal("the reload's value never came")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("%d loads, want 2", n)
	}
}
