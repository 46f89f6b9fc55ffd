package spool

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// EnqueueOptions say where and when a job runs. A nil *EnqueueOptions, and
// every zero field, means the default documented on the field.
type EnqueueOptions struct {
	// Queue is the lane the job waits in; workers claim from named queues.
	// Default "default". Letters, digits and . _ : / -, at most 128 bytes.
	Queue string

	// Priority orders jobs within a queue: lower runs first. Default 0;
	// allowed -100..100.
	Priority int

	// Delay postpones the job: it becomes available no earlier than Delay
	// after the enqueue, by the store's clock (the database's on
	// PostgreSQL, so a producer whose clock is off does not shift it).
	// Default 0, run as soon as possible. Negative delays are refused, and
	// so is setting both Delay and RunAt.
	Delay time.Duration

	// RunAt is when the job becomes available. Default (zero): now. A time in
	// the past also means now. Set Delay or RunAt, not both.
	RunAt time.Time

	// UniqueKey deduplicates: while a live (scheduled, available or running)
	// job of the same Tenant holds this key, enqueueing another returns the
	// existing job with EnqueueResult.Duplicate set and inserts nothing.
	// Default "": no deduplication. At most 255 bytes of UTF-8.
	UniqueKey string

	// UniqueFor makes the job hold UniqueKey for this long after its
	// creation (by the store's clock), even once it has finished: within
	// the window, enqueueing the key again returns this job, completed,
	// cancelled or dead, with Duplicate set, so a retried request does not
	// run the work twice and its result can be read back
	// (Client.GetByUniqueKey, DecodeResult). After the window a new job is
	// made. The window is the job's own, kept as Job.UniqueUntil; a
	// duplicate's UniqueFor changes nothing. Retention still deletes the
	// finished job on its own schedule, and a deleted job holds nothing:
	// keep retention longer than the window. Default 0: only a live job
	// holds the key. Needs UniqueKey; at most 30 days (store.MaxUniqueFor).
	UniqueFor time.Duration

	// Tenant partitions jobs for fairness and access scoping; unique keys and
	// ordering keys are scoped by it. Default "": no tenant.
	Tenant string

	// OrderingKey serialises jobs: at most one job per (Tenant, OrderingKey)
	// runs at a time, in enqueue order. Default "": no ordering constraint.
	// At most 255 bytes of UTF-8.
	OrderingKey string

	// MaxAttempts is how many failed executions the job may have before it
	// is dead-lettered. Default 25; allowed 1..10000.
	MaxAttempts int

	// MaxDeliveries is how many times the job may be claimed, counting
	// claims lost to crashes or expired locks, before it is dead-lettered
	// (poison-message protection). Default 10; allowed 1..10000.
	MaxDeliveries int

	// Metadata is a small map of strings kept with the job and handed to
	// its handler as Job.Metadata, such as a correlation ID. When tracing
	// is on, the Client adds the W3C trace context of its send span
	// (traceparent, tracestate) unless Metadata has a traceparent already.
	// At most 16 entries of 4 KiB in all (store.MaxMetadata,
	// store.MaxMetadataBytes). The map is not modified.
	Metadata map[string]string
}

// Item is one job ready to be enqueued with Client.EnqueueMany or
// Client.EnqueueTx. Build it with Kind.Item for typed payloads or RawItem
// for bytes; the zero Item has no kind and is refused at enqueue.
type Item struct {
	kind    string
	payload []byte
	opts    EnqueueOptions
	err     error // from marshalling the payload; reported at enqueue
}

// RawItem returns an Item of the given kind whose payload is taken as is
// (usually JSON, at most 1 MiB; nil is allowed). The kind is validated when
// the item is enqueued. The payload is not copied: do not modify it until the
// item has been enqueued. opts may be nil.
func RawItem(kind string, payload []byte, opts *EnqueueOptions) Item {
	it := Item{kind: kind, payload: payload}
	if opts != nil {
		it.opts = *opts
	}
	return it
}

// Kind returns the item's kind name.
func (it Item) Kind() string { return it.kind }

// params turns the item into store parameters, checking what only the client
// knows about (the payload encoding). The store validates the rest.
func (it *Item) params(now time.Time) (store.EnqueueParams, error) {
	p := store.EnqueueParams{
		Queue:         it.opts.Queue,
		Kind:          it.kind,
		Payload:       it.payload,
		Priority:      it.opts.Priority,
		RunAt:         it.opts.RunAt,
		Delay:         it.opts.Delay,
		Tenant:        it.opts.Tenant,
		UniqueKey:     it.opts.UniqueKey,
		UniqueFor:     it.opts.UniqueFor,
		OrderingKey:   it.opts.OrderingKey,
		MaxAttempts:   it.opts.MaxAttempts,
		MaxDeliveries: it.opts.MaxDeliveries,
		Metadata:      it.opts.Metadata,
	}
	if it.err == nil {
		return p, nil
	}
	errs := []error{it.err}
	// Report the store's objections too, so every mistake shows at once.
	// Normalize works on a copy; the real parameters are never sent.
	cp := p
	errs = append(errs, cp.Normalize(now))
	return p, errors.Join(errs...)
}

// Kind is a job type with a typed payload T, encoded as JSON. Declare one per
// job type, usually as a package-level variable, and use it both to enqueue
// and, in handlers, to decode:
//
//	var SendEmail = spool.NewKind[Email]("email.send")
//
// The zero Kind has no name and its enqueues are refused.
type Kind[T any] struct {
	name string
}

// NewKind returns the Kind with the given name. It cannot fail: the name
// (1..128 bytes of letters, digits and . _ : / -) is validated when a job is
// enqueued, where a bad name gives a *store.ValidationError matching
// ErrInvalid. Use ValidKindName to check a name up front.
func NewKind[T any](name string) Kind[T] { return Kind[T]{name: name} }

// ValidKindName reports why name cannot be a kind name, or nil.
func ValidKindName(name string) error { return store.ValidName("kind", name, false) }

// Name returns the kind's name, as stored in Job.Kind.
func (k Kind[T]) Name() string { return k.name }

// Item returns payload as an Item of this kind, for Client.EnqueueMany and
// Client.EnqueueTx. A payload that cannot be encoded as JSON is reported
// when the item is enqueued. opts may be nil.
func (k Kind[T]) Item(payload T, opts *EnqueueOptions) Item {
	it := RawItem(k.name, nil, opts)
	it.payload, it.err = json.Marshal(payload)
	if it.err != nil {
		it.err = &store.ValidationError{Field: "payload", Reason: "cannot encode as JSON: " + it.err.Error()}
	}
	return it
}

// Enqueue adds one job of this kind through c. When it returns nil the job is
// durable. Invalid input gives an error matching ErrInvalid and writes
// nothing; the job holding the same unique key (a live one, or a finished
// one within its UniqueFor window) is returned with Duplicate set. opts may
// be nil.
func (k Kind[T]) Enqueue(ctx context.Context, c *Client, payload T, opts *EnqueueOptions) (EnqueueResult, error) {
	res, err := c.enqueue(ctx, nil, []Item{k.Item(payload, opts)})
	if err != nil {
		return EnqueueResult{}, unwrapSingle(err)
	}
	return res[0], nil
}

// EnqueueTx adds one job of this kind inside the caller's transaction tx: the
// job becomes visible, and durable, only when tx commits, and disappears if
// tx rolls back. tx must be on the store's database. It returns
// ErrTxUnsupported when c's store cannot do this. opts may be nil.
func (k Kind[T]) EnqueueTx(ctx context.Context, c *Client, tx *sql.Tx, payload T, opts *EnqueueOptions) (EnqueueResult, error) {
	res, err := c.enqueue(ctx, tx, []Item{k.Item(payload, opts)})
	if err != nil {
		return EnqueueResult{}, unwrapSingle(err)
	}
	return res[0], nil
}

// Decode returns job's payload as a T. It refuses a nil job, and a job of
// another kind, with an error matching ErrInvalid. An empty payload decodes
// to the zero T.
func (k Kind[T]) Decode(job *Job) (T, error) {
	var v T
	if job == nil {
		return v, &store.ValidationError{Field: "job", Reason: "is nil"}
	}
	if job.Kind != k.name {
		return v, &store.ValidationError{Field: "kind", Reason: fmt.Sprintf("job %s is of kind %q, not %q", job.ID, job.Kind, k.name)}
	}
	if len(job.Payload) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(job.Payload, &v); err != nil {
		return v, fmt.Errorf("spool: decode payload of job %s (%s): %w", job.ID, job.Kind, err)
	}
	return v, nil
}

// DecodeResult returns a completed job's result as an R (results are JSON).
// A job that is not completed gives a *store.StateError matching
// ErrWrongState; a nil job an error matching ErrInvalid. A completed job
// without a result decodes to the zero R.
func DecodeResult[R any](job *Job) (R, error) {
	var v R
	if job == nil {
		return v, &store.ValidationError{Field: "job", Reason: "is nil"}
	}
	if job.State != StateCompleted {
		return v, &store.StateError{ID: job.ID, State: job.State, Op: "read the result of"}
	}
	if len(job.Result) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(job.Result, &v); err != nil {
		return v, fmt.Errorf("spool: decode result of job %s (%s): %w", job.ID, job.Kind, err)
	}
	return v, nil
}
