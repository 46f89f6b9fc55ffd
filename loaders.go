package spool

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/loader"
	"github.com/spoolrun/spool/store"
)

// LoaderConfig configures a Loader. Zero fields take the defaults given.
type LoaderConfig[K comparable, V any] struct {
	// Client is the store the loads go through. Required.
	Client *Client
	// Name names the loads, as HandleLoads does on the workers that run
	// them: their kind is "loader.NAME" and their unique keys
	// "loader:NAME:KEY". Required.
	Name string
	// Queue is where the load jobs go. Default "loader".
	Queue string
	// Tenant is the tenant of the load jobs. Default: none.
	Tenant string
	// TTL is how long a loaded value is served, on every node, before the
	// next request loads it again: the load job holds its unique key this
	// long (EnqueueOptions.UniqueFor), and its result is the value.
	// Default 1 minute; at most 30 days.
	TTL time.Duration
	// WaitTimeout bounds how long a request waits for a load running
	// anywhere. Default 30s.
	WaitTimeout time.Duration
	// MaxAttempts is each load job's; a load that fails them all is
	// dead, and its error is every waiter's. Default 3.
	MaxAttempts int
	// StaleFor lets a process that holds a value serve it for this long
	// past its TTL while one reload runs: the first request after the TTL
	// starts the reload (one job across every process) in the background
	// and gets the old value at once, as do the requests after it until
	// the reload is done. It sets the first level's RefreshAfter to TTL
	// and its TTL to TTL+StaleFor. Default 0: after the TTL, requests wait
	// for the reload.
	StaleFor time.Duration
	// Local configures the first level, an in-process loader.Loader in
	// front of the store: concurrent requests of this process for one key
	// make one request of the store, and a value is kept here for
	// Local.TTL (default a tenth of TTL, so a value is at most 1.1 × TTL
	// old). Its load function is the Loader's own.
	Local loader.Options[K, V]
}

// Loader is a read-through loader shared by every process on a store: the
// first request for a key anywhere enqueues one load job (unique per key);
// every concurrent request, on any node, waits for that job and gets its
// result; later requests read the result until TTL. The loads run on any
// worker that has HandleLoads for the name, in any process (or language,
// through spool serve: the job's payload is the key in JSON, its result
// the value in JSON). docs/loader.md has the guarantees.
type Loader[K comparable, V any] struct {
	cfg   LoaderConfig[K, V]
	kind  string
	local *loader.Loader[K, V]
}

// NewLoader returns a Loader.
func NewLoader[K comparable, V any](cfg LoaderConfig[K, V]) (*Loader[K, V], error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, &store.ValidationError{Field: "LoaderConfig.Client", Reason: "is required"})
	}
	if cfg.Name == "" {
		errs = append(errs, &store.ValidationError{Field: "LoaderConfig.Name", Reason: "is required"})
	}
	if cfg.TTL < 0 || cfg.WaitTimeout < 0 || cfg.MaxAttempts < 0 || cfg.StaleFor < 0 {
		errs = append(errs, &store.ValidationError{Field: "LoaderConfig", Reason: "TTL, WaitTimeout, MaxAttempts and StaleFor may not be negative"})
	}
	cfg.Queue = cmp.Or(cfg.Queue, "loader")
	cfg.TTL = cmp.Or(cfg.TTL, time.Minute)
	cfg.WaitTimeout = cmp.Or(cfg.WaitTimeout, 30*time.Second)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 3)
	if cfg.TTL > store.MaxUniqueFor {
		errs = append(errs, &store.ValidationError{Field: "LoaderConfig.TTL", Reason: fmt.Sprintf("%v is over %v", cfg.TTL, store.MaxUniqueFor)})
	}
	kind := loadKind(cfg.Name)
	errs = append(errs, ValidKindName(kind), store.ValidName("queue", cfg.Queue, false))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	l := &Loader[K, V]{cfg: cfg, kind: kind}
	local := cfg.Local
	if cfg.StaleFor > 0 {
		local.TTL, local.RefreshAfter = cfg.TTL+cfg.StaleFor, cfg.TTL
	}
	local.TTL = cmp.Or(local.TTL, cfg.TTL/10)
	local.LoadTimeout = cmp.Or(local.LoadTimeout, cfg.WaitTimeout)
	var err error
	if l.local, err = loader.New(l.load, local); err != nil {
		return nil, err
	}
	return l, nil
}

// loadKind is the kind of the load jobs of the loader named name.
func loadKind(name string) string { return "loader." + name }

// Get returns the value of key: from this process's first level, else
// the stored result of the key's load job, else it enqueues the load (or
// joins the one running anywhere) and waits for it. A load that failed for
// good gives a *LoadError; a waiter whose ctx ends returns ctx.Err()
// without stopping the load for the others.
func (l *Loader[K, V]) Get(ctx context.Context, key K) (V, error) {
	return l.local.Get(ctx, key)
}

// Invalidate forgets key in this process's first level; the stored value
// is served to the next request until its TTL.
func (l *Loader[K, V]) Invalidate(key K) { l.local.Invalidate(key) }

// Stats returns the first level's counters.
func (l *Loader[K, V]) Stats() loader.Stats { return l.local.Stats() }

// Close stops the first level's background work.
func (l *Loader[K, V]) Close() { l.local.Close() }

// LoadError is a load that failed for good: its job is dead (or was
// cancelled) with this error. Requests within the TTL after it start the
// load again (the dead job is requeued), at most once per first level's
// ErrorTTL per process.
type LoadError struct {
	Job     ID
	Message string
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("spool: load %s failed: %s", e.Job, e.Message)
}

// load is the first level's load: enqueue the key's load job (or find the
// one holding its key) and wait for its result.
func (l *Loader[K, V]) load(ctx context.Context, key K) (V, error) {
	var zero V
	payload, unique, err := l.encodeKey(key)
	if err != nil {
		return zero, err
	}
	// A value loaded within the TTL, on any node: read it, no write.
	if job, err := l.cfg.Client.GetByUniqueKey(ctx, l.cfg.Tenant, unique); err == nil &&
		job.State == StateCompleted && job.UniqueUntil.After(l.cfg.Client.clock.Now()) {
		return DecodeResult[V](job)
	}
	res, err := l.cfg.Client.EnqueueMany(ctx, RawItem(l.kind, payload, &EnqueueOptions{
		Queue: l.cfg.Queue, Tenant: l.cfg.Tenant, UniqueKey: unique, UniqueFor: l.cfg.TTL, MaxAttempts: l.cfg.MaxAttempts}))
	if err != nil {
		return zero, err
	}
	id := res[0].ID
	if res[0].State == StateDead || res[0].State == StateCancelled {
		// The load failed within the TTL: run it again, once, however
		// many ask (a requeue of a job already available is refused).
		if err := l.cfg.Client.Requeue(ctx, id); err != nil && !errors.Is(err, ErrWrongState) {
			return zero, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, l.cfg.WaitTimeout)
	defer cancel()
	job, err := l.cfg.Client.Wait(wctx, id)
	if err != nil {
		return zero, err
	}
	if job.State != StateCompleted {
		msg := string(job.State)
		if n := len(job.Errors); n > 0 {
			msg = job.Errors[n-1].Message
		}
		return zero, &LoadError{Job: job.ID, Message: msg}
	}
	return DecodeResult[V](job)
}

// encodeKey returns the payload of key's load job (the key in JSON) and
// its unique key: loader:NAME:JSON, or the JSON's SHA-256 when that would
// be too long.
func (l *Loader[K, V]) encodeKey(key K) ([]byte, string, error) {
	b, err := json.Marshal(key)
	if err != nil {
		return nil, "", fmt.Errorf("spool: encode loader key: %w", err)
	}
	unique := "loader:" + l.cfg.Name + ":" + string(b)
	if len(unique) > store.MaxKeyLen {
		sum := sha256.Sum256(b)
		unique = "loader:" + l.cfg.Name + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return b, unique, nil
}

// HandleLoads registers load on w as the runner of the loads of the
// Loader named name: the job's payload is the key, and load's value,
// JSON-encoded, its result. An error fails the attempt, retried per the
// handler's policy until the Loader's MaxAttempts.
func HandleLoads[K comparable, V any](w *Worker, name string, load func(ctx context.Context, key K) (V, error), opts *HandlerOptions) {
	Handle(w, NewKind[K](loadKind(name)), func(ctx context.Context, t *Task[K]) error {
		v, err := load(ctx, t.Payload)
		if err != nil {
			return err
		}
		return t.SetResult(v)
	}, opts)
}
