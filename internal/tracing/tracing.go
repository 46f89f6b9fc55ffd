// Package tracing is Spool's OpenTelemetry instrumentation: the spans of
// the OpenTelemetry messaging semantic conventions (Spool is the
// messaging system "spool"), and the W3C trace context a producer stores
// with a job (in its metadata) or an event (in its headers) so that the
// handler's span continues the producer's trace.
//
//   - send: PRODUCER span of an enqueue or publish of one message, named
//     "send QUEUE" ("send TOPIC"); its context is stored with the message.
//     A batch gets a CLIENT "send" span and, under it, a PRODUCER "create
//     QUEUE" span per message whose context is stored with that message.
//   - process: CONSUMER span of one delivery to a handler, named "process
//     QUEUE" (or "process TOPIC" for a subscription's delivery). On a
//     job's first delivery the producer's span is its parent, so the trace
//     reads enqueue → handle; a retry or a redelivery starts a trace of its
//     own with a link to the producer, so a job retried hours later does
//     not stretch the producer's trace.
//   - settle: CLIENT span of one batch of verdicts written to the store.
//
// Tracing is off, at the cost of one atomic load and a comparison per
// operation and no allocation, while the TracerProvider in use is a no-op:
// the global one before otel.SetTracerProvider is called, or one from the
// trace/noop package.
package tracing

import (
	"context"
	"maps"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/spoolrun/spool/internal/buildinfo"
	"github.com/spoolrun/spool/store"
)

// System is the value of messaging.system.
const System = "spool"

// Attribute keys: the messaging semantic conventions' (status:
// Development) and Spool's own, under "spool.".
const (
	KeySystem       = attribute.Key("messaging.system")
	KeyOperation    = attribute.Key("messaging.operation.name")
	KeyOperationTyp = attribute.Key("messaging.operation.type")
	KeyDestination  = attribute.Key("messaging.destination.name")
	KeySubscription = attribute.Key("messaging.destination.subscription.name")
	KeyMessageID    = attribute.Key("messaging.message.id")
	KeyBatchCount   = attribute.Key("messaging.batch.message_count")
	KeyBodySize     = attribute.Key("messaging.message.body.size")
	KeyErrorType    = attribute.Key("error.type")
	KeyKind         = attribute.Key("spool.job.kind")
	KeyAttempt      = attribute.Key("spool.job.attempt")
	KeyDelivery     = attribute.Key("spool.job.delivery")
	KeyTenant       = attribute.Key("spool.tenant")
	KeyOutcome      = attribute.Key("spool.outcome")
	KeyDuplicate    = attribute.Key("spool.duplicate")
)

// Operation types (messaging.operation.type).
const (
	OpCreate  = "create"
	OpSend    = "send"
	OpProcess = "process"
	OpSettle  = "settle"
)

// propagator reads and writes W3C trace context: traceparent and
// tracestate, the names store.MetadataTraceparent and
// store.MetadataTracestate.
var propagator = propagation.TraceContext{}

// Tracer hands out the OpenTelemetry tracer of a Client or a Worker, or
// nil while tracing is off. It is safe for concurrent use.
type Tracer struct {
	tp     trace.TracerProvider // nil: the global provider, looked up on each use
	cached atomic.Pointer[cachedTracer]
}

// cachedTracer is the tracer of one provider; t is nil for a no-op one.
type cachedTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer
}

// New returns the Tracer of tp; nil means the global provider
// (otel.GetTracerProvider), looked up on each use so that a provider set
// after the Client or Worker was made is used.
func New(tp trace.TracerProvider) *Tracer {
	if tp != nil && isGlobalDelegate(tp) {
		tp = nil // the global provider as it was before being set: follow it
	}
	return &Tracer{tp: tp}
}

// Get returns the tracer to use now, or nil when tracing is off. A nil
// *Tracer is off.
func (t *Tracer) Get() trace.Tracer {
	if t == nil {
		return nil
	}
	tp := t.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if c := t.cached.Load(); c != nil && sameProvider(c.tp, tp) {
		return c.t
	}
	c := &cachedTracer{tp: tp}
	if !isNoop(tp) {
		c.t = tp.Tracer(buildinfo.Module, trace.WithInstrumentationVersion(buildinfo.Version()),
			trace.WithInstrumentationAttributes(KeySystem.String(System)))
	}
	if isComparable(tp) {
		t.cached.Store(c)
	}
	return c.t
}

// sameProvider compares two providers without panicking on types that
// cannot be compared.
func sameProvider(a, b trace.TracerProvider) bool {
	return isComparable(a) && isComparable(b) && a == b
}

func isComparable(tp trace.TracerProvider) bool {
	return tp != nil && reflect.TypeOf(tp).Comparable()
}

// globalDelegatePkg is the package of the global provider that
// otel.GetTracerProvider returns until otel.SetTracerProvider is called.
const globalDelegatePkg = "go.opentelemetry.io/otel/internal/global"

// isGlobalDelegate reports whether tp is the global provider as it is
// before otel.SetTracerProvider: spans it makes record nothing until a
// provider is set.
func isGlobalDelegate(tp trace.TracerProvider) bool {
	ty := reflect.TypeOf(tp)
	if ty.Kind() == reflect.Pointer {
		ty = ty.Elem()
	}
	return ty.PkgPath() == globalDelegatePkg
}

// isNoop reports whether spans from tp record nothing, for sure.
func isNoop(tp trace.TracerProvider) bool {
	if _, ok := tp.(noop.TracerProvider); ok {
		return true
	}
	return isGlobalDelegate(tp)
}

// Inject returns md with the trace context of ctx's span added, as a new
// map (md is not modified). md is returned as it is when ctx has no valid
// span, or when md carries a trace context already: the one a caller (or
// a producer upstream of spool serve) put there is the message's creation
// context, and is kept.
func Inject(ctx context.Context, md map[string]string) map[string]string {
	if _, ok := md[store.MetadataTraceparent]; ok {
		return md
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return md
	}
	out := make(map[string]string, len(md)+2)
	maps.Copy(out, md)
	propagator.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// HasContext reports whether md carries a trace context.
func HasContext(md map[string]string) bool {
	_, ok := md[store.MetadataTraceparent]
	return ok
}

// Extract returns the span context stored in md; not valid when there is
// none or it does not parse. ctx's own span does not count.
func Extract(ctx context.Context, md map[string]string) trace.SpanContext {
	if len(md) == 0 {
		return trace.SpanContext{}
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{}) // only md's
	return trace.SpanContextFromContext(propagator.Extract(ctx, propagation.MapCarrier(md)))
}

// ExtractRequest returns ctx with the remote span context of an incoming
// request's headers (traceparent, tracestate), when it has one and ctx has
// no span of its own. spool serve uses it so that a producer's HTTP
// request is the parent of the send span the server makes.
func ExtractRequest(ctx context.Context, header propagation.TextMapCarrier) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() || header.Get(store.MetadataTraceparent) == "" {
		return ctx
	}
	return propagator.Extract(ctx, header)
}

// common returns the attributes every span of an operation has.
func common(op, typ, dest string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{KeySystem.String(System), KeyOperation.String(op), KeyOperationTyp.String(typ)}
	if dest != "" {
		attrs = append(attrs, KeyDestination.String(dest))
	}
	return attrs
}

// spanName is "{operation} {destination}", or the operation alone.
func spanName(op, dest string) string {
	if dest == "" {
		return op
	}
	return op + " " + dest
}

// Message describes one message of a send.
type Message struct {
	Dest   string // queue or topic
	Kind   string
	Tenant string
	Size   int // payload bytes
}

// StartSend starts the span of sending msgs (at least one) to the store
// and returns, for each message, the context to store with it: for one
// message, the PRODUCER span "send DEST" itself; for several, a CLIENT
// span "send DEST" ("send" when they go to several destinations) with one
// PRODUCER span "create DEST" per message under it, already ended. End the
// returned span with EndSend.
func StartSend(ctx context.Context, tr trace.Tracer, msgs []Message) (trace.Span, []context.Context) {
	dest := msgs[0].Dest
	for _, m := range msgs[1:] {
		if m.Dest != dest {
			dest = ""
			break
		}
	}
	if len(msgs) == 1 {
		m := msgs[0]
		attrs := append(common(OpSend, OpSend, m.Dest), KeyKind.String(m.Kind), KeyBodySize.Int(m.Size))
		if m.Tenant != "" {
			attrs = append(attrs, KeyTenant.String(m.Tenant))
		}
		ctx, span := tr.Start(ctx, spanName(OpSend, m.Dest), trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
		return span, []context.Context{ctx}
	}
	ctx, span := tr.Start(ctx, spanName(OpSend, dest), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(common(OpSend, OpSend, dest), KeyBatchCount.Int(len(msgs)))...))
	ctxs := make([]context.Context, len(msgs))
	for i, m := range msgs {
		attrs := append(common(OpCreate, OpCreate, m.Dest), KeyKind.String(m.Kind), KeyBodySize.Int(m.Size))
		if m.Tenant != "" {
			attrs = append(attrs, KeyTenant.String(m.Tenant))
		}
		c, s := tr.Start(ctx, spanName(OpCreate, m.Dest), trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
		s.End()
		ctxs[i] = c
	}
	return span, ctxs
}

// EndSend ends a send span with the store's answer: the message IDs (one
// message), or the error.
func EndSend(span trace.Span, ids []string, err error) {
	if err != nil {
		Fail(span, err)
	} else if len(ids) == 1 {
		span.SetAttributes(KeyMessageID.String(ids[0]))
	}
	span.End()
}

// Delivery describes one delivery to a handler.
type Delivery struct {
	Dest         string // the job's queue, or the event's topic
	Subscription string // the subscription's name, for an event
	ID           string // the job's or the event's ID
	Kind         string
	Tenant       string
	Attempt      int // 1 for the first attempt
	Delivery     int // the job's deliveries, this one included
	// First says the producer's span is to be the parent (the first
	// delivery of the message); otherwise it is linked.
	First bool
	// Creation is the producer's span context (Extract).
	Creation trace.SpanContext
}

// StartProcess starts the CONSUMER span "process DEST" of a delivery, on
// ctx (the handler's context, which should carry no span of Spool's).
func StartProcess(ctx context.Context, tr trace.Tracer, d Delivery) (context.Context, trace.Span) {
	attrs := append(common(OpProcess, OpProcess, d.Dest),
		KeyMessageID.String(d.ID), KeyKind.String(d.Kind), KeyAttempt.Int(d.Attempt), KeyDelivery.Int(d.Delivery))
	if d.Subscription != "" {
		attrs = append(attrs, KeySubscription.String(d.Subscription))
	}
	if d.Tenant != "" {
		attrs = append(attrs, KeyTenant.String(d.Tenant))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	switch {
	case d.Creation.IsValid() && d.First:
		ctx = trace.ContextWithRemoteSpanContext(ctx, d.Creation)
	case d.Creation.IsValid():
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: d.Creation}))
	default:
		opts = append(opts, trace.WithNewRoot())
	}
	return tr.Start(ctx, spanName(OpProcess, d.Dest), opts...)
}

// EndProcess ends a process span with the delivery's outcome ("complete",
// "fail", ...) and the handler's error, if any.
func EndProcess(span trace.Span, outcome string, err error) {
	span.SetAttributes(KeyOutcome.String(outcome))
	if err != nil {
		Fail(span, err)
	}
	span.End()
}

// StartSettle starts the CLIENT span "settle" of writing n verdicts.
func StartSettle(ctx context.Context, tr trace.Tracer, n int) (context.Context, trace.Span) {
	return tr.Start(ctx, OpSettle, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(common(OpSettle, OpSettle, ""), KeyBatchCount.Int(n))...))
}

// EndSettle ends a settle span: err is a whole-call error; refused counts
// verdicts the store refused one by one (a lost lock).
func EndSettle(span trace.Span, refused int, err error) {
	if refused > 0 {
		span.SetAttributes(attribute.Int("spool.settle.refused", refused))
	}
	if err != nil {
		Fail(span, err)
	}
	span.End()
}

// Fail records err on span: the error.type attribute (the error's stable
// code, such as lock_lost or invalid, else its Go type), the error event
// and the Error status.
func Fail(span trace.Span, err error) {
	span.SetAttributes(KeyErrorType.String(ErrorType(err)))
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// ErrorType is the error.type of err: the store's stable code when it has
// one, else the error's Go type.
func ErrorType(err error) string {
	if code := store.Code(err); code != "" && code != "internal" {
		return code
	}
	return reflect.TypeOf(err).String()
}
