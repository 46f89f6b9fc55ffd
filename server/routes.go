package server

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's OpenAPI 3.1 document; TestOpenAPIMatchesRoutes
// keeps it equal to the table below.
//
//go:embed openapi.json
var openAPI []byte

// table is every route of the API. A route is served only through
// Server.handle, which checks its permission; TestEveryRouteEveryRole
// walks this table, so a new route cannot skip the checks.
func (s *Server) table() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/openapi.json", perm: permPublic, fn: serveOpenAPI},

		// Jobs.
		{method: http.MethodPost, path: "/v1/jobs", perm: permProduce, fn: (*call).enqueue},
		{method: http.MethodGet, path: "/v1/jobs", perm: permRead, fn: (*call).listJobs},
		{method: http.MethodGet, path: "/v1/jobs/{id}", perm: permRead, fn: (*call).getJob},
		{method: http.MethodGet, path: "/v1/jobs/{id}/wait", perm: permRead, poll: true, fn: (*call).waitJob},
		{method: http.MethodPost, path: "/v1/jobs/{id}/cancel", perm: permAdmin, fn: (*call).cancelJob},
		{method: http.MethodPost, path: "/v1/jobs/{id}/requeue", perm: permAdmin, fn: (*call).requeueJob},
		{method: http.MethodPost, path: "/v1/jobs/cancel", perm: permAdmin, fn: (*call).cancelJobs},
		{method: http.MethodPost, path: "/v1/jobs/requeue", perm: permAdmin, fn: (*call).requeueJobs},

		// Workers: peek-lock.
		{method: http.MethodPost, path: "/v1/queues/{queue}/claim", perm: permWork, poll: true, fn: (*call).claim},
		{method: http.MethodGet, path: "/v1/queues/{queue}/wake", perm: permRead, poll: true, fn: (*call).wake},
		{method: http.MethodPost, path: "/v1/renew", perm: permWork, fn: (*call).renew},
		{method: http.MethodPost, path: "/v1/settle", perm: permWork, fn: (*call).settle},
		{method: http.MethodPost, path: "/v1/maintenance/reap", perm: permWork, fn: (*call).reap},
		{method: http.MethodPost, path: "/v1/maintenance/prune", perm: permAdmin, fn: (*call).prune},

		// Queues and dead letters.
		{method: http.MethodGet, path: "/v1/stats", perm: permRead, fn: (*call).stats},
		{method: http.MethodGet, path: "/v1/queues", perm: permRead, fn: (*call).stats},
		{method: http.MethodPost, path: "/v1/queues/{queue}/pause", perm: permAdmin, fn: (*call).pauseQueue},
		{method: http.MethodPost, path: "/v1/queues/{queue}/resume", perm: permAdmin, fn: (*call).resumeQueue},
		{method: http.MethodGet, path: "/v1/dlq", perm: permRead, fn: (*call).listDead},
		{method: http.MethodPost, path: "/v1/dlq/requeue", perm: permAdmin, fn: (*call).requeueDead},
		{method: http.MethodPost, path: "/v1/dlq/purge", perm: permAdmin, fn: (*call).purgeDead},

		// Schedules.
		{method: http.MethodGet, path: "/v1/schedules", perm: permRead, fn: (*call).listSchedules},
		{method: http.MethodPost, path: "/v1/schedules", perm: permAdmin, fn: (*call).upsertSchedules},
		{method: http.MethodGet, path: "/v1/schedules/{id}", perm: permRead, fn: (*call).getSchedule},
		{method: http.MethodDelete, path: "/v1/schedules/{id}", perm: permAdmin, fn: (*call).deleteSchedule},
		{method: http.MethodPost, path: "/v1/schedules/{id}/pause", perm: permAdmin, fn: (*call).pauseSchedule},
		{method: http.MethodPost, path: "/v1/schedules/{id}/resume", perm: permAdmin, fn: (*call).resumeSchedule},
		{method: http.MethodPost, path: "/v1/schedules/{id}/trigger", perm: permAdmin, fn: (*call).triggerSchedule},
		{method: http.MethodPost, path: "/v1/schedules/pause", perm: permAdmin, fn: (*call).pauseSchedules},
		{method: http.MethodPost, path: "/v1/schedules/resume", perm: permAdmin, fn: (*call).resumeSchedules},
		{method: http.MethodPost, path: "/v1/schedules/delete", perm: permAdmin, fn: (*call).deleteSchedules},
		{method: http.MethodPost, path: "/v1/schedules/trigger", perm: permAdmin, fn: (*call).triggerSchedules},
		{method: http.MethodPost, path: "/v1/schedules/fire", perm: permWork, fn: (*call).fireSchedules},
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
