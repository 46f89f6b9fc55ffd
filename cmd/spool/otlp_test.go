package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/spoolrun/spool"
)

// fakeCollector is an OTLP/HTTP trace receiver that keeps the names of
// the spans it was sent, with their service's name.
type fakeCollector struct {
	mu    sync.Mutex
	spans map[string]string // span name → service.name
	got   chan struct{}     // a request came
}

func (c *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &collector.ExportTraceServiceRequest{}
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans[s.GetName()] = service
			}
		}
	}
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spool work exports the spans of
// the jobs it runs, under the service name "spool", and flushes them when
// it stops. (Not parallel: it sets the process's environment.)
func TestWorkExportsTracesWithOTLP(t *testing.T) {
	c := &fakeCollector{spans: map[string]string{}, got: make(chan struct{}, 1)}
	srv := httptest.NewServer(c)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")
	f := newFixture(t)
	id := f.enqueue("--queue", "otlp", "--kind", "traced")
	stop := startWork(t, f, "--queue", "otlp", "--", "true")
	if j := f.wait(id); j.State != spool.StateCompleted {
		t.Fatalf("job %s, want completed", j.State)
	}
	if r := stop(); r.code != 0 { // stopping flushes the batch of spans
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
	select {
	case <-c.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no spans were exported")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if service, ok := c.spans["process otlp"]; !ok || service != "spool" {
		t.Fatalf("exported spans %v, want \"process otlp\" of service spool", c.spans)
	}
}

// Without an endpoint nothing is set up: no provider, nothing to flush.
func TestNoOTLPWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, shutdown, err := otlpTracing(t.Context(), slog.New(slog.DiscardHandler))
	if err != nil || tp != nil {
		t.Fatalf("otlpTracing = %v, %v; want no provider", tp, err)
	}
	shutdown()
}
