package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/spoolrun/spool/server"
)

// A producer whose HTTP client propagates W3C trace context (traceparent,
// tracestate headers) gets it stored with its jobs and events, unless an
// item carries a traceparent of its own; the job views show the metadata.
func TestTraceContextFromRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	status, body := h.doHeader("acme/producer", http.MethodPost, "/v1/jobs",
		`{"jobs": [{"kind": "k"}, {"kind": "k", "metadata": {"traceparent": "`+own+`", "corr": "7"}}]}`,
		"traceparent", tp, "tracestate", "vendor=x")
	if status != http.StatusCreated {
		t.Fatalf("enqueue: %d %s", status, body)
	}
	var res struct{ Results []struct{ ID string } }
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	var job struct{ Metadata map[string]string }
	h.must(200, "acme/reader", http.MethodGet, "/v1/jobs/"+res.Results[0].ID, "", &job)
	if job.Metadata["traceparent"] != tp || job.Metadata["tracestate"] != "vendor=x" {
		t.Fatalf("first job's metadata = %v, want the request's trace context", job.Metadata)
	}
	job.Metadata = nil // Unmarshal adds to a map it is given
	h.must(200, "acme/reader", http.MethodGet, "/v1/jobs/"+res.Results[1].ID, "", &job)
	if job.Metadata["traceparent"] != own || job.Metadata["corr"] != "7" || job.Metadata["tracestate"] != "" {
		t.Fatalf("second job's metadata = %v, want its own kept", job.Metadata)
	}
	// A bad traceparent header is ignored.
	status, body = h.doHeader("acme/producer", http.MethodPost, "/v1/jobs", `{"kind": "k"}`, "traceparent", "nonsense")
	if status != http.StatusCreated {
		t.Fatalf("enqueue: %d %s", status, body)
	}
	var one struct{ ID string }
	if err := json.Unmarshal(body, &one); err != nil {
		t.Fatal(err)
	}
	job.Metadata = nil
	h.must(200, "acme/reader", http.MethodGet, "/v1/jobs/"+one.ID, "", &job)
	if job.Metadata != nil {
		t.Fatalf("metadata from a bad header = %v, want none", job.Metadata)
	}
	// Metadata over the limits is refused with the store's typed error.
	status, body = h.do("acme/producer", http.MethodPost, "/v1/jobs", `{"kind": "k", "metadata": {"": "empty name"}}`)
	if status != http.StatusUnprocessableEntity && status != http.StatusBadRequest {
		t.Fatalf("bad metadata: %d %s, want a refusal", status, body)
	}
}
