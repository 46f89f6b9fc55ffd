package spool_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

var busyKind = spool.NewKind[struct{}]("busy")

// checkWorkersOnline runs a Worker on workerStore and watches it from a
// Client on listStore: listed once Start returns, with its queues, slots
// and pid; busy while its handler runs (seen at the next heartbeat, on a
// fake clock); gone once it stops.
func checkWorkersOnline(t *testing.T, workerStore, listStore store.Store, wantID string) {
	t.Helper()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	beats := make(chan error, 16)
	w, err := spool.NewWorkerWithHooks(spool.WorkerConfig{Store: workerStore, ID: "w-1", Clock: clock,
		Queues:      map[string]spool.QueueConfig{"mail": {Concurrency: 2}, "pdf": {Concurrency: 3}},
		Heartbeat:   spool.HeartbeatConfig{Interval: time.Minute},
		Maintenance: spool.MaintenanceConfig{Disable: true}, Scheduler: spool.SchedulerConfig{Disable: true}},
		spool.TestHooks{AfterHeartbeat: func(err error) { beats <- err }})
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	spool.Handle(w, busyKind, func(context.Context, *spool.Task[struct{}]) error {
		close(started)
		<-release
		return nil
	}, nil)
	c := newClient(t, listStore)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-beats; err != nil {
		t.Fatalf("first heartbeat: %v", err)
	}
	ws, err := c.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("Workers = %+v, want the one worker", ws)
	}
	got := ws[0]
	if got.ID != wantID || got.PID != os.Getpid() || !slices.Equal(got.Queues, []string{"mail", "pdf"}) ||
		got.Slots != 5 || got.Busy != 0 || got.StartedAt.IsZero() || !got.ExpiresAt.After(got.SeenAt) {
		t.Fatalf("Workers = %+v, want w-1 with queues mail and pdf, 5 slots, none busy", got)
	}

	if _, err := busyKind.Enqueue(ctx, newClient(t, workerStore), struct{}{}, &spool.EnqueueOptions{Queue: "mail"}); err != nil {
		t.Fatal(err)
	}
	<-started
	clock.Advance(time.Minute)
	if err := <-beats; err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if ws, err := c.Workers(ctx); err != nil || len(ws) != 1 || ws[0].Busy != 1 {
		t.Fatalf("Workers while the handler runs = %+v, %v; want busy 1", ws, err)
	}
	close(release)
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, err := c.Workers(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("Workers after Stop = %+v, %v; want none", ws, err)
	}
}

// A Worker on the store lists itself among the workers online.
func TestWorkersOnline(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	checkWorkersOnline(t, st, st, "w-1")
}

// A remote Worker attached through spool serve heartbeats through it; an
// operator sees it as it named itself.
func TestWorkersOnlineThroughServe(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	_, dial := serveStore(t, st)
	rs := dial()
	checkWorkersOnline(t, rs, st, "w-1")
}

// Heartbeats are checked with the rest of the config, and a store without
// the capability is neither heartbeated nor listed.
func TestWorkersConfig(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	_, err := spool.NewWorker(spool.WorkerConfig{Store: st, Heartbeat: spool.HeartbeatConfig{Interval: time.Minute, TTL: time.Second}})
	if !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("a TTL below the interval: %v, want ErrInvalid", err)
	}
	c := newClient(t, plainStore{st})
	if _, err := c.Workers(t.Context()); !errors.Is(err, spool.ErrWorkersUnsupported) || !errors.Is(err, spool.ErrUnsupported) {
		t.Fatalf("Workers on a store without the capability: %v", err)
	}
	w, err := spool.NewWorker(spool.WorkerConfig{Store: plainStore{st}, Maintenance: spool.MaintenanceConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ws, err := newClient(t, st).Workers(t.Context()); err != nil || len(ws) != 0 {
		t.Fatalf("Workers = %+v, %v; want none from a worker whose store has no heartbeats", ws, err)
	}
}
