package spool_test

import (
	"context"
	"testing"

	"github.com/spoolrun/spool"
)

// A catch-all handler runs every kind that has no handler of its own, and a
// kind-specific handler still wins over it.
func TestHandleAllCatchesUnknownKinds(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	startWorker(t, spool.WorkerConfig{Store: st}, func(w *spool.Worker) {
		spool.HandleRaw(w, "specific", func(context.Context, *spool.Job) ([]byte, error) {
			return []byte(`"specific"`), nil
		}, nil)
		spool.HandleAll(w, func(_ context.Context, job *spool.Job) ([]byte, error) {
			return []byte(`"all:` + job.Kind + `"`), nil
		}, nil)
	})
	res, err := c.EnqueueMany(context.Background(),
		spool.RawItem("specific", nil, nil),
		spool.RawItem("other.kind", nil, nil),
		spool.RawItem("third", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"specific"`, `"all:other.kind"`, `"all:third"`}
	for i, r := range res {
		j := waitFinished(t, c, r.ID)
		if j.State != spool.StateCompleted || string(j.Result) != want[i] {
			t.Errorf("job %d (%s): state %s, result %s; want completed, %s", i, j.Kind, j.State, j.Result, want[i])
		}
	}
}
