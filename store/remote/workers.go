package remote

import (
	"context"
	"net/http"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The workers online, through spool serve's /v1/workers routes: a Worker
// attached to a remote store heartbeats like one on the database. With a
// tenant's key, the server records the tenant and keeps its workers apart
// from other tenants'.

var _ store.WorkerStore = (*Store)(nil)

// Heartbeat implements store.WorkerStore (POST /v1/workers/heartbeat).
func (s *Store) Heartbeat(ctx context.Context, w store.WorkerInfo, ttl time.Duration) (*store.WorkerInfo, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := w.Check(ttl); err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: "/v1/workers/heartbeat", body: wire.HeartbeatOf(w, ttl)}
	var v wire.Worker
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	return v.StoreWorker(), nil
}

// ListWorkers implements store.WorkerStore (GET /v1/workers).
func (s *Store) ListWorkers(ctx context.Context) ([]*store.WorkerInfo, error) {
	var v wire.WorkerList
	if err := s.do(ctx, request{method: http.MethodGet, path: "/v1/workers"}, &v); err != nil {
		return nil, err
	}
	out := make([]*store.WorkerInfo, len(v.Workers))
	for i := range v.Workers {
		out[i] = v.Workers[i].StoreWorker()
	}
	return out, nil
}

// RemoveWorker implements store.WorkerStore (DELETE /v1/workers/{id}).
func (s *Store) RemoveWorker(ctx context.Context, id string) error {
	if id == "" {
		return &store.ValidationError{Field: "worker id", Reason: "is required"}
	}
	return s.do(ctx, request{method: http.MethodDelete, path: "/v1/workers/" + seg(id)}, nil)
}
