package server

import (
	"context"
	"fmt"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// statsAnswer is GET /v1/stats's answer.
type statsAnswer struct {
	Queues []wire.QueueStats `json:"queues"`
}

// stats is GET /v1/stats (and GET /v1/queues): every queue the key may see,
// with its counts by state.
func (c *call) stats() (any, error) {
	all, err := c.s.storeStats(c.ctx, c.statsFor)
	if err != nil {
		return nil, err
	}
	var mine []store.QueueStats
	for _, q := range all {
		if name, ok := c.sc.queueOut(q.Queue); ok {
			q.Queue = name
			mine = append(mine, q)
		}
	}
	return statsAnswer{Queues: orEmpty(wire.QueueStatsOf(mine))}, nil
}

// storeStats returns the store's queue statistics, at most maxAge old:
// every dashboard open on the overview asks for them every few seconds,
// and over millions of jobs they take a while, so one computation serves
// every viewer for a moment. Concurrent callers wait for the one
// computing. maxAge 0 reads them afresh (the API does).
func (s *Server) storeStats(ctx context.Context, maxAge time.Duration) ([]store.QueueStats, error) {
	if maxAge <= 0 {
		return s.st.Stats(ctx)
	}
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	if s.stats.val != nil && s.cfg.Clock.Since(s.stats.at) < maxAge {
		return s.stats.val, nil
	}
	all, err := s.st.Stats(ctx)
	if err != nil {
		return nil, err
	}
	s.stats.val, s.stats.at = all, s.cfg.Clock.Now()
	return all, nil
}

// pauseQueue is POST /v1/queues/{queue}/pause; resumeQueue .../resume.
func (c *call) pauseQueue() (any, error)  { return c.queueVerb("queue.pause", c.s.st.PauseQueue) }
func (c *call) resumeQueue() (any, error) { return c.queueVerb("queue.resume", c.s.st.ResumeQueue) }

type queueAnswer struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
}

func (c *call) queueVerb(action string, verb func(ctx context.Context, queue string) error) (any, error) {
	name := c.r.PathValue("queue")
	queue, err := c.sc.queueIn(name)
	if err != nil {
		return nil, err
	}
	err = verb(c.ctx, queue)
	c.record(action, name, boolCount(err == nil), err)
	if err != nil {
		return nil, err
	}
	return queueAnswer{Queue: name, Paused: c.r.URL.Path[len(c.r.URL.Path)-len("pause"):] == "pause"}, nil
}

// listDead is GET /v1/dlq?queue=&kind=&after=&limit=: dead letters with
// their error history.
func (c *call) listDead() (any, error) {
	q := c.r.URL.Query()
	q.Set("state", string(store.StateDead))
	c.r.URL.RawQuery = q.Encode()
	return c.listJobs()
}

// deadRequest selects dead letters: by IDs, every one of a queue, or (for
// an operator's key) every one.
type deadRequest struct {
	IDs   []string `json:"ids"`
	Queue string   `json:"queue"`
	All   bool     `json:"all"`
}

type purgeAnswer struct {
	Purged int `json:"purged"`
}

// purgeDead is POST /v1/dlq/purge {"ids": [...]}, {"queue": "q"} or {"all": true}:
// delete dead letters for good.
func (c *call) purgeDead() (any, error) {
	var req deadRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	p, err := c.deadSelection(req)
	if err != nil {
		return nil, err
	}
	n, err := c.s.st.Purge(c.ctx, p)
	c.record("dlq.purge", purgeTarget(req), n, err)
	if err != nil {
		return nil, err
	}
	return purgeAnswer{Purged: n}, nil
}

func purgeTarget(req deadRequest) string {
	switch {
	case req.All:
		return "every dead letter"
	case req.Queue != "" && len(req.IDs) == 0:
		return "queue " + req.Queue
	case req.Queue != "":
		return fmt.Sprintf("%d jobs of queue %s", len(req.IDs), req.Queue)
	}
	return fmt.Sprintf("%d jobs by ID", len(req.IDs))
}

// deadSelection turns a request into purge parameters the key may use:
// its own queue, or IDs of its own jobs; never every dead letter at once.
func (c *call) deadSelection(req deadRequest) (store.PurgeParams, error) {
	var p store.PurgeParams
	if len(req.IDs) > store.MaxBatch {
		return p, &store.LimitError{Field: "ids", Limit: store.MaxBatch, Got: len(req.IDs)}
	}
	switch {
	case req.All && (len(req.IDs) > 0 || req.Queue != ""):
		return p, &store.ValidationError{Field: "all", Reason: "selects every dead letter: give it alone"}
	case req.All && (!c.sc.all() || c.sc.queues != nil):
		return p, forbidden("purging every dead letter spans every tenant: it needs an operator's key")
	case req.All:
		return p, nil
	case len(req.IDs) == 0 && req.Queue == "":
		return p, &store.ValidationError{Field: "request body", Reason: "give ids, a queue, or all"}
	}
	if req.Queue != "" {
		q, err := c.sc.queueIn(req.Queue)
		if err != nil {
			return p, err
		}
		p.Queue = q
	}
	for _, s := range req.IDs {
		id, err := store.ParseID(s)
		if err != nil {
			return p, err
		}
		if err := c.owns(id); err != nil {
			return p, err
		}
		p.IDs = append(p.IDs, id)
	}
	return p, nil
}

// requeueDead is POST /v1/dlq/requeue {"ids": [...]}: run dead letters
// again; per-item answers.
func (c *call) requeueDead() (any, error) { return c.manyVerb("dlq.requeue", c.s.st.Requeue) }

type reapAnswer struct {
	Returned     int `json:"returned"`
	DeadLettered int `json:"dead_lettered"`
}

// reap is POST /v1/maintenance/reap?limit=: return jobs whose locks expired
// (spool serve also does it on its own).
func (c *call) reap() (any, error) {
	limit, err := c.intQuery("limit", 1000)
	if err != nil {
		return nil, err
	}
	r, err := c.s.st.ReapExpired(c.ctx, limit)
	if err != nil {
		return nil, err
	}
	return reapAnswer{Returned: r.Returned, DeadLettered: r.DeadLettered}, nil
}

// pruneRequest is the body of POST /v1/maintenance/prune.
type pruneRequest struct {
	CompletedBefore string `json:"completed_before"`
	CancelledBefore string `json:"cancelled_before"`
	DeadBefore      string `json:"dead_before"`
	Limit           int    `json:"limit"`
}

type pruneAnswer struct {
	Pruned int `json:"pruned"`
}

// prune is POST /v1/maintenance/prune: delete finished jobs past cutoffs.
// Operators only: it spans every tenant.
func (c *call) prune() (any, error) {
	if !c.sc.all() || c.sc.queues != nil {
		return nil, forbidden("pruning spans every tenant: it needs an operator's key")
	}
	var req pruneRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	p := store.PruneParams{Limit: req.Limit}
	for _, f := range []struct {
		name string
		s    string
		to   *time.Time
	}{{"completed_before", req.CompletedBefore, &p.CompletedBefore}, {"cancelled_before", req.CancelledBefore, &p.CancelledBefore}, {"dead_before", req.DeadBefore, &p.DeadBefore}} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.s)
		if err != nil {
			return nil, &store.ValidationError{Field: f.name, Reason: "is not an RFC 3339 time"}
		}
		*f.to = t
	}
	n, err := c.s.st.Prune(c.ctx, p)
	c.record("maintenance.prune", "finished jobs", n, err)
	if err != nil {
		return nil, err
	}
	return pruneAnswer{Pruned: n}, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
