package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The store's clock is the database's, so that every process sharing the
// database agrees on run_at, lock expiry and reaping whatever its own clock
// says (two nodes whose clocks differ by 30 s must not reap each other's
// held jobs or run jobs early). Reading it for every statement would cost a
// round trip or put now() into every query; instead the clock is read at
// Open and every clockResync, and advanced in between by this process's
// monotonic clock, which steps of the wall clock (NTP, an operator) do not
// move. Its error is about half the round trip of the read, plus the drift
// of the monotonic clock over clockResync (parts per million).
const clockResync = 30 * time.Second

// procNow is this process's clock; a variable so a test can skew it.
var procNow = time.Now

// dbClock is the database's clock as this process knows it.
type dbClock struct {
	mu    sync.RWMutex // guards base and local
	base  time.Time    // the database's time, in UTC ...
	local time.Time    // ... at this local instant, which carries a monotonic reading
}

// Now returns the database's time now.
func (c *dbClock) Now() time.Time {
	c.mu.RLock()
	base, local := c.base, c.local
	c.mu.RUnlock()
	return base.Add(procNow().Sub(local))
}

// sync reads the database's clock: the best of three reads, the one with
// the shortest round trip, taken as read halfway through it.
func (c *dbClock) sync(ctx context.Context, pool *pgxpool.Pool) error {
	var best time.Duration = -1
	var base, local time.Time
	for range 3 {
		var t time.Time
		t0 := procNow()
		if err := pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
			return err
		}
		rtt := procNow().Sub(t0)
		if best < 0 || rtt < best {
			best, base, local = rtt, t.UTC(), t0.Add(rtt/2)
		}
	}
	c.mu.Lock()
	c.base, c.local = base, local
	c.mu.Unlock()
	return nil
}

// resyncLoop reads the database's clock every clockResync until ctx ends. A
// failed read keeps the last one, which the monotonic clock keeps close.
func (s *backend) resyncLoop(ctx context.Context, c *dbClock) {
	t := time.NewTicker(clockResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.sync(readCtx, s.pool); err != nil && ctx.Err() == nil {
			s.log.Warn("spool: postgres: cannot read the database's clock; keeping the last reading", "err", err)
		}
		cancel()
	}
}
