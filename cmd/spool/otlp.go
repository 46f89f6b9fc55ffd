package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// otlpTracing makes spool serve and spool work export their spans with
// OTLP over HTTP (protobuf) when the standard OpenTelemetry environment
// names an endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and OTEL_TRACES_EXPORTER is not
// "none". The exporter reads the rest of that environment itself (headers,
// timeout, TLS); the service is named by OTEL_SERVICE_NAME, "spool" by
// default, and sampled by OTEL_TRACES_SAMPLER. Without an endpoint it
// returns nil: tracing stays off, at no cost. shutdown flushes what is
// buffered, for up to 5 s.
func otlpTracing(ctx context.Context, log *slog.Logger) (tp trace.TracerProvider, shutdown func(), err error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" ||
		strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return nil, func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, usagef("OpenTelemetry: %v", err)
	}
	res := resource.Default()
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "spool"))); err != nil {
			return nil, nil, err
		}
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("spool: exporting traces with OTLP over HTTP")
	return sdk, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := sdk.Shutdown(ctx); err != nil {
			log.Warn("spool: flushing traces", "err", err)
		}
	}, nil
}
