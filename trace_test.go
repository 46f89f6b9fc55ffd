package spool_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
)

// tracer is one process's tracing: a provider exporting every span, as it
// ends, to memory.
type tracer struct {
	tp  *sdktrace.TracerProvider
	exp *tracetest.InMemoryExporter
}

func newTracer(t *testing.T) tracer {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracer{tp: tp, exp: exp}
}

// span returns the one ended span named name, failing the test unless
// there is exactly one.
func (tr tracer) span(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range tr.exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(found), name, spanNames(tr.exp.GetSpans()))
	}
	return found[0]
}

func (tr tracer) spans(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func spanNames(spans tracetest.SpanStubs) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	return names
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

var traced = spool.NewKind[string]("traced")

// openTraceStore opens a fresh SQLite store on the real clock (retries and
// attempt timings need time to pass), closed when the test ends.
func openTraceStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// checkTrace enqueues a job through producer (a Client over one store,
// tracing to prod) and works it with a Worker over another store (tracing
// to cons), the handler failing its first attempt: the first process span
// must be a child of the send span, in its trace; the retry's must start a
// trace of its own, linked to the send span; the handler's context must
// carry its process span; and the settles must be traced.
func checkTrace(t *testing.T, producer, consumer store.Store, prod, cons tracer) {
	t.Helper()
	ctx := t.Context()
	c, err := spool.NewClient(spool.Config{Store: producer, TracerProvider: prod.tp})
	if err != nil {
		t.Fatal(err)
	}
	// The producer's request span, as an HTTP server's would be.
	reqCtx, req := prod.tp.Tracer("test").Start(ctx, "request")
	res, err := traced.Enqueue(reqCtx, c, "hello", &spool.EnqueueOptions{Queue: "traced", Metadata: map[string]string{"corr": "42"}})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Get(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Metadata["corr"] != "42" || job.Metadata[store.MetadataTraceparent] == "" {
		t.Fatalf("stored metadata = %v, want corr and a traceparent", job.Metadata)
	}
	send := prod.span(t, "send traced")
	if send.SpanKind != trace.SpanKindProducer || send.Parent.SpanID() != req.SpanContext().SpanID() ||
		attr(send, "messaging.system") != "spool" || attr(send, "messaging.operation.type") != "send" ||
		attr(send, "messaging.destination.name") != "traced" || attr(send, "messaging.message.id") != res.ID.String() {
		t.Fatalf("send span = %+v", send)
	}

	type seen struct {
		sc      trace.SpanContext
		attempt int
	}
	handled := make(chan seen, 2)
	w, err := spool.NewWorker(spool.WorkerConfig{Store: consumer, Queues: map[string]spool.QueueConfig{"traced": {}},
		Retry: spool.Backoff{Base: time.Millisecond, Max: time.Millisecond}, PollInterval: 20 * time.Millisecond,
		TracerProvider: cons.tp, Heartbeat: spool.HeartbeatConfig{Disable: true}, Maintenance: spool.MaintenanceConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	spool.Handle(w, traced, func(ctx context.Context, task *spool.Task[string]) error {
		handled <- seen{trace.SpanContextFromContext(ctx), task.Attempts + 1}
		if task.Attempts == 0 {
			return errors.New("first attempt fails")
		}
		return nil
	}, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	first, second := <-handled, <-handled
	if _, err := c.Wait(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(ctx); err != nil { // every verdict written, every span ended
		t.Fatal(err)
	}

	procs := cons.spans("process traced")
	if len(procs) != 2 {
		t.Fatalf("%d process spans, want 2: %v", len(procs), spanNames(cons.exp.GetSpans()))
	}
	p1, p2 := procs[0], procs[1]
	if attr(p1, "spool.job.attempt") != "1" {
		p1, p2 = p2, p1
	}
	// The first delivery continues the producer's trace.
	if p1.SpanKind != trace.SpanKindConsumer || p1.SpanContext.TraceID() != send.SpanContext.TraceID() ||
		p1.Parent.SpanID() != send.SpanContext.SpanID() || !p1.Parent.IsRemote() {
		t.Fatalf("first process span: trace %s parent %s; want trace %s parent %s (the send span)",
			p1.SpanContext.TraceID(), p1.Parent.SpanID(), send.SpanContext.TraceID(), send.SpanContext.SpanID())
	}
	if attr(p1, "spool.outcome") != "fail" || attr(p1, "messaging.message.id") != res.ID.String() || attr(p1, "error.type") == "" {
		t.Fatalf("first process span attributes: %v", p1.Attributes)
	}
	if first.sc.SpanID() != p1.SpanContext.SpanID() || first.attempt != 1 {
		t.Fatalf("the handler's context carries span %s, want the process span %s", first.sc.SpanID(), p1.SpanContext.SpanID())
	}
	// The retry starts a trace of its own, linked to the send span.
	if p2.SpanContext.TraceID() == send.SpanContext.TraceID() || p2.Parent.IsValid() ||
		len(p2.Links) != 1 || p2.Links[0].SpanContext.SpanID() != send.SpanContext.SpanID() {
		t.Fatalf("retry's process span: trace %s parent %v links %v; want a new trace linked to %s",
			p2.SpanContext.TraceID(), p2.Parent, p2.Links, send.SpanContext.SpanID())
	}
	if attr(p2, "spool.outcome") != "complete" || second.sc.SpanID() != p2.SpanContext.SpanID() || second.attempt != 2 {
		t.Fatalf("retry's process span: %v", p2.Attributes)
	}
	if len(cons.spans("settle")) == 0 {
		t.Fatalf("no settle span: %v", spanNames(cons.exp.GetSpans()))
	}
	if done, err := c.Get(ctx, res.ID); err != nil || done.LastAttemptDuration < 0 || done.AttemptedAt.IsZero() {
		t.Fatalf("finished job: %+v, %v; want its attempt's timing", done, err)
	}
}

// An enqueue → handle trace connects on SQLite.
func TestTraceSQLite(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	tr := newTracer(t)
	checkTrace(t, st, st, tr, tr)
}

// An enqueue → handle trace connects on PostgreSQL, between two nodes.
func TestTracePostgres(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	open := func() store.Store {
		st, err := postgres.Open(t.Context(), url, postgres.Config{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	checkTrace(t, open(), open(), newTracer(t), newTracer(t))
}

// An enqueue → handle trace connects through spool serve: the producer in
// one process, the handler in a remote worker in another, each with its
// own tracer provider, both talking HTTP to the server.
func TestTraceThroughServe(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	_, dial := serveStore(t, st)
	checkTrace(t, dial(), dial(), newTracer(t), newTracer(t))
}

// A subscription's handler continues the trace of the publish.
func TestTraceEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := openStore(t)
	tr := newTracer(t)
	c, err := spool.NewClient(spool.Config{Store: st, TracerProvider: tr.tp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "orders", Name: "billing", From: spool.FromStart}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "orders", traced.Event("placed", nil)); err != nil {
		t.Fatal(err)
	}
	send := tr.span(t, "send orders")
	handled := make(chan trace.SpanContext, 1)
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}, TracerProvider: tr.tp,
		Heartbeat: spool.HeartbeatConfig{Disable: true}, Maintenance: spool.MaintenanceConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	spool.Subscribe(w, "orders", "billing", func(ctx context.Context, e *spool.Event[string]) error {
		if e.Headers[store.MetadataTraceparent] == "" {
			t.Errorf("event headers %v carry no traceparent", e.Headers)
		}
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sc := <-handled
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	p := tr.span(t, "process orders")
	if p.Parent.SpanID() != send.SpanContext.SpanID() || p.SpanContext.TraceID() != send.SpanContext.TraceID() ||
		sc.SpanID() != p.SpanContext.SpanID() || attr(p, "messaging.destination.subscription.name") != "billing" {
		t.Fatalf("process span %+v, handler's span %s; want a child of the send span %s", p, sc.SpanID(), send.SpanContext.SpanID())
	}
}

// Without a tracer provider (the global no-op one), nothing is traced and
// nothing is added to a job's metadata; a traceparent the producer set is
// kept as it is, tracing or not.
func TestTraceOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := openStore(t)
	c := newClient(t, st)
	res, err := traced.Enqueue(ctx, c, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.Get(ctx, res.ID); err != nil || j.Metadata != nil {
		t.Fatalf("job = %+v, %v; want no metadata", j, err)
	}
	tr := newTracer(t)
	c2, err := spool.NewClient(spool.Config{Store: st, TracerProvider: tr.tp})
	if err != nil {
		t.Fatal(err)
	}
	upstream := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res, err = traced.Enqueue(ctx, c2, "y", &spool.EnqueueOptions{Metadata: map[string]string{store.MetadataTraceparent: upstream}})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.Get(ctx, res.ID); err != nil || j.Metadata[store.MetadataTraceparent] != upstream {
		t.Fatalf("job = %+v, %v; want the producer's traceparent kept", j, err)
	}
}
