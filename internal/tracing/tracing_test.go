package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// With no provider set (the global no-op one), with the global provider
// passed explicitly before it was set, and with a noop provider, tracing
// is off, and asking costs no allocation.
func TestOffCostsNothing(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{
		"default":      nil,
		"global unset": otel.GetTracerProvider(),
		"noop":         noop.NewTracerProvider(),
	} {
		tr := tracing.New(tp)
		if tr.Get() != nil {
			t.Fatalf("%s: tracing is on", name)
		}
		if n := testing.AllocsPerRun(100, func() { _ = tr.Get() }); n != 0 {
			t.Errorf("%s: Get allocates %v times", name, n)
		}
	}
	var none *tracing.Tracer
	if none.Get() != nil {
		t.Fatal("a nil Tracer is on")
	}
}

// A provider given explicitly is used, and its tracer is cached.
func TestExplicitProvider(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tracing.New(tp)
	first := tr.Get()
	if first == nil {
		t.Fatal("tracing is off with an SDK provider")
	}
	if tr.Get() != first {
		t.Fatal("the tracer is not cached")
	}
	if n := testing.AllocsPerRun(100, func() { _ = tr.Get() }); n != 0 {
		t.Errorf("Get allocates %v times once cached", n)
	}
}

// Inject keeps a trace context the metadata has, adds one to a copy
// otherwise, and Extract reads it back.
func TestInjectExtract(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	md := map[string]string{"a": "1"}
	out := tracing.Inject(ctx, md)
	if len(md) != 1 {
		t.Fatalf("Inject changed the caller's map: %v", md)
	}
	if out["a"] != "1" || !tracing.Extract(context.Background(), out).Equal(span.SpanContext().WithRemote(true)) {
		t.Fatalf("Inject = %v; Extract = %v, want %v", out, tracing.Extract(context.Background(), out), span.SpanContext())
	}
	kept := map[string]string{store.MetadataTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	if got := tracing.Inject(ctx, kept); got[store.MetadataTraceparent] != kept[store.MetadataTraceparent] {
		t.Fatalf("Inject replaced the producer's traceparent: %v", got)
	}
	if got := tracing.Inject(context.Background(), md); len(got) != 1 {
		t.Fatalf("Inject without a span = %v, want md as it was", got)
	}
	if tracing.Extract(context.Background(), map[string]string{store.MetadataTraceparent: "garbage"}).IsValid() {
		t.Fatal("a bad traceparent extracts as valid")
	}
}
