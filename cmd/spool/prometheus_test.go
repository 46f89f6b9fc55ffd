package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrometheusScrapesServeAndWork runs a real Prometheus server (the
// prometheus binary; .ci/run installs Debian's package) that scrapes spool
// serve (with an operator's key) and a spool work worker (on
// --metrics-addr) while a workload runs: jobs enqueued through the HTTP
// API, some of a kind whose command fails and dead-letters. It then asks
// Prometheus's query API whether the counters add up to the jobs that ran,
// and whether the lease holder's queue gauges show them.
func TestPrometheusScrapesServeAndWork(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed (apt-get install prometheus; .ci/run does it): skipping the scrape test")
	}
	f := newFixture(t)
	token := strings.TrimSpace(f.ok("keys", "create", "--tenant", "*", "--role", "admin"))
	s := f.startServe("--gauge-interval", "1s")
	w := f.startWork(t, "--queue", "default", "--concurrency", "4", "--gauge-interval", "1s",
		"--", "sh", "-c", `test "$SPOOL_JOB_KIND" != bad`)

	prom := startPrometheus(t, bin, []scrapeTarget{
		{job: "serve", addr: strings.TrimPrefix(s.url, "http://"), token: token},
		{job: "work", addr: w.metricsAddr},
	})
	// Both targets are up before the workload, so no increment is lost
	// before the first scrape.
	prom.waitValue(t, `sum(up)`, 2)

	const good, bad = 40, 10
	var jobs []string
	for i := range good + bad {
		kind := "good"
		if i >= good {
			kind = "bad"
		}
		jobs = append(jobs, fmt.Sprintf(`{"kind": %q, "payload": {"i": %d}, "max_attempts": 1}`, kind, i))
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/v1/jobs", strings.NewReader(`{"jobs": [`+strings.Join(jobs, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enqueue: %s %s", resp.Status, body)
	}

	// The counters, scraped from two processes, add up to the jobs.
	prom.waitValue(t, `sum(spool_jobs_enqueued_total{job="serve"})`, good+bad)
	prom.waitValue(t, `sum(spool_jobs_settled_total{job="work"})`, good+bad)
	prom.waitValue(t, `sum(spool_jobs_settled_total{job="work",outcome="completed",kind="good"})`, good)
	prom.waitValue(t, `sum(spool_jobs_settled_total{job="work",outcome="dead_lettered",kind="bad"})`, bad)
	prom.waitValue(t, `sum(spool_job_duration_seconds_count{job="work"})`, good+bad)
	prom.waitValue(t, `sum(spool_job_pickup_latency_seconds_count{job="work"})`, good+bad)
	prom.waitValue(t, `max(spool_worker_slots{job="work",queue="default",state="total"})`, 4)
	// One node holds the gauges' lease and exports the depth; the other
	// exports none.
	prom.waitValue(t, `sum(spool_gauges_holder)`, 1)
	prom.waitValue(t, `sum(spool_queue_jobs{queue="default",state="completed"})`, good)
	prom.waitValue(t, `sum(spool_queue_jobs{queue="default",state="dead"})`, bad)
	prom.waitValue(t, `count(spool_queue_jobs{queue="default",state="dead"})`, 1)
}

// working is a spool work run in process, with its metrics address.
type working struct {
	metricsAddr string
}

// startWork runs spool work with args (and --metrics-addr on a free port)
// on the fixture's store until the test ends, and returns once it serves
// its metrics.
func (f *fixture) startWork(t *testing.T, args ...string) *working {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr strings.Builder
	a := newApp(strings.NewReader(""), pw, &stderr, func(string) string { return "" })
	done := make(chan result, 1)
	go func() {
		code := a.run(ctx, append([]string{"--store", f.url, "--json", "work", "--metrics-addr", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- result{code: code, stderr: stderr.String()}
	}()
	var out struct {
		MetricsURL string `json:"metrics_url"`
	}
	dec := json.NewDecoder(pr)
	if err := dec.Decode(&out); err != nil {
		cancel()
		t.Fatalf("work printed no metrics URL: %v; %+v", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), pr)) }()
	t.Cleanup(func() {
		cancel()
		if r := <-done; r.code != 0 {
			t.Errorf("spool work exited %d: %s", r.code, r.stderr)
		}
	})
	u, err := url.Parse(out.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	return &working{metricsAddr: u.Host}
}

// scrapeTarget is one process Prometheus scrapes.
type scrapeTarget struct {
	job, addr, token string
}

// promServer is a Prometheus server run for one test.
type promServer struct {
	url string
}

// startPrometheus runs bin with a scrape interval of 500ms over targets,
// its config and storage in a temporary directory, and returns once it is
// ready. It is stopped when the test ends.
func startPrometheus(t *testing.T, bin string, targets []scrapeTarget) *promServer {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n")
	for _, tg := range targets {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", tg.job, tg.addr)
		if tg.token != "" {
			fmt.Fprintf(&cfg, "    authorization:\n      credentials: %q\n", tg.token)
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-exited; t.Failed() {
			t.Logf("prometheus (%v) output:\n%s", err, logs.String())
		}
	})
	p := &promServer{url: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within a minute:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness, not an assertion
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// query asks Prometheus's HTTP API for an instant vector and returns the
// value of its single sample; ok is false when the answer has none.
func (p *promServer) query(t *testing.T, q string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("query %s: %s %v %s", q, resp.Status, err, out.Error)
	}
	if len(out.Data.Result) != 1 {
		return 0, false
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil
}

// waitValue polls q until its value is want, failing after a deadline
// with the last value seen.
func (p *promServer) waitValue(t *testing.T, q string, want float64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, ok := p.query(t, q)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", q, v, ok, want)
		}
		time.Sleep(100 * time.Millisecond) // polling Prometheus, not an assertion
	}
}
