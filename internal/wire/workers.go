package wire

import (
	"io"
	"slices"
	"time"

	"github.com/spoolrun/spool/store"
)

// Worker is how one worker online looks in JSON (GET /v1/workers, spool
// workers --json): times RFC 3339 in UTC.
type Worker struct {
	ID      string   `json:"id"`
	Host    string   `json:"host,omitempty"`
	PID     int      `json:"pid,omitempty"`
	Version string   `json:"version,omitempty"`
	Queues  []string `json:"queues"`
	Tenant  string   `json:"tenant,omitempty"`
	// Busy is how many handlers run now; Slots how many may.
	Busy      int       `json:"busy"`
	Slots     int       `json:"slots"`
	StartedAt time.Time `json:"started_at"`
	SeenAt    time.Time `json:"seen_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// WorkerOf returns the view of a worker online.
func WorkerOf(w *store.WorkerInfo) Worker {
	return Worker{ID: w.ID, Host: w.Host, PID: w.PID, Version: w.Version, Queues: nonNil(w.Queues), Tenant: w.Tenant,
		Busy: w.Busy, Slots: w.Slots, StartedAt: w.StartedAt.UTC(), SeenAt: w.SeenAt.UTC(), ExpiresAt: w.ExpiresAt.UTC()}
}

// StoreWorker converts a worker's view back, as a remote store does.
func (v *Worker) StoreWorker() *store.WorkerInfo {
	w := &store.WorkerInfo{ID: v.ID, Host: v.Host, PID: v.PID, Version: v.Version, Queues: slices.Clone(v.Queues), Tenant: v.Tenant,
		Busy: v.Busy, Slots: v.Slots, StartedAt: v.StartedAt, SeenAt: v.SeenAt, ExpiresAt: v.ExpiresAt}
	if len(w.Queues) == 0 {
		w.Queues = nil
	}
	return w
}

// WorkerList is GET /v1/workers's answer: {"workers": [...]}, by ID.
type WorkerList struct {
	Workers []Worker `json:"workers"`
}

// WorkerListOf returns the view of a list of workers.
func WorkerListOf(ws []*store.WorkerInfo) WorkerList {
	out := WorkerList{Workers: make([]Worker, len(ws))}
	for i, w := range ws {
		out.Workers[i] = WorkerOf(w)
	}
	return out
}

// Heartbeat is the body of POST /v1/workers/heartbeat: a worker says it is
// online, and for how long without another heartbeat (ttl_seconds,
// store.MinWorkerTTL..store.MaxWorkerTTL). The store sets when it was seen
// and when it expires; a tenant's key records its own tenant.
type Heartbeat struct {
	ID      string   `json:"id"`
	Host    string   `json:"host,omitempty"`
	PID     int      `json:"pid,omitempty"`
	Version string   `json:"version,omitempty"`
	Queues  []string `json:"queues,omitempty"`
	// Tenant is the tenant whose queues the worker works: a tenant's key
	// records its own whatever this says (it may name its own or none).
	Tenant string `json:"tenant,omitempty"`
	Busy   int    `json:"busy,omitempty"`
	Slots  int    `json:"slots,omitempty"`
	// StartedAt is when the worker started; default now.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	TTLSeconds float64    `json:"ttl_seconds"`
}

// HeartbeatOf returns the body of a heartbeat of w for ttl.
func HeartbeatOf(w store.WorkerInfo, ttl time.Duration) Heartbeat {
	return Heartbeat{ID: w.ID, Host: w.Host, PID: w.PID, Version: w.Version, Queues: w.Queues, Tenant: w.Tenant, Busy: w.Busy, Slots: w.Slots,
		StartedAt: timePtr(w.StartedAt), TTLSeconds: ttl.Seconds()}
}

// DecodeHeartbeat reads a Heartbeat and returns the entry and TTL it
// asks for, refusing unknown fields, trailing data and a TTL that is not
// a positive number of seconds; the store checks the rest.
func DecodeHeartbeat(r io.Reader) (store.WorkerInfo, time.Duration, error) {
	var h Heartbeat
	if err := decodeStrict(r, &h, "request body"); err != nil {
		return store.WorkerInfo{}, 0, err
	}
	ttl, err := secondsOf("ttl_seconds", h.TTLSeconds, store.MaxWorkerTTL.Seconds())
	if err != nil {
		return store.WorkerInfo{}, 0, err
	}
	w := store.WorkerInfo{ID: h.ID, Host: h.Host, PID: h.PID, Version: h.Version, Queues: h.Queues, Tenant: h.Tenant, Busy: h.Busy, Slots: h.Slots}
	if h.StartedAt != nil {
		w.StartedAt = *h.StartedAt
	}
	return w, ttl, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
