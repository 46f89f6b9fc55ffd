package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/server"
)

// unique_for over HTTP: an enqueue within the window of a finished job
// answers that job as a duplicate (200); the job's view shows
// unique_until; GET /v1/jobs/by-unique-key reads its result back, in the
// key's tenant and queues only.
func TestUniqueForOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	var first struct {
		ID        string
		Duplicate bool
		State     string
	}
	req := `{"kind": "quote", "queue": "mail", "unique_for": "10m", "payload": {"sku": "a1"}}`
	status, body := h.doHeader("acme/producer", "POST", "/v1/jobs", req, "Idempotency-Key", "quote-a1")
	if status != http.StatusCreated || json.Unmarshal(body, &first) != nil || first.Duplicate {
		t.Fatalf("enqueue: %d %s", status, body)
	}
	var claimed struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/mail/claim", `{"limit": 1}`, &claimed)
	j := claimed.Jobs[0]
	h.must(200, "acme/worker", "POST", "/v1/settle",
		fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "complete", "result": {"price": 42}}]}`, j.ID, j.LockToken), nil)

	// A retry of the request, after the job finished, within the window.
	h.clock.Advance(5 * time.Minute)
	var again struct {
		ID        string
		Duplicate bool
		State     string
	}
	status, body = h.doHeader("acme/producer", "POST", "/v1/jobs", req, "Idempotency-Key", "quote-a1")
	if status != http.StatusOK || json.Unmarshal(body, &again) != nil || !again.Duplicate || again.ID != first.ID || again.State != "completed" {
		t.Fatalf("enqueue within the window: %d %s, want 200, a duplicate of %s, completed", status, body, first.ID)
	}

	// The result, by key.
	var v struct {
		ID          string
		State       string
		Tenant      string
		Queue       string
		UniqueKey   string          `json:"unique_key"`
		UniqueUntil time.Time       `json:"unique_until"`
		CreatedAt   time.Time       `json:"created_at"`
		Result      json.RawMessage `json:"result"`
	}
	h.must(200, "acme/reader", "GET", "/v1/jobs/by-unique-key?key=quote-a1", "", &v)
	if v.ID != first.ID || v.State != "completed" || v.Queue != "mail" || v.Tenant != "acme" || string(v.Result) != `{"price":42}` ||
		!v.UniqueUntil.Equal(v.CreatedAt.Add(10*time.Minute)) {
		t.Fatalf("by unique key: %+v", v)
	}
	h.must(200, "acme/reader", "GET", "/v1/jobs/by-unique-key?key=quote-a1&tenant=acme", "", nil)
	h.must(403, "acme/reader", "GET", "/v1/jobs/by-unique-key?key=quote-a1&tenant=globex", "", nil)
	h.must(404, "globex/reader", "GET", "/v1/jobs/by-unique-key?key=quote-a1", "", nil)
	h.must(404, "acme/reader", "GET", "/v1/jobs/by-unique-key?key=other", "", nil)
	h.must(400, "acme/reader", "GET", "/v1/jobs/by-unique-key", "", nil)
	// A key limited to other queues does not see it.
	h.must(201, "acme/producer", "POST", "/v1/jobs", `{"kind": "k", "queue": "other", "unique_key": "elsewhere"}`, nil)
	h.must(404, "acme/worker:mail", "GET", "/v1/jobs/by-unique-key?key=elsewhere", "", nil)
	h.must(200, "acme/worker:mail", "GET", "/v1/jobs/by-unique-key?key=quote-a1", "", nil)

	// After the window, a new job.
	h.clock.Advance(5 * time.Minute)
	status, body = h.doHeader("acme/producer", "POST", "/v1/jobs", req, "Idempotency-Key", "quote-a1")
	if status != http.StatusCreated || strings.Contains(string(body), first.ID) {
		t.Fatalf("enqueue after the window: %d %s, want 201 and a new job", status, body)
	}

	// Refused: unique_for without a key, past the limit, or not a duration.
	for _, b := range []string{
		`{"kind": "k", "unique_for": "5m"}`,
		`{"kind": "k", "unique_key": "u", "unique_for": "721h"}`,
		`{"kind": "k", "unique_key": "u", "unique_for": "5 minutes"}`,
	} {
		status, body := h.do("acme/producer", "POST", "/v1/jobs", b)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "unique") {
			t.Errorf("%s: %d %s, want 422", b, status, body)
		}
	}
}
