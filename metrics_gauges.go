package spool

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// gaugeLease is the lease whose holder computes the cluster-wide gauges.
const gaugeLease = "spool.metrics.gauges"

// gauges is the Worker service that computes the cluster-wide gauges of
// Metrics (queue depth by state, oldest available age, subscription lag)
// while it holds gaugeLease: every GaugeInterval it takes or renews the
// lease for three intervals, and, holding it, reads Stats and the
// subscriptions once. A node that does not hold it exports none of these
// gauges. Stopping releases the lease, so another node takes over at its
// next tick rather than three intervals later.
type gauges struct {
	m      *Metrics
	st     store.Store
	leases store.LeaseStore
	clock  clockwork.Clock
	log    *slog.Logger
	base   startstop.Base
	held   bool // only the service's goroutine touches it
}

func newGauges(m *Metrics, st store.Store, ls store.LeaseStore, clock clockwork.Clock, log *slog.Logger) *gauges {
	return &gauges{m: m, st: st, leases: ls, clock: clock, log: log}
}

func (g *gauges) Start(ctx context.Context) error { return g.base.Start(ctx, g.run) }

func (g *gauges) Stop(ctx context.Context) error { return g.base.Stop(ctx) }

func (g *gauges) run(ctx context.Context) {
	interval := g.m.cfg.GaugeInterval
	for {
		g.tick(ctx, 3*interval)
		t := g.clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			g.clear()
			if g.held {
				// A bounded release on a context of our own: the loop's is
				// over, and a release that fails only means the lease ends
				// by itself.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				if err := g.leases.ReleaseLease(rctx, gaugeLease, g.m.cfg.Holder); err != nil {
					g.log.Debug("spool: releasing the metrics gauges' lease failed", "err", err)
				}
				cancel()
			}
			return
		case <-t.Chan():
		}
	}
}

// tick takes or renews the lease for ttl and, holding it, refreshes the
// gauges.
func (g *gauges) tick(ctx context.Context, ttl time.Duration) {
	l, err := g.leases.AcquireLease(ctx, gaugeLease, g.m.cfg.Holder, ttl)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("spool: the metrics gauges' lease could not be taken", "err", err)
		}
		g.held = false
		g.clear()
		return
	}
	if g.held != l.Held {
		g.log.Debug("spool: metrics gauges", "held", l.Held, "holder", l.Holder)
	}
	g.held = l.Held
	if !l.Held {
		g.clear()
		return
	}
	g.m.gaugeHolder.Set(1)
	qs, err := g.st.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("spool: metrics gauges: reading queue stats failed", "err", err)
		}
		return
	}
	g.m.depth.Reset()
	g.m.oldest.Reset()
	for _, q := range qs {
		for _, state := range store.States {
			g.m.depth.WithLabelValues(q.Queue, string(state)).Set(float64(q.Counts[state]))
		}
		g.m.oldest.WithLabelValues(q.Queue).Set(q.OldestAvailable.Seconds())
	}
	ev := g.st.Capabilities().Events
	if ev == nil {
		return
	}
	subs, err := ev.ListSubscriptions(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("spool: metrics gauges: reading subscriptions failed", "err", err)
		}
		return
	}
	g.m.subBehind.Reset()
	g.m.subAge.Reset()
	for _, s := range subs {
		g.m.subBehind.WithLabelValues(s.Topic, s.Name).Set(float64(s.Lag.Behind))
		g.m.subAge.WithLabelValues(s.Topic, s.Name).Set(s.Lag.OldestAge.Seconds())
	}
}

// clear removes the gauges a node that does not hold the lease must not
// export.
func (g *gauges) clear() {
	g.m.gaugeHolder.Set(0)
	g.m.depth.Reset()
	g.m.oldest.Reset()
	g.m.subBehind.Reset()
	g.m.subAge.Reset()
}
