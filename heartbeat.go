package spool

import (
	"context"
	"os"
	"time"

	"github.com/spoolrun/spool/internal/buildinfo"
	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// WorkerInfo is one worker online, as its heartbeats describe it: ID,
// host, pid, version of Spool, queues, busy and total slots, and when it
// started, was last seen and will expire without another heartbeat.
type WorkerInfo = store.WorkerInfo

// Workers lists the workers online: every running Worker on the store (in
// this process or another, through spool serve too) whose entry has not
// expired, by ID. It gives an error matching ErrUnsupported when the store
// keeps no workers (its Capabilities have no Workers).
func (c *Client) Workers(ctx context.Context) ([]*WorkerInfo, error) {
	ws := c.store.Capabilities().Workers
	if ws == nil {
		return nil, ErrWorkersUnsupported
	}
	return ws.ListWorkers(ctx)
}

// heartbeat is the service of a run that keeps the worker's entry among the
// workers online: one heartbeat before Start returns (so a started worker
// is listed; a failure is logged, not fatal), then every
// HeartbeatConfig.Interval on the worker's clock; stopping it removes the
// entry. On the same interval it flushes the worker's activity counts
// (Stop makes the last flush, after the settler's). Without a WorkerStore
// nor activity to record it does nothing.
type heartbeat struct {
	run     *workerRun
	base    startstop.Base
	started time.Time // when the run started, on the worker's clock
	failing bool      // the last heartbeat failed; used by Start, then by the loop alone
}

func (h *heartbeat) Start(ctx context.Context) error {
	w := h.run.w
	if w.workers == nil && w.activity == nil {
		return nil
	}
	h.started = w.clock.Now()
	if w.workers != nil {
		h.beat(ctx)
	}
	return h.base.Start(ctx, func(ctx context.Context) {
		for {
			t := w.clock.NewTimer(w.cfg.Heartbeat.Interval)
			select {
			case <-t.Chan():
			case <-ctx.Done():
				t.Stop()
				return
			}
			if w.workers != nil {
				h.beat(ctx)
			}
			w.flushActivity(ctx)
		}
	})
}

// beat sends one heartbeat. A failure is logged once until one succeeds
// again: the entry expires meanwhile, which is what a reader should see.
func (h *heartbeat) beat(ctx context.Context) {
	w := h.run.w
	_, err := w.workers.Heartbeat(ctx, h.info(), w.cfg.Heartbeat.TTL)
	switch {
	case err != nil && ctx.Err() == nil && !h.failing:
		w.log.Warn("spool: heartbeat failed; retrying at the next interval", "worker", w.cfg.ID, "err", err)
		h.failing = true
	case err == nil && h.failing:
		w.log.Info("spool: heartbeats succeed again", "worker", w.cfg.ID)
		h.failing = false
	}
	if w.hooks.AfterHeartbeat != nil {
		w.hooks.AfterHeartbeat(err)
	}
}

// Stop stops heartbeating and removes the worker's entry, within ctx.
func (h *heartbeat) Stop(ctx context.Context) error {
	w := h.run.w
	if w.workers == nil && w.activity == nil {
		return nil
	}
	if err := h.base.Stop(ctx); err != nil {
		return err
	}
	if w.workers == nil {
		return nil
	}
	if err := w.workers.RemoveWorker(ctx, w.cfg.ID); err != nil {
		// The entry expires by itself; a stop is not failed for it.
		w.log.Warn("spool: could not remove the worker from the workers online; its entry expires", "worker", w.cfg.ID, "err", err)
	}
	return nil
}

// info is the worker's entry as of now.
func (h *heartbeat) info() store.WorkerInfo {
	run := h.run
	w := run.w
	host, _ := os.Hostname()
	if len(host) > store.MaxNameLen {
		host = host[:store.MaxNameLen]
	}
	info := store.WorkerInfo{
		ID:        w.cfg.ID,
		Host:      host,
		PID:       os.Getpid(),
		Version:   buildinfo.Version(),
		Busy:      int(run.busy.Load()),
		StartedAt: h.started,
	}
	for _, q := range run.queues {
		info.Queues = append(info.Queues, q.name)
		info.Slots += q.conc
	}
	return info
}
