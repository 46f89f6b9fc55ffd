package peers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

const (
	asynqQueue = "default"
	asynqType  = "noop"
	// asynqProcessedKey is Asynq's total processed counter for the queue,
	// incremented by the same Redis script that acknowledges a task.
	asynqProcessedKey = "asynq:{" + asynqQueue + "}:processed"
	// asynqPoll is how often the processed counter is read.
	asynqPoll = 5 * time.Millisecond
)

// Asynq is Asynq (github.com/hibiken/asynq) on Redis, in a Redis database
// of its own that is flushed before and after each workload.
type Asynq struct {
	Addr string // host:port of Redis
	DB   int    // the dedicated database number, flushed

	version string // redis_version, once probed
	durable bool
	durab   string
	caveat  string

	opt    asynq.RedisClientOpt
	rdb    *redis.Client // the harness's own connection: flush, observe
	client *asynq.Client
	srv    *asynq.Server

	pollStop chan struct{}
	pollWG   sync.WaitGroup
}

func (a *Asynq) Name() string { return "Asynq (Redis)" }

func (a *Asynq) Info() Info {
	server := "Redis"
	if a.version != "" {
		server += " " + a.version
	}
	return Info{
		Version:    moduleVersion("github.com/hibiken/asynq"),
		Server:     server,
		Durable:    a.durable,
		Durability: a.durab,
		Caveat:     a.caveat,
		Settings:   "Concurrency=workers; TaskCheckInterval=20ms (default 1s, polled only when the queue is empty; the same as River's FetchPollInterval); batches as that many concurrent Enqueue calls (Asynq has no batch enqueue)",
		Completion: fmt.Sprintf("Asynq's processed counter, incremented in the Redis script that acknowledges a task, read every %v", asynqPoll),
	}
}

func (a *Asynq) redisClient() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: a.Addr, DB: a.DB})
}

func (a *Asynq) Probe(ctx context.Context) error {
	rdb := a.redisClient()
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return unreachable(a.Addr, err)
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			a.version = v
		}
	}
	cfg := map[string]string{}
	for _, k := range []string{"save", "appendonly", "appendfsync"} {
		kv, err := rdb.ConfigGet(ctx, k).Result()
		if err != nil {
			return fmt.Errorf("config get %s: %w", k, err)
		}
		cfg[k] = kv[k]
	}
	switch {
	case cfg["appendonly"] == "yes" && cfg["appendfsync"] == "always":
		a.durable, a.durab, a.caveat = true, "fsync per write (appendonly yes, appendfsync always)", ""
	case cfg["appendonly"] == "yes":
		a.durab = "append-only file, fsync " + cfg["appendfsync"] + " (appendfsync=" + cfg["appendfsync"] + ")"
		a.caveat = "no fsync per write"
	case cfg["save"] == "":
		a.durab = "memory only: this Redis keeps nothing on disk (save \"\", appendonly no)"
		a.caveat = "memory only"
	default:
		a.durab = "periodic snapshots only (save " + cfg["save"] + ", appendonly no)"
		a.caveat = "snapshots only"
	}
	return nil
}

func (a *Asynq) Open(ctx context.Context, workers int) error {
	a.opt = asynq.RedisClientOpt{Addr: a.Addr, DB: a.DB}
	a.rdb = a.redisClient()
	if err := a.rdb.FlushDB(ctx).Err(); err != nil {
		a.rdb.Close()
		a.rdb = nil
		return fmt.Errorf("flushdb %d: %w", a.DB, err)
	}
	a.client = asynq.NewClient(a.opt)
	a.srv = asynq.NewServer(a.opt, asynq.Config{
		Concurrency:       workers,
		TaskCheckInterval: 20 * time.Millisecond,
		Queues:            map[string]int{asynqQueue: 1},
		LogLevel:          asynq.ErrorLevel,
		ShutdownTimeout:   10 * time.Second,
	})
	return nil
}

func (a *Asynq) Enqueue(ctx context.Context, payloads [][]byte) error {
	if a.client == nil {
		return notOpen(a.Name())
	}
	if len(payloads) == 1 {
		_, err := a.client.EnqueueContext(ctx, asynq.NewTask(asynqType, payloads[0]), asynq.Queue(asynqQueue))
		return err
	}
	var g errgroup.Group
	for _, p := range payloads {
		g.Go(func() error {
			_, err := a.client.EnqueueContext(ctx, asynq.NewTask(asynqType, p), asynq.Queue(asynqQueue))
			return err
		})
	}
	return g.Wait()
}

func (a *Asynq) Start(ctx context.Context, w Work) error {
	if a.srv == nil {
		return notOpen(a.Name())
	}
	base, err := a.processed(ctx)
	if err != nil {
		return err
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(asynqType, func(_ context.Context, t *asynq.Task) error {
		w.Started(t.Payload())
		return nil
	})
	a.pollStop = make(chan struct{})
	stop := a.pollStop
	a.pollWG.Go(func() { a.observe(w, base, stop) })
	if err := a.srv.Start(mux); err != nil {
		close(a.pollStop)
		a.pollWG.Wait()
		a.pollStop = nil
		return err
	}
	return nil
}

// observe reports the growth of the processed counter until stop closes,
// reading it once more at the end.
func (a *Asynq) observe(w Work, seen int64, stop <-chan struct{}) {
	tick := time.NewTicker(asynqPoll)
	defer tick.Stop()
	read := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if n, err := a.processed(ctx); err == nil && n > seen {
			w.Completed(int(n - seen))
			seen = n
		}
	}
	for {
		select {
		case <-tick.C:
			read()
		case <-stop:
			read()
			return
		}
	}
}

func (a *Asynq) processed(ctx context.Context) (int64, error) {
	n, err := a.rdb.Get(ctx, asynqProcessedKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

func (a *Asynq) Stop(context.Context) error {
	if a.srv == nil || a.pollStop == nil {
		return nil
	}
	a.srv.Shutdown()
	close(a.pollStop)
	a.pollWG.Wait()
	a.pollStop = nil
	return nil
}

func (a *Asynq) Remaining(ctx context.Context) (int, error) {
	if a.rdb == nil {
		return 0, notOpen(a.Name())
	}
	insp := asynq.NewInspectorFromRedisClient(a.rdb)
	q, err := insp.GetQueueInfo(asynqQueue)
	if err != nil {
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil
		}
		return 0, err
	}
	return q.Pending + q.Active + q.Scheduled + q.Retry + q.Archived + q.Aggregating, nil
}

func (a *Asynq) Close(ctx context.Context) error {
	if a.rdb == nil {
		return nil
	}
	err := a.Stop(ctx)
	if a.client != nil {
		err = errors.Join(err, a.client.Close())
	}
	err = errors.Join(err, a.rdb.FlushDB(ctx).Err(), a.rdb.Close())
	a.rdb, a.client, a.srv = nil, nil, nil
	return err
}
