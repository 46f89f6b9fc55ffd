package loader

import (
	"context"
	"log/slog"
	"time"

	"github.com/maypok86/otter/v2/stats"
)

// Stats are a Loader's counters since New. Every lookup of a key (by Get,
// or one per key by GetMany) is a hit or a miss.
type Stats struct {
	// Hits counts lookups answered from the cache without waiting for a
	// load: fresh values, and also the stale values and cached errors and
	// not-founds counted below.
	Hits uint64
	// Misses counts lookups that waited for a load, started by them or
	// joined.
	Misses uint64
	// Coalesced counts the misses that joined a load already in flight
	// instead of starting one.
	Coalesced uint64
	// Loads counts calls of the load function, refreshes included.
	Loads uint64
	// BulkLoads counts calls of Options.LoadMany.
	BulkLoads uint64
	// LoadErrors counts calls of either load function that failed: an
	// error other than ErrNotFound, a timeout, or a panic.
	LoadErrors uint64
	// Panics counts the LoadErrors that were panics (or runtime.Goexit).
	Panics uint64
	// Refreshes counts background reloads started by reads after
	// Options.RefreshAfter.
	Refreshes uint64
	// RefreshErrors counts the Refreshes that failed; the old value was
	// kept.
	RefreshErrors uint64
	// RefreshesSkipped counts refreshes not started because
	// Options.MaxRefreshes were running.
	RefreshesSkipped uint64
	// StaleServed counts values served past their expiry because reloading
	// them failed (Options.StaleFor).
	StaleServed uint64
	// ErrorsServed counts cached errors and not-founds returned without a
	// load.
	ErrorsServed uint64
	// Evictions counts entries the cache removed by itself, for size or
	// expiry (otter's count); not Invalidate, Clear or replacements.
	Evictions uint64
	// Size is the approximate number of entries cached now.
	Size int
}

// Stats returns the Loader's counters. They are read one by one while
// the Loader runs, so they may be slightly inconsistent with each other.
func (l *Loader[K, V]) Stats() Stats {
	s := l.counter.Snapshot()
	return Stats{
		Hits:             s.Hits,
		Misses:           s.Misses,
		Coalesced:        l.counts.coalesced.Load(),
		Loads:            l.counts.loads.Load(),
		BulkLoads:        l.counts.bulkLoads.Load(),
		LoadErrors:       l.counts.loadErrors.Load(),
		Panics:           l.counts.panics.Load(),
		Refreshes:        l.counts.refreshes.Load(),
		RefreshErrors:    l.counts.refreshErrors.Load(),
		RefreshesSkipped: l.counts.refreshesSkipped.Load(),
		StaleServed:      l.counts.staleServed.Load(),
		ErrorsServed:     l.counts.errorsServed.Load(),
		Evictions:        s.Evictions,
		Size:             l.cache.EstimatedSize(),
	}
}

// evictionRecorder passes otter's evictions to the Loader's counter and
// drops the rest: the Loader counts its own hits and misses, by its own
// rules, and otter runs no loads.
type evictionRecorder struct{ c *stats.Counter }

func (r evictionRecorder) RecordHits(int)                  {}
func (r evictionRecorder) RecordMisses(int)                {}
func (r evictionRecorder) RecordEviction(weight uint32)    { r.c.RecordEviction(weight) }
func (r evictionRecorder) RecordLoadSuccess(time.Duration) {}
func (r evictionRecorder) RecordLoadFailure(time.Duration) {}

// otterLogger sends otter's warnings and errors to the Loader's logger.
type otterLogger struct{ l *slog.Logger }

func (o otterLogger) Warn(ctx context.Context, msg string, err error) {
	o.l.WarnContext(ctx, msg, slog.Any("err", err))
}

func (o otterLogger) Error(ctx context.Context, msg string, err error) {
	o.l.ErrorContext(ctx, msg, slog.Any("err", err))
}
