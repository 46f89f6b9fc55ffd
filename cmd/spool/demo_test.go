package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	// As the README runs it: a temporary database, a table at the end.
	r := cli(context.Background(), "", nil, "demo", "--jobs", "150")
	if r.code != 0 {
		t.Fatalf("demo: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"Worked 150 jobs", "demo.webhooks", "report.build", "Dead letters: 2", "partner API answered 503"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestDemoJSONOnAStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var out struct {
		Jobs   int         `json:"jobs"`
		Queues []queueJSON `json:"queues"`
		Dead   []jobJSON   `json:"dead"`
		Sample *jobJSON    `json:"sample_result"`
	}
	f.okJSON(&out, "demo", "--jobs", "100")
	completed, dead := 0, 0
	for _, q := range out.Queues {
		completed += q.Counts["completed"]
		dead += q.Counts["dead"]
	}
	if out.Jobs != 100 || completed != 99 || dead != 1 || len(out.Dead) != 1 {
		t.Fatalf("demo --json: %d jobs, %d completed, %d dead, %d dead letters; want 100, 99, 1, 1", out.Jobs, completed, dead, len(out.Dead))
	}
	if d := out.Dead[0]; d.Attempts != 3 || d.LastError == "" {
		t.Fatalf("dead letter: %+v", d)
	}
	if out.Sample == nil || !json.Valid(out.Sample.Result) {
		t.Fatalf("sample result: %+v", out.Sample)
	}
	// The jobs stayed in the named store.
	var stats struct {
		Queues []queueJSON `json:"queues"`
	}
	f.okJSON(&stats, "stats")
	if len(stats.Queues) != 4 {
		t.Fatalf("stats after demo --store: %+v", stats.Queues)
	}
}

func TestBench(t *testing.T) {
	t.Parallel()
	r := cli(context.Background(), "", nil, "bench", "--jobs", "200", "--workers", "10", "--json")
	if r.code != 0 {
		t.Fatalf("bench: exit %d, stderr %q", r.code, r.stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", r.stdout, err)
	}
	if res["mode"] != "burn-down" || res["jobs"] != 200.0 {
		t.Fatalf("bench result %v", res)
	}
	for _, k := range []string{"seconds", "jobs_per_sec"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("bench %s = %v, want a positive number", k, res[k])
		}
	}

	r = cli(context.Background(), "", nil, "bench", "--mode", "continuous", "--rate", "400", "--duration", "250ms", "--workers", "10", "--json")
	if r.code != 0 {
		t.Fatalf("bench continuous: exit %d, stderr %q", r.code, r.stderr)
	}
	var cont struct {
		Mode    string `json:"mode"`
		Jobs    int    `json:"jobs"`
		Latency *struct {
			P50, P95, P99, Max float64
		} `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &cont); err != nil {
		t.Fatal(err)
	}
	if cont.Mode != "continuous" || cont.Jobs != 100 || cont.Latency == nil || cont.Latency.Max < cont.Latency.P50 {
		t.Fatalf("bench continuous: %+v %+v", cont, cont.Latency)
	}

	// The human summary.
	r = cli(context.Background(), "", nil, "bench", "--jobs", "100", "--workers", "5")
	if r.code != 0 || !strings.Contains(r.stdout, "jobs/s") || !strings.Contains(r.stdout, "temporary SQLite file") {
		t.Fatalf("bench: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
