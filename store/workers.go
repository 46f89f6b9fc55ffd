package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WorkerStore is the capability of keeping the workers online
// (Capabilities.Workers): every running Worker — in a Go process, in
// `spool work`, or remote through spool serve — heartbeats its entry, and
// an entry whose worker stopped heartbeating expires.
type WorkerStore interface {
	// Heartbeat records w as online until TTL from now by the store's
	// clock, replacing the entry with w's ID, and returns the entry as
	// stored (SeenAt and ExpiresAt set by the store). It also deletes
	// entries that expired.
	Heartbeat(ctx context.Context, w WorkerInfo, ttl time.Duration) (*WorkerInfo, error)

	// ListWorkers returns the entries that have not expired, by ID.
	ListWorkers(ctx context.Context) ([]*WorkerInfo, error)

	// RemoveWorker deletes a worker's entry: a worker that stops says so.
	// Removing an entry that is not there is not an error.
	RemoveWorker(ctx context.Context, id string) error
}

// WorkerInfo is one worker online, as its heartbeats describe it.
type WorkerInfo struct {
	// ID names the worker: unique among the workers of a store (a Worker's
	// default is host-pid-random). Required; at most MaxKeyLen bytes.
	ID      string   `json:"id"`
	Host    string   `json:"host,omitempty"`
	PID     int      `json:"pid,omitempty"`
	Version string   `json:"version,omitempty"` // the build of Spool it runs
	Queues  []string `json:"queues,omitempty"`  // the queues it works, subscriptions' included
	// Tenant is the tenant whose queues the worker works through spool
	// serve ("" for a worker on the store itself or with an operator's key).
	Tenant string `json:"tenant,omitempty"`
	// Busy is how many handlers run now; Slots how many may (the sum of
	// the queues' Concurrency).
	Busy  int `json:"busy"`
	Slots int `json:"slots"`
	// StartedAt is when the worker started (its own clock); SeenAt its
	// latest heartbeat and ExpiresAt when its entry expires without
	// another (the store's clock).
	StartedAt time.Time `json:"started_at"`
	SeenAt    time.Time `json:"seen_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Limits on worker entries.
const (
	MaxWorkerQueues = 1_000 // queues one entry lists
	MinWorkerTTL    = time.Second
	MaxWorkerTTL    = 24 * time.Hour
)

// Check validates a heartbeat's entry and TTL, returning every mistake at
// once.
func (w *WorkerInfo) Check(ttl time.Duration) error {
	var errs []error
	if w.ID == "" {
		errs = append(errs, &ValidationError{Field: "worker id", Reason: "is required"})
	} else if err := validKey("worker id", w.ID); err != nil {
		errs = append(errs, err)
	}
	if len(w.Host) > MaxNameLen {
		errs = append(errs, &LimitError{Field: "worker host length", Limit: MaxNameLen, Got: len(w.Host)})
	} else if err := validKey("worker host", w.Host); err != nil {
		errs = append(errs, err)
	}
	if len(w.Version) > MaxNameLen {
		errs = append(errs, &LimitError{Field: "worker version length", Limit: MaxNameLen, Got: len(w.Version)})
	} else if err := validKey("worker version", w.Version); err != nil {
		errs = append(errs, err)
	}
	if err := ValidName("tenant", w.Tenant, true); err != nil {
		errs = append(errs, err)
	}
	if len(w.Queues) > MaxWorkerQueues {
		errs = append(errs, &LimitError{Field: "worker queues", Limit: MaxWorkerQueues, Got: len(w.Queues)})
	}
	for _, q := range w.Queues {
		if err := ValidName("worker queue", q, false); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if w.PID < 0 || w.Busy < 0 || w.Slots < 0 {
		errs = append(errs, &ValidationError{Field: "worker pid, busy, slots", Reason: "may not be negative"})
	}
	if ttl < MinWorkerTTL || ttl > MaxWorkerTTL {
		errs = append(errs, &ValidationError{Field: "worker ttl", Reason: fmt.Sprintf("%v is outside %v..%v", ttl, MinWorkerTTL, MaxWorkerTTL)})
	}
	return errors.Join(errs...)
}
