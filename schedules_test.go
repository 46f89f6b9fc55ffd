package spool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/schedule"
)

type tickArgs struct{ N int }

var tickKind = spool.NewKind[tickArgs]("tick")

// TestWorkerFiresSchedules runs a schedule due every second through a
// Worker on the real clock: its runs reach the handler, one per slot.
func TestWorkerFiresSchedules(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	ran := make(chan int, 100)
	startWorker(t, spool.WorkerConfig{Store: st}, func(w *spool.Worker) {
		spool.Handle(w, tickKind, func(_ context.Context, task *spool.Task[tickArgs]) error {
			ran <- task.Payload.N
			return nil
		}, nil)
	})
	sc, err := c.Schedules().Upsert(t.Context(), spool.Schedule{
		ID: "tick", Spec: "* * * * * *", Kind: "tick", Payload: []byte(`{"N":7}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Version != 1 || sc.NextRunAt.IsZero() {
		t.Fatalf("Upsert returned %+v", sc)
	}
	for i := range 2 {
		select {
		case n := <-ran:
			if n != 7 {
				t.Errorf("run payload %d, want 7", n)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%d runs within 15s of a schedule due every second", i)
		}
	}
	runs, err := c.Schedules().Runs(t.Context(), sc.Ref(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Last) < 2 || len(runs.Next) != 3 || !runs.Next[1].After(runs.Next[0]) {
		t.Errorf("Runs = %+v, want at least 2 last runs and 3 next slots", runs)
	}
	for _, r := range runs.Last {
		if r.State == "" {
			t.Errorf("run %+v has no job state", r)
		}
	}
}

func TestSchedulesAPIErrors(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := t.Context()
	x := c.Schedules()

	_, err := x.Upsert(ctx, spool.Schedule{ID: "bad", Spec: "every day", Kind: "k"})
	var se *schedule.SpecError
	if !errors.As(err, &se) || !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("bad spec: %v, want *schedule.SpecError matching ErrInvalid", err)
	}
	_, err = x.Upsert(ctx, spool.Schedule{ID: "bad", Spec: "@daily", Zone: "Europe/Atlantis", Kind: "k"})
	var ze *schedule.ZoneError
	if !errors.As(err, &ze) {
		t.Errorf("bad zone: %v, want *schedule.ZoneError", err)
	}
	if _, err := x.Get(ctx, spool.ScheduleRef{ID: "bad"}); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("refused schedule was written: Get = %v", err)
	}

	sc, err := x.Upsert(ctx, spool.Schedule{ID: "daily", Tenant: "acme", Spec: "@daily", Zone: "Europe/Berlin", Kind: "k"})
	if err != nil {
		t.Fatal(err)
	}
	sc.Payload = []byte("v2")
	if sc, err = x.Upsert(ctx, *sc); err != nil || sc.Version != 2 {
		t.Fatalf("update at the current version: %v, %+v", err, sc)
	}
	stale := *sc
	stale.Version = 1
	if _, err := x.Upsert(ctx, stale); !errors.Is(err, spool.ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}

	err = x.Pause(ctx, sc.Ref(), spool.ScheduleRef{ID: "nope"})
	var serr *spool.ScheduleError
	if !errors.As(err, &serr) || serr.Ref.ID != "nope" || !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Pause with a missing schedule: %v", err)
	}
	if got, _ := x.Get(ctx, sc.Ref()); !got.Paused {
		t.Error("the existing schedule was not paused")
	}
	if err := x.Resume(ctx, sc.Ref()); err != nil {
		t.Error(err)
	}
	run, err := x.Trigger(ctx, sc.Ref())
	if err != nil || run.JobID.IsZero() || !run.Triggered {
		t.Errorf("Trigger: %+v, %v", run, err)
	}
	if j := mustGet(t, c, run.JobID); j.Kind != "k" || j.Tenant != "acme" {
		t.Errorf("triggered job %+v", j)
	}
	page, err := x.List(ctx, spool.ScheduleListParams{Tenant: "acme"})
	if err != nil || len(page.Schedules) != 1 {
		t.Errorf("List: %v, %+v", err, page)
	}
	if err := x.Delete(ctx, sc.Ref()); err != nil {
		t.Error(err)
	}
	if _, err := x.Trigger(ctx, sc.Ref()); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Trigger after delete: %v", err)
	}
}
