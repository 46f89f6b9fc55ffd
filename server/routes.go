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

		// Topics, events and streams (events.go). A subscription's
		// deliveries are claimed from queue "sub/TOPIC/NAME" through the
		// claim route above, its "/" escaped as %2F.
		{method: http.MethodGet, path: "/v1/topics", perm: permRead,
			doc: "The topics the key sees, with their heads (last positions), oldest kept positions and retention (null: forever).",
			out: topicsAnswer{},
			fn:  (*call).listTopics},
		{method: http.MethodPut, path: "/v1/topics/{topic}/retention", perm: permAdmin,
			doc: "Keep the topic's events for at least retention (a duration such as 168h, or forever); events a subscription has not been handed are kept whatever their age. Answers the topic.",
			in:  wire.RetentionRequest{},
			out: wire.Topic{},
			fn:  (*call).setRetention},
		{method: http.MethodPost, path: "/v1/topics/{topic}/events", perm: permProduce,
			doc: "Publish one event (an object) or many ({\"events\": [...]}), all or nothing; Idempotency-Key is a single event's ID, and an ID the topic has is not written again (duplicate). A single event answers its result; a batch {\"results\": [...]}. 201 when an event was written, 200 when every one was a duplicate; 422 when items are refused (nothing is published).",
			in:  wire.PublishRequest{},
			out: publishAnswer{},
			fn:  (*call).publish},
		{method: http.MethodGet, path: "/v1/topics/{topic}/events", perm: permRead,
			doc: "A page of up to limit (default 100, at most 10000) of the topic's events after position after, in position order; with key, that key's stream in version order (after is then a version). next is the after of the next page, 0 on the last.",
			out: wire.EventPage{},
			fn:  (*call).readEvents},
		{method: http.MethodGet, path: "/v1/topics/{topic}/events/{id}", perm: permRead,
			doc: "One event of the topic by ID.",
			out: wire.Event{},
			fn:  (*call).getEvent},
		{method: http.MethodGet, path: "/v1/events/{id}", perm: permRead,
			doc: "One event by ID, from any topic the key sees (the first found).",
			out: wire.Event{},
			fn:  (*call).findEvent},
		{method: http.MethodPost, path: "/v1/topics/{topic}/streams/{key}/events", perm: permProduce,
			doc: "Append events to the key's stream if it is at expected_version (0: it must not exist yet; -1: any); otherwise nothing is written and the answer is 409 conflict with the stream's current version. Answers {\"results\": [...]}.",
			in:  wire.AppendRequest{},
			out: publishAnswer{},
			fn:  (*call).appendStream},
		{method: http.MethodGet, path: "/v1/topics/{topic}/streams/{key}/events", perm: permRead,
			doc: "A page of the key's stream in version order, after version after, up to limit.",
			out: wire.EventPage{},
			fn:  (*call).readStream},

		// Durable subscriptions.
		{method: http.MethodGet, path: "/v1/subscriptions", perm: permRead,
			doc: "Every subscription the key sees, by topic then name, with its lag.",
			out: subscriptionsAnswer{},
			fn:  (*call).listAllSubscriptions},
		{method: http.MethodGet, path: "/v1/topics/{topic}/subscriptions", perm: permRead,
			doc: "The topic's subscriptions by name, with their lag.",
			out: subscriptionsAnswer{},
			fn:  (*call).listSubscriptions},
		{method: http.MethodPut, path: "/v1/topics/{topic}/subscriptions/{name}", perm: permAdmin,
			doc: "Create a durable subscription (201); one that exists with the same definition is answered as it is (200, created false), one with another definition is 409 conflict. from (start, now, a position or an RFC 3339 time) only applies to a new one. Its deliveries are jobs in queue sub/TOPIC/NAME.",
			in:  wire.SubscriptionParams{},
			out: wire.CreatedSubscription{},
			fn:  (*call).putSubscription},
		{method: http.MethodGet, path: "/v1/topics/{topic}/subscriptions/{name}", perm: permRead,
			doc: "One subscription with its lag.",
			out: wire.Subscription{},
			fn:  (*call).getSubscription},
		{method: http.MethodDelete, path: "/v1/topics/{topic}/subscriptions/{name}", perm: permAdmin,
			doc: "Delete the subscription and every delivery it has, dead letters included.",
			out: subscriptionAnswer{},
			fn:  (*call).deleteSubscription},
		{method: http.MethodPost, path: "/v1/topics/{topic}/subscriptions/{name}/pause", perm: permAdmin,
			doc: "Stop the subscription's deliveries from being claimed; events go on being routed to it.",
			out: subscriptionAnswer{},
			fn:  (*call).pauseSubscription},
		{method: http.MethodPost, path: "/v1/topics/{topic}/subscriptions/{name}/resume", perm: permAdmin,
			doc: "Let a paused subscription's deliveries be claimed again.",
			out: subscriptionAnswer{},
			fn:  (*call).resumeSubscription},
		{method: http.MethodPost, path: "/v1/topics/{topic}/subscriptions/{name}/rewind", perm: permAdmin,
			doc: "Move the subscription so that the next event routed to it is the first at or after to (start, now, a position or an RFC 3339 time); deliveries not yet claimed are dropped. forget_inbox deletes its inbox entries first. Answers the subscription.",
			in:  wire.RewindRequest{},
			out: rewound{},
			fn:  (*call).rewindSubscription},
	}
}

// serveOpenAPI is GET /v1/openapi.json.
func serveOpenAPI(_ *call) (any, error) {
	return rawJSON(openAPI), nil
}

// rawJSON is an answer already in JSON.
type rawJSON []byte

// MarshalJSON returns the document as it is.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
