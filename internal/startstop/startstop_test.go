package startstop

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds how long a test waits for something that should happen
// promptly; it is generous on purpose and never asserts a tight bound.
const waitTimeout = 10 * time.Second

func TestStartRunsLoopUntilStop(t *testing.T) {
	t.Parallel()
	var b Base
	started := make(chan struct{})
	var cause error
	err := b.Start(t.Context(), func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		cause = context.Cause(ctx)
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("loop did not start")
	}
	if !b.Running() {
		t.Fatal("Running() = false while the loop runs")
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stop returned nil, so the goroutine has returned and cause is safe to read.
	if !errors.Is(cause, ErrStopped) {
		t.Fatalf("loop context cause = %v, want ErrStopped", cause)
	}
	if b.Running() {
		t.Fatal("Running() = true after Stop")
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done() not closed after Stop")
	}
}

func TestStartTwiceFails(t *testing.T) {
	t.Parallel()
	var b Base
	loop := func(ctx context.Context) { <-ctx.Done() }
	if err := b.Start(t.Context(), loop); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context(), loop); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A stopped service can run again.
	if err := b.Start(t.Context(), loop); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestStopIsIdempotentAndSafeBeforeStart(t *testing.T) {
	t.Parallel()
	var b Base
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done() before Start should be closed")
	}
	if err := b.Start(t.Context(), func(ctx context.Context) { <-ctx.Done() }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Stop(t.Context()); err != nil {
			t.Fatalf("Stop #%d: %v", i, err)
		}
	}
}

func TestConcurrentStops(t *testing.T) {
	t.Parallel()
	var b Base
	if err := b.Start(t.Context(), func(ctx context.Context) { <-ctx.Done() }); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- b.Stop(t.Context()) }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Stop: %v", err)
		}
	}
}

func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	var b Base
	release := make(chan struct{})
	// A loop that ignores cancellation until released: Stop must not wait for it
	// past its own deadline.
	if err := b.Start(t.Context(), func(context.Context) { <-release }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a done ctx = %v, want context.Canceled", err)
	}
	if err := b.Start(t.Context(), func(context.Context) {}); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("Start while still stopping = %v, want ErrAlreadyStarted", err)
	}
	close(release)
	// A second Stop waits for the goroutine this time.
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestLoopEndsWithStartContext(t *testing.T) {
	t.Parallel()
	var b Base
	ctx, cancel := context.WithCancel(t.Context())
	if err := b.Start(ctx, func(ctx context.Context) { <-ctx.Done() }); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-b.Done():
	case <-time.After(waitTimeout):
		t.Fatal("loop did not end when the Start context was cancelled")
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop after the loop ended: %v", err)
	}
}

func TestStartWithDoneContext(t *testing.T) {
	t.Parallel()
	var b Base
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Start(ctx, func(context.Context) { t.Error("loop ran") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v, want context.Canceled", err)
	}
	if b.Running() {
		t.Fatal("Running() after a failed Start")
	}
}

// service is a minimal Service on Base that records its lifecycle calls.
type service struct {
	name     string
	base     Base
	startErr error
	log      *[]string
}

func (s *service) Start(ctx context.Context) error {
	if s.startErr != nil {
		return s.startErr
	}
	*s.log = append(*s.log, "start "+s.name)
	return s.base.Start(ctx, func(ctx context.Context) { <-ctx.Done() })
}

func (s *service) Stop(ctx context.Context) error {
	*s.log = append(*s.log, "stop "+s.name)
	return s.base.Stop(ctx)
}

func TestStartAllStopsStartedOnFailure(t *testing.T) {
	t.Parallel()
	var log []string
	boom := errors.New("boom")
	a := &service{name: "a", log: &log}
	b := &service{name: "b", log: &log}
	c := &service{name: "c", log: &log, startErr: boom}
	err := StartAll(t.Context(), a, b, c)
	if !errors.Is(err, boom) {
		t.Fatalf("StartAll = %v, want boom", err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if len(log) != len(want) {
		t.Fatalf("calls = %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("calls = %v, want %v", log, want)
		}
	}
	if a.base.Running() || b.base.Running() {
		t.Fatal("a service is still running after StartAll failed")
	}
}

func TestStopAllInOrder(t *testing.T) {
	t.Parallel()
	var log []string
	a := &service{name: "a", log: &log}
	b := &service{name: "b", log: &log}
	if err := StartAll(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	if err := StopAll(t.Context(), b, a); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("calls = %v, want %v", log, want)
		}
	}
}

var _ Service = (*service)(nil)
