package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spoolrun/spool/store"
)

// WorkerDriver keeps the workers online (store.WorkerStore). Its methods
// receive entries the engine has checked, with times in UTC and whole
// microseconds.
type WorkerDriver interface {
	// UpsertWorker stores w as it is, replacing the entry with its ID, and
	// deletes the entries whose expires_at is before w.SeenAt.
	UpsertWorker(ctx context.Context, w *store.WorkerInfo) error

	// ListWorkers returns the entries whose expires_at is after now, in ID
	// order (byte-wise).
	ListWorkers(ctx context.Context, now time.Time) ([]*store.WorkerInfo, error)

	// DeleteWorker deletes one entry, if there is one.
	DeleteWorker(ctx context.Context, id string) error
}

var _ store.WorkerStore = (*Store)(nil)

// workers returns the driver's worker storage, refusing a closed store.
func (e *Store) workers(ctx context.Context) (WorkerDriver, error) {
	if e.wd == nil {
		return nil, fmt.Errorf("%w: workers online", store.ErrUnsupported)
	}
	return e.wd, e.start(ctx)
}

// Heartbeat implements store.WorkerStore: the entry is checked (a refused
// one changes nothing), stamped with the store's clock, stored, and every
// expired entry is deleted in the same call.
func (e *Store) Heartbeat(ctx context.Context, w store.WorkerInfo, ttl time.Duration) (*store.WorkerInfo, error) {
	if err := w.Check(ttl); err != nil {
		return nil, err
	}
	wd, err := e.workers(ctx)
	if err != nil {
		return nil, err
	}
	out := w
	out.Queues = slices.Clone(w.Queues)
	now := keyTime(e.d.Now())
	out.SeenAt, out.ExpiresAt = now, keyTime(now.Add(ttl))
	out.StartedAt = keyTime(w.StartedAt)
	if out.StartedAt.IsZero() {
		out.StartedAt = now
	}
	if err := wd.UpsertWorker(ctx, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWorkers implements store.WorkerStore.
func (e *Store) ListWorkers(ctx context.Context) ([]*store.WorkerInfo, error) {
	wd, err := e.workers(ctx)
	if err != nil {
		return nil, err
	}
	return wd.ListWorkers(ctx, e.d.Now())
}

// RemoveWorker implements store.WorkerStore.
func (e *Store) RemoveWorker(ctx context.Context, id string) error {
	wd, err := e.workers(ctx)
	if err != nil {
		return err
	}
	if id == "" {
		return &store.ValidationError{Field: "worker id", Reason: "is required"}
	}
	return wd.DeleteWorker(ctx, id)
}

// EncodeWorkerQueues is a worker's queues as the backends store them: a
// JSON array, or nil for none.
func EncodeWorkerQueues(queues []string) []byte { return EncodeKeyQueues(queues) }

// DecodeWorkerQueues reads what EncodeWorkerQueues wrote for worker id.
func DecodeWorkerQueues(id string, b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var queues []string
	if err := json.Unmarshal(b, &queues); err != nil {
		return nil, fmt.Errorf("spool: worker %s: decode queues: %w", id, err)
	}
	if len(queues) == 0 {
		return nil, nil
	}
	return queues, nil
}

// EncodeMetadata is a job's metadata as the backends store it: a JSON
// object, or nil for none.
func EncodeMetadata(m map[string]string) []byte {
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m) //nolint:errchkjson // a map[string]string always marshals
	return b
}

// DecodeMetadata reads what EncodeMetadata wrote for job id; empty and
// null are none.
func DecodeMetadata(id store.ID, b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("spool: job %s: decode metadata: %w", id, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
