package spool

import (
	"context"

	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// The Client's and the Worker's spans (see "Tracing" in the package
// documentation). Each path asks its tracing.Tracer first: nil means
// tracing is off, and the path does nothing more.

// traceEnqueue runs insert with params, inside the send span of the jobs
// when tracing is on: the trace context of each job's send (or create)
// span is added to a copy of its metadata, unless the job carries one
// already (a producer upstream, such as a client of spool serve, made it).
func (c *Client) traceEnqueue(ctx context.Context, params []store.EnqueueParams,
	insert func([]store.EnqueueParams) ([]EnqueueResult, error)) ([]EnqueueResult, error) {
	tr := c.tracer.Get()
	if tr == nil {
		return insert(params)
	}
	msgs := make([]tracing.Message, len(params))
	for i := range params {
		msgs[i] = tracing.Message{Dest: queueName(params[i].Queue), Kind: params[i].Kind, Tenant: params[i].Tenant, Size: len(params[i].Payload)}
	}
	span, ctxs := tracing.StartSend(ctx, tr, msgs)
	for i := range params {
		params[i].Metadata = tracing.Inject(ctxs[i], params[i].Metadata) //nolint:contextcheck // ctxs[i] is a child of ctx, made by StartSend
	}
	res, err := insert(params)
	var ids []string
	if err == nil && len(res) == 1 {
		ids = []string{res[0].ID.String()}
		if res[0].Duplicate {
			span.SetAttributes(tracing.KeyDuplicate.Bool(true))
		}
	}
	tracing.EndSend(span, ids, err)
	return res, err
}

// tracePublish is traceEnqueue for events: the trace context goes into a
// copy of each event's headers.
func (c *Client) tracePublish(ctx context.Context, topic string, in []store.EventInput,
	publish func([]store.EventInput) ([]PublishResult, error)) ([]PublishResult, error) {
	tr := c.tracer.Get()
	if tr == nil || len(in) == 0 {
		return publish(in)
	}
	msgs := make([]tracing.Message, len(in))
	for i := range in {
		msgs[i] = tracing.Message{Dest: topic, Kind: in[i].Kind, Tenant: in[i].Tenant, Size: len(in[i].Payload)}
	}
	span, ctxs := tracing.StartSend(ctx, tr, msgs)
	for i := range in {
		in[i].Headers = tracing.Inject(ctxs[i], in[i].Headers) //nolint:contextcheck // ctxs[i] is a child of ctx, made by StartSend
	}
	res, err := publish(in)
	var ids []string
	if err == nil && len(res) == 1 {
		ids = []string{res[0].ID}
	}
	tracing.EndSend(span, ids, err)
	return res, err
}

// queueName is the queue a job goes to, with its default.
func queueName(q string) string {
	if q == "" {
		return store.DefaultQueue
	}
	return q
}
