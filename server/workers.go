package server

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The workers online (store.WorkerStore): remote workers heartbeat here,
// and anyone may list them. A tenant's workers are stored under the
// tenant's prefix ("acme/worker-1"), which the API adds and removes, as it
// does for queues, so one tenant's worker never replaces another's entry,
// and a tenant's key lists its own tenant's workers only.

// workerStore returns the store's worker storage, or ErrUnsupported.
func (c *call) workerStore() (store.WorkerStore, error) {
	ws := c.s.st.Capabilities().Workers
	if ws == nil {
		return nil, store.ErrUnsupported
	}
	return ws, nil
}

// workerIn returns the stored ID of the worker id names for this key.
func (sc *scope) workerIn(id string) string {
	if sc.all() || id == "" {
		return id
	}
	return sc.tenant + "/" + id
}

// workerOut returns the view of a stored worker entry for this key, and
// false when it is not the key's to see.
func (sc *scope) workerOut(w *store.WorkerInfo) (wire.Worker, bool) {
	v := wire.WorkerOf(w)
	if sc.all() {
		return v, true
	}
	id, ok := strings.CutPrefix(w.ID, sc.tenant+"/")
	if !ok || w.Tenant != sc.tenant {
		return wire.Worker{}, false
	}
	v.ID = id
	return v, true
}

// heartbeat is POST /v1/workers/heartbeat: a worker says it is online.
func (c *call) heartbeat() (any, error) {
	ws, err := c.workerStore()
	if err != nil {
		return nil, err
	}
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	w, ttl, err := wire.DecodeHeartbeat(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if w.Tenant, err = c.sc.tenantIn(w.Tenant); err != nil {
		return nil, err
	}
	w.ID = c.sc.workerIn(w.ID)
	got, err := ws.Heartbeat(c.ctx, w, ttl)
	if err != nil {
		return nil, err
	}
	v, _ := c.sc.workerOut(got)
	return v, nil
}

// listWorkers is GET /v1/workers: the workers online the key sees, by ID.
func (c *call) listWorkers() (any, error) {
	ws, err := c.workerStore()
	if err != nil {
		return nil, err
	}
	all, err := ws.ListWorkers(c.ctx)
	if err != nil {
		return nil, err
	}
	out := wire.WorkerList{Workers: []wire.Worker{}}
	for _, w := range all {
		if v, ok := c.sc.workerOut(w); ok {
			out.Workers = append(out.Workers, v)
		}
	}
	return out, nil
}

// workerAnswer is a removal's answer.
type workerAnswer struct {
	ID      string `json:"id"`
	Removed bool   `json:"removed"`
}

// removeWorker is DELETE /v1/workers/{id}: a worker that stops says so.
// Removing an entry that is not there (expired already) answers removed.
func (c *call) removeWorker() (any, error) {
	ws, err := c.workerStore()
	if err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if err := ws.RemoveWorker(c.ctx, c.sc.workerIn(id)); err != nil {
		return nil, err
	}
	return workerAnswer{ID: id, Removed: true}, nil
}

// traceContextOf returns the W3C trace context of the request's headers
// (traceparent and, with it, tracestate), nil when it has none: spool
// serve stores it with the jobs and events of a producer whose HTTP
// client propagates it, when they carry no trace context of their own.
func traceContextOf(r *http.Request) map[string]string {
	tp := r.Header.Get(store.MetadataTraceparent)
	if tp == "" || !tracing.Extract(r.Context(), map[string]string{store.MetadataTraceparent: tp}).IsValid() {
		return nil
	}
	out := map[string]string{store.MetadataTraceparent: tp}
	if ts := r.Header.Get(store.MetadataTracestate); ts != "" {
		out[store.MetadataTracestate] = ts
	}
	return out
}

// withTraceContext returns md with tc added, as a new map, unless md has a
// trace context already or tc is nil.
func withTraceContext(md, tc map[string]string) map[string]string {
	if tc == nil || tracing.HasContext(md) {
		return md
	}
	out := make(map[string]string, len(md)+len(tc))
	for k, v := range md {
		out[k] = v
	}
	for k, v := range tc {
		out[k] = v
	}
	return out
}
