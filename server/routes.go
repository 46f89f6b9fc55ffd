package server

import (
	_ "embed"
	"net/http"

	"github.com/spoolrun/spool/internal/wire"
)

// openAPI is the API's OpenAPI 3.1 document, made from the table below by
// go test ./server -run TestOpenAPI -update; the test fails while it
// differs from the table.
//
//go:embed openapi.json
var openAPI []byte

// table is every route of the API. A route is served only through
// Server.handle, which checks its permission; TestEveryRouteEveryRole
// walks this table, so a new route cannot skip the checks.
func (s *Server) table() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/openapi.json", perm: permPublic,
			doc: "This document: the API in OpenAPI 3.1.",
			fn:  serveOpenAPI},

		// Jobs.
		{method: http.MethodPost, path: "/v1/jobs", perm: permProduce,
			doc: "Enqueue one job (an object) or many ({\"jobs\": [...]}); Idempotency-Key names a single job's unique key. A single job answers its result; a batch {\"results\": [...]}. 201 when a job was created, 200 when every job was a duplicate; 422 when items are refused (nothing is enqueued).",
			in:  wire.EnqueueRequest{},
			out: enqueueAnswer{},
			fn:  (*call).enqueue},
		{method: http.MethodGet, path: "/v1/jobs", perm: permRead,
			doc: "List jobs, oldest first, filtered by queue, state (comma-separated), kind and tenant, a page of up to limit after the cursor.",
			out: wire.JobPage{},
			fn:  (*call).listJobs},
		{method: http.MethodGet, path: "/v1/jobs/{id}", perm: permRead,
			doc: "One job, with its error history and result.",
			out: wire.Job{},
			fn:  (*call).getJob},
		{method: http.MethodGet, path: "/v1/jobs/{id}/wait", perm: permRead,
			doc:  "Long-poll until the job has finished (timeout, default and at most 30s), then answer it with its result; on timeout, the job as it is.",
			out:  wire.Job{},
			poll: true, fn: (*call).waitJob},
		{method: http.MethodPost, path: "/v1/jobs/{id}/cancel", perm: permAdmin,
			doc: "Cancel a live job; a running one's holder then gets lock_lost. Answers the job.",
			out: wire.Job{},
			fn:  (*call).cancelJob},
		{method: http.MethodPost, path: "/v1/jobs/{id}/requeue", perm: permAdmin,
			doc: "Run a dead or cancelled job again. Answers the job.",
			out: wire.Job{},
			fn:  (*call).requeueJob},
		{method: http.MethodPost, path: "/v1/jobs/cancel", perm: permAdmin,
			doc: "Cancel jobs by ID; per-item answers.",
			in:  idsRequest{},
			out: itemsAnswer{},
			fn:  (*call).cancelJobs},
		{method: http.MethodPost, path: "/v1/jobs/requeue", perm: permAdmin,
			doc: "Requeue dead or cancelled jobs by ID; per-item answers.",
			in:  idsRequest{},
			out: itemsAnswer{},
			fn:  (*call).requeueJobs},

		// Workers: peek-lock.
		{method: http.MethodPost, path: "/v1/queues/{queue}/claim", perm: permWork,
			doc:  "Peek-lock up to limit jobs of the queue for lock_seconds; with none available, long-poll up to wait_seconds (at most 30). Each job carries its lock_token.",
			in:   claimRequest{},
			out:  claimAnswer{},
			poll: true, fn: (*call).claim},
		{method: http.MethodPost, path: "/v1/renew", perm: permWork,
			doc: "Extend locks; per-item answers (lock_lost for a stale token, which changes nothing).",
			in:  renewRequest{},
			out: itemsAnswer{},
			fn:  (*call).renew},
		{method: http.MethodPost, path: "/v1/settle", perm: permWork,
			doc: "Apply verdicts (complete, fail, dead_letter, ...), each fenced by its lock token; per-item answers (lock_lost for a stale token, which changes nothing).",
			in:  wire.SettleRequest{},
			out: itemsAnswer{},
			fn:  (*call).settle},
		{method: http.MethodPost, path: "/v1/maintenance/reap", perm: permWork,
			doc: "Return up to limit jobs whose locks expired (the server also does it on its own).",
			out: reapAnswer{},
			fn:  (*call).reap},
		{method: http.MethodPost, path: "/v1/maintenance/prune", perm: permAdmin,
			doc: "Delete finished jobs finished before the cutoffs; an operator's key only.",
			in:  pruneRequest{},
			out: pruneAnswer{},
			fn:  (*call).prune},

		// Queues and dead letters.
		{method: http.MethodGet, path: "/v1/stats", perm: permRead,
			doc: "Every queue the key may see, with counts by state and the age of the oldest available job.",
			out: statsAnswer{},
			fn:  (*call).stats},
		{method: http.MethodGet, path: "/v1/queues", perm: permRead,
			doc: "The same as /v1/stats.",
			out: statsAnswer{},
			fn:  (*call).stats},
		{method: http.MethodPost, path: "/v1/queues/{queue}/pause", perm: permAdmin,
			doc: "Stop the queue from handing out jobs.",
			out: queueAnswer{},
			fn:  (*call).pauseQueue},
		{method: http.MethodPost, path: "/v1/queues/{queue}/resume", perm: permAdmin,
			doc: "Let a paused queue hand out jobs again.",
			out: queueAnswer{},
			fn:  (*call).resumeQueue},
		{method: http.MethodGet, path: "/v1/dlq", perm: permRead,
			doc: "Dead letters, filtered and paged as GET /v1/jobs.",
			out: wire.JobPage{},
			fn:  (*call).listDead},
		{method: http.MethodPost, path: "/v1/dlq/requeue", perm: permAdmin,
			doc: "Run dead letters again by ID; per-item answers.",
			in:  idsRequest{},
			out: itemsAnswer{},
			fn:  (*call).requeueDead},
		{method: http.MethodPost, path: "/v1/dlq/purge", perm: permAdmin,
			doc: "Delete dead letters for good: by ID, a whole queue, or (an operator's key) all.",
			in:  deadRequest{},
			out: purgeAnswer{},
			fn:  (*call).purgeDead},
	}
}

// serveOpenAPI is GET /v1/openapi.json.
func serveOpenAPI(c *call) (any, error) {
	return rawJSON(openAPI), nil
}

// rawJSON is an answer already in JSON.
type rawJSON []byte

// MarshalJSON returns the document as it is.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
