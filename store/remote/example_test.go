package remote_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	_ "github.com/spoolrun/spool/store/remote" // registers http:// and https:// with store.Open
	"github.com/spoolrun/spool/store/sqlite"
)

// Greet is the example's job kind.
var Greet = spool.NewKind[string]("greet")

// A Go worker attached to spool serve: it opens the store by the server's
// URL, as spool work --store http://HOST:PORT does, and works its jobs as
// it would a local store's. The API key goes in the URL's password
// (http://:spool_..._...@HOST:PORT) or in $SPOOL_API_KEY; this server runs
// without keys.
func Example() {
	// The server: what spool serve --insecure-no-auth runs, over a
	// temporary SQLite file. It also returns expired locks and fires
	// schedules, so the worker below leaves that to it.
	dir, err := os.MkdirTemp("", "spool-remote-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	served, err := sqlite.Open(filepath.Join(dir, "spool.db"), sqlite.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer served.Close()
	api, err := server.New(server.Config{Store: served, Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(api)
	defer hs.Close()
	defer api.Drain()

	// The worker's process: the store is the server's URL.
	ctx := context.Background()
	st, err := store.Open(ctx, hs.URL, store.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:       st,
		Queues:      map[string]spool.QueueConfig{"default": {Concurrency: 4}},
		Maintenance: spool.MaintenanceConfig{Disable: true},
		Scheduler:   spool.SchedulerConfig{Disable: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	spool.Handle(w, Greet, func(_ context.Context, t *spool.Task[string]) error {
		return t.SetResult("hello, " + t.Payload)
	}, nil)
	if err := w.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = w.Stop(stopCtx)
	}()

	// A producer, anywhere: the same URL.
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	res, err := Greet.Enqueue(ctx, client, "ada", nil)
	if err != nil {
		log.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	job, err := client.Wait(waitCtx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	greeting, err := spool.DecodeResult[string](job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.State, greeting)
	// Output:
	// completed hello, ada
}
