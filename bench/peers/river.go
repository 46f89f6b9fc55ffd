package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River is River (github.com/riverqueue/river) with its pgx v5 driver, in a
// fresh database per workload, migrated with rivermigrate.
//
// It is configured as River's own benchmark (`river bench`) configures it
// for throughput: FetchCooldown 2ms and FetchPollInterval 20ms. MaxWorkers
// is the harness's worker count, like every other system's.
type River struct {
	pg *pgServer

	db     string
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	work   atomic.Pointer[Work] // the harness's callbacks, set by Start

	subCancel func()
	subDone   chan struct{} // closed to end the event reader
	subWG     sync.WaitGroup
}

// NewRiver returns River on the PostgreSQL server that adminURL points to.
func NewRiver(adminURL string) *River { return &River{pg: &pgServer{adminURL: adminURL}} }

func (r *River) Name() string { return "River (PostgreSQL)" }

func (r *River) Info() Info {
	durable, text, caveat := r.pg.durability()
	return Info{
		Version:    moduleVersion("github.com/riverqueue/river"),
		Server:     r.pg.serverName(),
		Durable:    durable,
		Durability: text,
		Caveat:     caveat,
		Settings:   "FetchCooldown=2ms, FetchPollInterval=20ms (as `river bench`), MaxWorkers=workers; InsertManyFast (COPY) for batches, Insert for single jobs; pgxpool default size",
		Completion: "JobCompleted event from a subscription (sent after River's batch completer has committed)",
	}
}

func (r *River) Probe(ctx context.Context) error { return r.pg.probe(ctx) }

// riverArgs carries the harness's payload as the job's args, byte for byte.
type riverArgs struct{ raw json.RawMessage }

func (riverArgs) Kind() string                    { return "noop" }
func (a riverArgs) MarshalJSON() ([]byte, error)  { return a.raw, nil }
func (a *riverArgs) UnmarshalJSON(b []byte) error { a.raw = append(a.raw[:0], b...); return nil }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	work *atomic.Pointer[Work]
}

func (w *riverWorker) Work(_ context.Context, job *river.Job[riverArgs]) error {
	if wk := w.work.Load(); wk != nil {
		wk.Started(job.EncodedArgs)
	}
	return nil
}

func (r *River) Open(ctx context.Context, workers int) (err error) {
	name, url, err := r.pg.createDB(ctx, "river_bench")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if r.pool != nil {
				r.pool.Close()
				r.pool = nil
			}
			err = errors.Join(err, r.pg.dropDB(context.WithoutCancel(ctx), name))
		}
	}()
	r.pool, err = pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	driver := riverpgxv5.New(r.pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	r.work.Store(nil)
	ws := river.NewWorkers()
	river.AddWorker(ws, &riverWorker{work: &r.work})
	r.client, err = river.NewClient(driver, &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers:           ws,
	})
	if err != nil {
		return err
	}
	r.db = name
	return nil
}

func (r *River) Enqueue(ctx context.Context, payloads [][]byte) error {
	if r.client == nil {
		return notOpen(r.Name())
	}
	if len(payloads) == 1 {
		_, err := r.client.Insert(ctx, riverArgs{raw: payloads[0]}, nil)
		return err
	}
	params := make([]river.InsertManyParams, len(payloads))
	for i, p := range payloads {
		params[i] = river.InsertManyParams{Args: riverArgs{raw: p}}
	}
	n, err := r.client.InsertManyFast(ctx, params)
	if err == nil && n != len(params) {
		err = fmt.Errorf("InsertManyFast inserted %d of %d", n, len(params))
	}
	return err
}

func (r *River) Start(ctx context.Context, w Work) error {
	if r.client == nil {
		return notOpen(r.Name())
	}
	r.work.Store(&w)
	events, cancel := r.client.SubscribeConfig(&river.SubscribeConfig{
		// Large enough that a burst of completions is never dropped.
		ChanSize: 1 << 18,
		Kinds:    []river.EventKind{river.EventKindJobCompleted},
	})
	r.subCancel = cancel
	r.subDone = make(chan struct{})
	done := r.subDone
	r.subWG.Go(func() {
		count := func(ev *river.Event) {
			if ev != nil && ev.Kind == river.EventKindJobCompleted {
				w.Completed(1)
			}
		}
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				count(ev)
			case <-done:
				for { // count what is already buffered, then leave
					select {
					case ev, ok := <-events:
						if !ok {
							return
						}
						count(ev)
					default:
						return
					}
				}
			}
		}
	})
	if err := r.client.Start(ctx); err != nil {
		r.stopEvents()
		return err
	}
	return nil
}

func (r *River) stopEvents() {
	if r.subDone == nil {
		return
	}
	close(r.subDone)
	r.subWG.Wait()
	r.subCancel()
	r.subDone = nil
}

func (r *River) Stop(ctx context.Context) error {
	if r.client == nil || r.subDone == nil {
		return nil
	}
	err := r.client.Stop(ctx)
	r.stopEvents()
	return err
}

func (r *River) Remaining(ctx context.Context) (int, error) {
	if r.pool == nil {
		return 0, notOpen(r.Name())
	}
	var n int
	err := r.pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE state <> 'completed'").Scan(&n)
	return n, err
}

func (r *River) Close(ctx context.Context) error {
	if r.pool == nil {
		return nil
	}
	err := r.Stop(ctx)
	r.pool.Close()
	r.pool, r.client = nil, nil
	err = errors.Join(err, r.pg.dropDB(ctx, r.db))
	r.db = ""
	return err
}
