package eventcrash

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// ReadTopic reads the whole of Topic, in position order.
func ReadTopic(ctx context.Context, c *spool.Client) ([]*spool.StoredEvent, error) {
	var out []*spool.StoredEvent
	p := spool.ReadEventsParams{Topic: Topic, Limit: store.MaxReadEvents}
	for {
		page, err := c.ReadEvents(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Events...)
		if page.Next == 0 {
			return out, nil
		}
		p.After = page.Next
	}
}

// RunningClaims returns the claim of every running job in st. Right after
// a worker process died, and once the store has finished what it sent,
// these include every claim it held.
func RunningClaims(ctx context.Context, st store.Store) (map[Claim]bool, error) {
	out := map[Claim]bool{}
	p := store.ListParams{States: []store.State{store.StateRunning}, Limit: store.MaxListLimit}
	for {
		page, err := st.List(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, j := range page.Jobs {
			out[Claim{Job: j.ID.String(), Deliveries: j.Deliveries}] = true
		}
		if page.Next.IsZero() {
			return out, nil
		}
		p.After = page.Next
	}
}

// Gather reads what a run left behind into o: the topic, the handlers' and
// the publishers' records, and the app tables.
func Gather(ctx context.Context, c *spool.Client, tables SQL, handledPath, publishedPath string, o *Outcome) error {
	var err error
	if o.Events, err = ReadTopic(ctx, c); err != nil {
		return fmt.Errorf("read the topic: %w", err)
	}
	for _, l := range []struct {
		path string
		into *[]Record
	}{{handledPath, &o.Handled}, {publishedPath, &o.Published}} {
		var torn int
		if *l.into, torn, err = ReadLog(l.path); err != nil {
			return err
		}
		o.Torn += torn
	}
	if o.Orders, err = tables.ReadOrders(ctx); err != nil {
		return err
	}
	o.Effects, err = tables.ReadEffects(ctx)
	return err
}

// Verify reports on t every problem Check finds in o and everything the
// run failed to exercise (kills counts kills by role), and logs the run's
// figures.
func Verify(t testing.TB, o *Outcome, kills map[string]int) {
	t.Helper()
	problems, stats := Check(o)
	for _, p := range problems {
		t.Error(p)
	}
	for _, p := range stats.Unexercised(kills) {
		t.Error(p)
	}
	for _, l := range stats.Lines() {
		t.Log(l)
	}
}

// Seed returns the seed of a kill schedule, from SPOOL_CRASH_SEED when
// set, and logs it.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SPOOL_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SPOOL_CRASH_SEED: %v", err)
		}
	}
	t.Logf("kill schedule seed %d (SPOOL_CRASH_SEED=%d replays it)", seed, seed)
	return seed
}
