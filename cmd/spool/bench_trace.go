package main

import (
	"context"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// benchTracer is spool bench --trace's tracing: an SDK provider that
// samples every span and exports them in batches, as a production setup
// would, to an exporter that counts and drops them, so the run measures
// what tracing costs Spool and not an exporter's network.
type benchTracer struct {
	tp  *sdktrace.TracerProvider
	exp *countingExporter
}

func newBenchTracer() *benchTracer {
	exp := &countingExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(exp))
	return &benchTracer{tp: tp, exp: exp}
}

// provider is the run's provider; nil (the global no-op one) for a nil
// benchTracer.
func (b *benchTracer) provider() trace.TracerProvider {
	if b == nil {
		return nil
	}
	return b.tp
}

// shutdown flushes the spans still batched and returns how many were
// exported in all.
func (b *benchTracer) shutdown(ctx context.Context) int64 {
	_ = b.tp.Shutdown(context.WithoutCancel(ctx))
	return b.exp.spans.Load()
}

// countingExporter counts the spans it is given and drops them.
type countingExporter struct{ spans atomic.Int64 }

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.spans.Add(int64(len(spans)))
	return nil
}

func (e *countingExporter) Shutdown(context.Context) error { return nil }
