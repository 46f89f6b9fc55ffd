package spool

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// Config configures a Client. Zero fields take the defaults documented on
// each; NewClient reports every mistake at once.
type Config struct {
	// Store is where jobs live, such as a *sqlite.Store. Required. The
	// Client does not own it: closing the store is the caller's job, after
	// the Client is no longer used.
	Store store.Store

	// Logger receives the Client's diagnostic logs (debug level only).
	// Default: a logger that discards everything.
	Logger *slog.Logger

	// Clock runs Wait's polling timer and checks items before they are
	// sent. Default: the real clock. In tests, use clockwork.NewFakeClock
	// (Wait then polls only when the fake time moves). The store, not the
	// Client, decides when a delayed job runs.
	Clock clockwork.Clock

	// Metrics, when set, counts the jobs the Client enqueues
	// (spool_jobs_enqueued_total) and times its enqueue calls. Default:
	// none.
	Metrics *Metrics
	// TracerProvider makes the spans of enqueues and publishes (a
	// "send QUEUE" span per call, following the OpenTelemetry messaging
	// conventions), whose W3C trace context is stored with each job (in
	// its metadata) and event (in its headers) so that its handler's span
	// joins the trace. Default: the global provider
	// (otel.GetTracerProvider), looked up on each call; while it is the
	// no-op one, tracing costs nothing measurable.
	TracerProvider trace.TracerProvider
}

// Client enqueues and inspects jobs. It is safe for concurrent use and holds
// no resources of its own, so there is nothing to close.
type Client struct {
	store   store.Store
	logger  *slog.Logger
	clock   clockwork.Clock
	metrics *Metrics // nil: count nothing
	tracer  *tracing.Tracer
}

// NewClient returns a Client for cfg. An invalid cfg gives errors matching
// ErrInvalid, all of them joined.
func NewClient(cfg Config) (*Client, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, &store.ValidationError{Field: "Config.Store", Reason: "is required"})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Client{
		store:   cfg.Store,
		logger:  cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		clock:   cfg.Clock,
		metrics: cfg.Metrics,
		tracer:  tracing.New(cfg.TracerProvider),
	}
	if c.clock == nil {
		c.clock = clockwork.NewRealClock()
	}
	return c, nil
}

// EnqueueMany adds items as jobs, all or nothing: if any item is invalid the
// call writes nothing and returns a *store.ItemError for each bad item
// (joined; each names the item's index and matches ErrInvalid). When it
// returns nil every job is durable. Results are in item order; an item whose
// unique key is held by a live job, or by an earlier item of the same call,
// gets that job's ID with Duplicate set (a finished job within its
// UniqueFor window holds its key too). No items is a no-op.
func (c *Client) EnqueueMany(ctx context.Context, items ...Item) ([]EnqueueResult, error) {
	return c.enqueue(ctx, nil, items)
}

// EnqueueTx adds items as jobs inside the caller's transaction tx, all or
// nothing like EnqueueMany: the jobs become visible, and durable, only when
// tx commits, and vanish if it rolls back. tx must be on the store's
// database. It returns ErrTxUnsupported when the store cannot enqueue in a
// caller's transaction (its Capabilities have no SQLTx).
func (c *Client) EnqueueTx(ctx context.Context, tx *sql.Tx, items ...Item) ([]EnqueueResult, error) {
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return c.enqueue(ctx, tx, items)
}

// enqueue sends items to the store, through tx when it is not nil.
func (c *Client) enqueue(ctx context.Context, tx *sql.Tx, items []Item) ([]EnqueueResult, error) {
	if c == nil {
		return nil, &store.ValidationError{Field: "client", Reason: "is nil"}
	}
	var txe store.SQLTxEnqueuer
	if tx != nil {
		if txe = c.store.Capabilities().SQLTx; txe == nil {
			return nil, ErrTxUnsupported
		}
	}
	if len(items) == 0 {
		return []EnqueueResult{}, nil
	}
	if err := store.CheckBatch(len(items)); err != nil {
		return nil, err
	}
	now := c.clock.Now()
	params := make([]store.EnqueueParams, len(items))
	itemErrs := make([]error, len(items))
	refused := false
	for i := range items {
		params[i], itemErrs[i] = items[i].params(now)
		refused = refused || itemErrs[i] != nil
	}
	if refused {
		// The store would refuse the other bad items too; name them all,
		// in item order, checking copies so nothing is sent.
		var errs []error
		for i, err := range itemErrs {
			if err == nil {
				cp := params[i]
				err = cp.Normalize(now)
			}
			if err != nil {
				errs = append(errs, &store.ItemError{Index: i, Err: err})
			}
		}
		return nil, errors.Join(errs...)
	}
	var (
		res []EnqueueResult
		err error
	)
	res, err = c.traceEnqueue(ctx, params, func(params []store.EnqueueParams) ([]EnqueueResult, error) {
		if tx != nil {
			return txe.EnqueueTx(ctx, tx, params)
		}
		return c.store.Enqueue(ctx, params)
	})
	if err != nil {
		return nil, err
	}
	if len(res) != len(params) {
		return nil, fmt.Errorf("spool: store returned %d results for %d jobs", len(res), len(params))
	}
	if m := c.metrics; m != nil {
		// In a caller's transaction the jobs count when enqueued, which
		// is before the caller commits (or rolls back); the call is not
		// timed, as its commit is the caller's.
		var took time.Duration
		if tx == nil {
			took = c.clock.Since(now)
		}
		m.ObserveEnqueue(params, res, took)
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "spool: enqueued", slog.Int("jobs", len(res)), slog.Bool("tx", tx != nil))
	return res, nil
}

// unwrapSingle strips the "item 0" wrapper from the error of a one-item
// enqueue, so single enqueues report the mistake itself.
func unwrapSingle(err error) error {
	var ie *store.ItemError
	if errors.As(err, &ie) && ie.Index == 0 {
		return ie.Err
	}
	return err
}

// Get returns the job with the given ID, or an error matching ErrNotFound
// when there is none (it never existed, or was pruned after finishing).
func (c *Client) Get(ctx context.Context, id ID) (*Job, error) {
	return c.store.Get(ctx, id)
}

// GetByUniqueKey returns the job of tenant ("" for none) with unique key
// key, to read its state and result after the fact: the job holding the
// key (a live one, or a finished one within its UniqueFor window: the job
// an enqueue of the key returns), else the most recently created finished
// job with the key. It gives an error matching ErrNotFound when no job has
// the key (or retention deleted them), and ErrInvalid for an empty key.
func (c *Client) GetByUniqueKey(ctx context.Context, tenant, key string) (*Job, error) {
	return c.store.GetByUniqueKey(ctx, tenant, key)
}

// List returns jobs matching p in enqueue order (newest first with
// p.Newest), one page at a time: pass the page's Next as p.After for the
// next page. p filters by queue, kind, tenant, states, unique and ordering
// key and creation time. Bad parameters give errors matching ErrInvalid.
func (c *Client) List(ctx context.Context, p ListParams) (*ListPage, error) {
	return c.store.List(ctx, p)
}

// Stats returns, for every queue that has jobs or settings, its counts by
// state (finished states counted up to store.StatsCountCap: see
// QueueStats.Capped), whether it is paused and the age of its oldest
// available job.
func (c *Client) Stats(ctx context.Context) ([]QueueStats, error) {
	return c.store.Stats(ctx)
}

// Cancel cancels live jobs; a running job is cancelled too and its worker's
// verdict is then refused. Jobs are handled independently: the ones that can
// be cancelled are, and each one that cannot gives a *JobError naming it,
// wrapping ErrNotFound or a *store.StateError (ErrWrongState) for a job that
// already finished. The errors are joined. No IDs is a no-op.
func (c *Client) Cancel(ctx context.Context, ids ...ID) error {
	errs, err := c.CancelEach(ctx, ids...)
	return joinEach(ids, errs, err, func(id ID, err error) error { return &JobError{ID: id, Err: err} })
}

// Requeue makes dead or cancelled jobs available again, with attempts and
// deliveries reset and their error history kept. Jobs are handled
// independently; each one refused gives a *JobError naming it, wrapping
// ErrNotFound, a *store.StateError (ErrWrongState) for a job that is live or
// completed, or ErrDuplicate when another job now holds its unique key (a
// live one, or a finished one within its UniqueFor window). The
// errors are joined. No IDs is a no-op.
func (c *Client) Requeue(ctx context.Context, ids ...ID) error {
	errs, err := c.RequeueEach(ctx, ids...)
	return joinEach(ids, errs, err, func(id ID, err error) error { return &JobError{ID: id, Err: err} })
}

// joinEach turns per-item answers into one error: the whole-call error
// err, or each refusal wrapped by wrap with its item, joined.
func joinEach[T any](items []T, res []error, err error, wrap func(T, error) error) error {
	if err != nil {
		return err
	}
	var errs []error
	for i, e := range res {
		if e != nil {
			errs = append(errs, wrap(items[i], e))
		}
	}
	return errors.Join(errs...)
}
