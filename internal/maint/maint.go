// Package maint holds Spool's background maintenance services: the Reaper,
// which returns jobs whose locks expired, and Retention, which deletes
// finished jobs after their retention period so the hot table tracks live
// work (docs/ARCHITECTURE.md, "The worker runtime").
//
// # Lifecycle
//
// Both follow the startstop contract. Start runs a first pass at once and
// then one pass every Interval, on the injected clock; Stop (or cancelling Start's ctx) ends the
// loop and cancels a store call in progress. A pass that finds a full batch
// (as many rows as its Limit) calls the store again at once, until a call
// comes back short, so a backlog is worked off without waiting for the next
// tick.
//
// # Many nodes
//
// Any number of processes may run these services against one store: every
// call is a batch the store claims atomically, and doing one twice is
// harmless.
//
// # Observing passes
//
// Each service takes an optional OnPass callback that is told the totals of
// every pass. It serves metrics, and tests, which wait on it instead of
// sleeping.
package maint

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// every runs pass at once and then every interval of clock until ctx ends.
// The wait starts when a pass ends, so slow passes never pile up.
func every(ctx context.Context, clock clockwork.Clock, interval time.Duration, pass func(ctx context.Context)) {
	for ctx.Err() == nil {
		pass(ctx)
		timer := clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.Chan():
		}
	}
}
