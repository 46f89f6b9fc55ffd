package loader

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// clockSource is the Loader's time, in nanoseconds, shared with its otter
// cache (it implements otter.Clock), so that the deadlines the Loader
// computes and the read times otter reports are on one clock.
type clockSource struct {
	fake clockwork.Clock // nil: the real clock

	// The real clock counts from start with the monotonic clock, as
	// otter's own does, so a step of the wall clock moves no deadline.
	start     time.Time
	startNano int64

	mu      sync.Mutex
	tickers []clockwork.Ticker // to stop at Close
}

func newClockSource(c clockwork.Clock) *clockSource {
	now := time.Now()
	return &clockSource{fake: c, start: now, startNano: now.UnixNano()}
}

// NowNano returns the time as nanoseconds since the Unix epoch.
func (c *clockSource) NowNano() int64 {
	if c.fake == nil {
		return c.startNano + int64(time.Since(c.start))
	}
	return c.fake.Now().UnixNano()
}

// Tick returns ticks for otter's periodic clean-up; Close stops them.
func (c *clockSource) Tick(d time.Duration) <-chan time.Time {
	var t clockwork.Ticker
	if c.fake == nil {
		t = clockwork.NewRealClock().NewTicker(d)
	} else {
		t = c.fake.NewTicker(d)
	}
	c.mu.Lock()
	c.tickers = append(c.tickers, t)
	c.mu.Unlock()
	return t.Chan()
}

// stop stops the tickers Tick made.
func (c *clockSource) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tickers {
		t.Stop()
	}
	c.tickers = nil
}
