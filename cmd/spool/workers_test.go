package main

import (
	"context"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
)

// spool workers lists a running Worker, and spool jobs get shows a handled
// job's metadata and attempt timing.
func TestWorkersAndTiming(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	w, err := spool.NewWorker(spool.WorkerConfig{Store: f.st, ID: "cli-w", Queues: map[string]spool.QueueConfig{"mail": {Concurrency: 4}},
		Maintenance: spool.MaintenanceConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	spool.HandleRaw(w, "k", func(context.Context, *spool.Job) ([]byte, error) {
		handled <- struct{}{}
		return nil, nil
	}, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()

	var list struct {
		Workers []struct {
			ID     string
			PID    int
			Queues []string
			Busy   int
			Slots  int
		}
	}
	f.okJSON(&list, "workers")
	if len(list.Workers) != 1 || list.Workers[0].ID != "cli-w" || list.Workers[0].Slots != 4 ||
		strings.Join(list.Workers[0].Queues, ",") != "mail" || list.Workers[0].PID == 0 {
		t.Fatalf("spool workers --json = %+v", list)
	}
	if out := f.ok("workers"); !strings.Contains(out, "cli-w") || !strings.Contains(out, "0/4") || !strings.Contains(out, "mail") {
		t.Fatalf("spool workers:\n%s", out)
	}

	id := f.enqueue("--kind", "k", "--queue", "mail", "--meta", "corr=abc", "--meta", "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	<-handled
	if _, err := f.client.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	var job struct {
		Metadata           map[string]string
		AttemptedAt        *string  `json:"attempted_at"`
		LastAttemptSeconds *float64 `json:"last_attempt_seconds"`
	}
	f.okJSON(&job, "jobs", "get", id.String())
	if job.Metadata["corr"] != "abc" || job.AttemptedAt == nil || job.LastAttemptSeconds == nil || *job.LastAttemptSeconds <= 0 {
		t.Fatalf("spool jobs get --json = %+v", job)
	}
	out := f.ok("jobs", "get", id.String())
	for _, want := range []string{"Attempted at:", "Last attempt:", "Metadata corr:", "abc", "Metadata traceparent:"} {
		if !strings.Contains(out, want) {
			t.Errorf("spool jobs get: no %q in\n%s", want, out)
		}
	}
	f.fails(exitUsage, "enqueue", "--kind", "k", "--meta", "novalue")

	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.run("workers"); r.code != 0 || !strings.Contains(r.stderr, "no workers online") {
		t.Fatalf("spool workers after the worker stopped: %+v", r)
	}
}
