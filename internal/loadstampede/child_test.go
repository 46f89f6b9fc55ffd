package loadstampede

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/childenv"
	"github.com/spoolrun/spool/store"
	_ "github.com/spoolrun/spool/store/postgres"
	_ "github.com/spoolrun/spool/store/sqlite"
)

// The child's settings.
const (
	envChild   = "SPOOL_LOADER_CHILD"   // the store's URL; set: this process is a child
	envKey     = "SPOOL_LOADER_KEY"     // the key every goroutine asks for
	envClients = "SPOOL_LOADER_CLIENTS" // goroutines asking at once; default 250
	envLoad    = "SPOOL_LOADER_LOAD"    // how long the load takes; default 100ms
)

// report is what a child prints when its goroutines have their values.
type report struct {
	Loads   int64    `json:"loads"`   // loads this process ran
	OK      int      `json:"ok"`      // goroutines that got the right value
	Errors  []string `json:"errors"`  // what the others got
	Seconds float64  `json:"seconds"` // from "go" to the last value
}

// child is one process: a worker that runs loads and a Loader asked by
// many goroutines at once. It prints "ready", waits for a line on stdin,
// asks, prints its report and exits.
func child() int {
	if err := runChild(); err != nil {
		fmt.Fprintln(os.Stderr, "loader child:", err)
		return 1
	}
	return 0
}

func runChild() error {
	clients, err := childenv.Int(envClients, 250)
	if err != nil {
		return err
	}
	loadTime, err := childenv.Duration(envLoad, 100*time.Millisecond)
	if err != nil {
		return err
	}
	key := os.Getenv(envKey)
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv(envChild), store.OpenOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Logger: log,
		Queues: map[string]spool.QueueConfig{"loader": {Concurrency: 4}}})
	if err != nil {
		return err
	}
	var loads atomic.Int64
	spool.HandleLoads(w, "posts", func(ctx context.Context, key string) (string, error) {
		loads.Add(1)
		select {
		case <-time.After(loadTime):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "post " + key, nil
	}, nil)
	// A warm-up load of another name, so that the timed requests find
	// the process as a server's would be: connections open, worker polling.
	spool.HandleLoads(w, "warm", func(context.Context, string) (string, error) { return "warm", nil }, nil)
	l, err := spool.NewLoader(spool.LoaderConfig[string, string]{Client: client, Name: "posts", TTL: time.Hour})
	if err != nil {
		return err
	}
	defer l.Close()
	warm, err := spool.NewLoader(spool.LoaderConfig[string, string]{Client: client, Name: "warm", TTL: time.Hour})
	if err != nil {
		return err
	}
	defer warm.Close()
	if err := w.Start(ctx); err != nil {
		return err
	}
	if _, err := warm.Get(ctx, fmt.Sprint(os.Getpid())); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	r := report{}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := l.Get(ctx, key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				r.Errors = append(r.Errors, err.Error())
			case v != "post "+key:
				r.Errors = append(r.Errors, "wrong value "+v)
			default:
				r.OK++
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	// Every Get returned, so the one load has finished, wherever it ran.
	r.Loads = loads.Load()
	out, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
