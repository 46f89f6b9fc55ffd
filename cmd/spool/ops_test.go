package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spool health exits 0 on a current store and on a ready server, 1 on a
// missing store and on a server that does not answer, 2 on bad flags.
func TestHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if out := f.ok("health"); strings.TrimSpace(out) != "ok" {
		t.Errorf("spool health printed %q", out)
	}
	missing := "sqlite:" + filepath.Join(t.TempDir(), "none.db")
	if r := cli(t.Context(), "", nil, "--store", missing, "health"); r.code != exitFailed {
		t.Errorf("spool health on a missing file: %d %s", r.code, r.stderr)
	}
	s := f.startServe("--insecure-no-auth")
	f.ok("health", "--url", s.url)
	f.ok("health", "--url", s.url, "--live")
	if r := f.run("health", "--url", "http://"+freeAddr(t), "--timeout", "2s"); r.code != exitFailed {
		t.Errorf("spool health on a closed port: %d %s", r.code, r.stderr)
	}
	f.fails(exitUsage, "health", "--live")
	f.fails(exitUsage, "health", "--url", "localhost:80")
	f.fails(exitUsage, "serve", "--metrics", "everyone")
	f.fails(exitUsage, "work", "--metrics-addr", "nope", "--", "true")
}

// On SIGTERM, /readyz fails first: during --drain-delay the server still
// answers /livez and the API, and /readyz says 503. (The delay only bounds
// how long the server waits; the checks take milliseconds.)
func TestServeReadyzFailsFirstOnSignal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.startServe("--insecure-no-auth", "--drain-delay", "10s", "--shutdown-timeout", "1s")
	get := func(path string) int {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/readyz"); got != 200 {
		t.Fatalf("/readyz before the signal: %d", got)
	}
	s.cancel() // the signal
	deadline := time.Now().Add(30 * time.Second)
	for get("/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still answers 200 after the signal")
		}
		time.Sleep(10 * time.Millisecond) // polling, not an assertion
	}
	if got := get("/livez"); got != 200 {
		t.Errorf("/livez while draining: %d, want 200", got)
	}
	if got := get("/v1/queues"); got != 200 {
		t.Errorf("the API while draining: %d, want 200", got)
	}
}
