package spool

import "context"

// anyKind is the handlers key of the catch-all handler. It is not a valid
// kind name ('*' is not allowed in names), so no job's kind can collide
// with it.
const anyKind = "*"

// HandleAll registers fn as w's catch-all handler: it runs every job whose
// kind has no handler of its own (kind-specific handlers registered with
// Handle or HandleRaw always win). It takes the job as stored, like
// HandleRaw; its result, when not nil, becomes the job's result as is.
// Register it before Start; calling it again replaces the earlier one.
//
// Without a catch-all, a job of an unknown kind fails its attempt with "no
// handler registered". Generic runners such as `spool work`, which run one
// command for every kind, use HandleAll.
func HandleAll(w *Worker, fn func(ctx context.Context, job *Job) (result []byte, err error), opts *HandlerOptions) {
	HandleRaw(w, anyKind, fn, opts)
}
