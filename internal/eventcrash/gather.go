package eventcrash

import (
	"context"

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
