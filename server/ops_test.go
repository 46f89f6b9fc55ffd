package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/server"
)

// TestProbesAndMetrics: /livez and /readyz answer without a key, /readyz
// fails once the server drains while /livez does not, and /metrics is an
// operator's unless served public or off.
func TestProbesAndMetrics(t *testing.T) {
	t.Parallel()
	m, err := spool.NewMetrics(spool.MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	h := newHarness(t, server.Config{Metrics: m, Gatherer: reg})
	for _, path := range []string{"/livez", "/readyz"} {
		if status, body := h.do("", "GET", path, ""); status != 200 || string(body) != "ok\n" {
			t.Errorf("GET %s: %d %q, want 200 ok", path, status, body)
		}
	}
	// An enqueue through the API is counted.
	h.must(201, "acme/producer", "POST", "/v1/jobs", `{"kind": "k", "queue": "mail"}`, nil)
	status, body := h.do("*/admin", "GET", "/metrics", "")
	if status != 200 || !bytes.Contains(body, []byte(`spool_jobs_enqueued_total{kind="k",queue="acme/mail"} 1`)) {
		t.Errorf("GET /metrics as an operator: %d\n%s", status, body)
	}
	for key, want := range map[string]int{"": 401, "acme/admin": 403, "acme/reader": 403, "*/admin": 200} {
		if status, body := h.do(key, "GET", "/metrics", ""); status != want {
			t.Errorf("GET /metrics with key %q: %d %s, want %d", key, status, body, want)
		}
	}
	h.srv.Drain()
	if status, body := h.do("", "GET", "/readyz", ""); status != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("draining")) {
		t.Errorf("GET /readyz after Drain: %d %q, want 503 draining", status, body)
	}
	if status, _ := h.do("", "GET", "/livez", ""); status != 200 {
		t.Errorf("GET /livez after Drain: %d, want 200", status)
	}

	public := newHarness(t, server.Config{Gatherer: reg, MetricsAccess: server.MetricsPublic})
	if status, body := public.do("", "GET", "/metrics", ""); status != 200 || !bytes.Contains(body, []byte("spool_jobs_enqueued_total")) {
		t.Errorf("GET /metrics, public, without a key: %d %s", status, body)
	}
	off := newHarness(t, server.Config{Gatherer: reg, MetricsAccess: server.MetricsOff})
	if status, _ := off.do("*/admin", "GET", "/metrics", ""); status != 404 {
		t.Errorf("GET /metrics, off: %d, want 404", status)
	}
	if _, err := server.New(server.Config{Store: h.st, MetricsAccess: "everyone"}); err == nil {
		t.Error("server.New took MetricsAccess \"everyone\"")
	}
}
