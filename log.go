package spool

import "log/slog"

// Every log line about a job names it with the same attributes, so that
// logs can be searched and joined alike: job (its ID), queue, kind, tenant
// (when it has one) and attempt (the attempt running: its failed attempts
// plus one). Lines about a worker add worker; about a subscription,
// subscription; errors go under err.

// jobAttrs returns the attributes naming job, for slog's key-value
// arguments.
func jobAttrs(job *Job, more ...any) []any {
	attrs := make([]any, 0, 10+len(more))
	attrs = append(attrs, slog.String("job", job.ID.String()), slog.String("queue", job.Queue), slog.String("kind", job.Kind))
	if job.Tenant != "" {
		attrs = append(attrs, slog.String("tenant", job.Tenant))
	}
	attrs = append(attrs, slog.Int("attempt", job.Attempts+1))
	return append(attrs, more...)
}
