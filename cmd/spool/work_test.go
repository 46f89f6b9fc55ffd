package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// startWork runs `spool work` in the background until the test ends (or
// stop is called) and returns stop, which cancels it as a SIGINT would and
// returns its result.
func startWork(t *testing.T, f *fixture, args ...string) (stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- f.runIn(ctx, "", append([]string{"work"}, args...)...) }()
	var r *result
	stop = func() result {
		if r == nil {
			cancel()
			got := <-done
			r = &got
		}
		return *r
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestWorkCompletesWithStdoutAsResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	jsonOut := f.enqueue("--queue", "w", "--kind", "echo", "--payload", `{"a": [1, 2]}`)
	textOut := f.enqueue("--queue", "w", "--kind", "text", "--payload", `{"words": "plain words"}`)
	noOut := f.enqueue("--queue", "w", "--kind", "empty", "--payload", `null`)
	stop := startWork(t, f, "--queue", "w", "--concurrency", "2", "--",
		"sh", "-c", `case $SPOOL_JOB_KIND in empty) ;; text) echo "plain words";; *) cat;; esac; exit 0`)

	if j := f.wait(jsonOut); j.State != spool.StateCompleted || string(j.Result) != `{"a": [1, 2]}` {
		t.Errorf("JSON stdout: state %s, result %s", j.State, j.Result)
	}
	// Stdout that is not a JSON document is stored as a JSON string.
	if j := f.wait(textOut); j.State != spool.StateCompleted || string(j.Result) != `"plain words"` {
		t.Errorf("text stdout: state %s, result %s", j.State, j.Result)
	}
	if j := f.wait(noOut); j.State != spool.StateCompleted || j.Result != nil {
		t.Errorf("no stdout: state %s, result %q", j.State, j.Result)
	}
	if r := stop(); r.code != 0 || !strings.Contains(r.stderr, "working") || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("work after cancel: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWorkFailureRecordsExitCodeAndStderr(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.enqueue("--queue", "f", "--kind", "broken", "--max-attempts", "1")
	stop := startWork(t, f, "--queue", "f", "--", "sh", "-c", "echo oops >&2; exit 3")
	j := f.wait(id)
	if j.State != spool.StateDead || j.DeadReason != store.DeadMaxAttempts || len(j.Errors) != 1 {
		t.Fatalf("failed job: state %s, reason %q, %d errors", j.State, j.DeadReason, len(j.Errors))
	}
	if msg := j.Errors[0].Message; msg != "command exited with status 3: oops" {
		t.Fatalf("error message %q", msg)
	}
	r := stop()
	if r.code != 0 || !strings.Contains(r.stderr, "job failed") {
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
	// The history is visible through the CLI too.
	var got jobJSON
	f.okJSON(&got, "jobs", "get", id.String())
	if len(got.Errors) != 1 || !strings.Contains(got.Errors[0].Message, "status 3") || !strings.Contains(got.Errors[0].Message, "oops") {
		t.Fatalf("jobs get errors: %+v", got.Errors)
	}
}

func TestWorkEnvironmentAndTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	envJob := f.enqueue("--queue", "e", "--kind", "env.dump", "--tenant", "acme", "--meta", "traceparent="+tp)
	slow := f.enqueue("--queue", "e", "--kind", "slow", "--max-attempts", "1")
	script := `if [ "$SPOOL_JOB_KIND" = slow ]; then sleep 30 & sleep 31; fi
printf '{"id":"%s","kind":"%s","queue":"%s","attempt":%s,"tenant":"%s","home":"%s","traceparent":"%s"}' \
  "$SPOOL_JOB_ID" "$SPOOL_JOB_KIND" "$SPOOL_JOB_QUEUE" "$SPOOL_JOB_ATTEMPT" "$SPOOL_JOB_TENANT" "$HOME" "$TRACEPARENT"`
	stop := startWork(t, f, "--queue", "e", "--timeout", "300ms", "--", "sh", "-c", script)

	j := f.wait(envJob)
	var env map[string]any
	if err := json.Unmarshal(j.Result, &env); err != nil {
		t.Fatalf("result %q: %v", j.Result, err)
	}
	want := map[string]any{"id": envJob.String(), "kind": "env.dump", "queue": "e", "attempt": 1.0, "tenant": "acme", "traceparent": tp}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("$SPOOL_JOB_%s = %v, want %v", strings.ToUpper(k), env[k], v)
		}
	}
	if env["home"] == "" {
		t.Error("the parent's environment was not passed on ($HOME is empty)")
	}
	// A command over --timeout is killed, with the processes it started
	// (else Wait would hold the job until they exit), and the attempt fails.
	j = f.wait(slow)
	if j.State != spool.StateDead || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Message, "timed out") {
		t.Fatalf("slow job: state %s, errors %+v", j.State, j.Errors)
	}
	if r := stop(); r.code != 0 {
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCommandResult(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		out       string
		truncated bool
		want      string
	}{
		{"", false, ""},
		{" \n", false, ""},
		{`{"ok":true}` + "\n", false, `{"ok":true}`},
		{"42\n", false, "42"},
		{"hello <world>\n\n", false, `"hello <world>"`},
		{`{"cut`, false, `"{\"cut"`},
		{`{"a":1}`, true, `"{\"a\":1}"`}, // truncated output is never taken as JSON
	} {
		if got := string(commandResult([]byte(c.out), c.truncated)); got != c.want {
			t.Errorf("commandResult(%q, %v) = %s, want %s", c.out, c.truncated, got, c.want)
		}
	}
	// Escaping cannot push a result past the store's limit.
	big := bytes.Repeat([]byte{0x01}, store.MaxResultBytes)
	if got := commandResult(big, true); len(got) > store.MaxResultBytes || !json.Valid(got) {
		t.Errorf("escaped result is %d bytes (valid JSON: %v), over %d", len(got), json.Valid(got), store.MaxResultBytes)
	}
}

func TestOutputBuffers(t *testing.T) {
	t.Parallel()
	c := &cappedBuffer{limit: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("capped write = %d, %v", n, err)
		}
	}
	if string(c.Bytes()) != "abcde" || !c.truncated {
		t.Errorf("capped buffer = %q (truncated %v)", c.Bytes(), c.truncated)
	}
	tb := &tailBuffer{limit: 4}
	for _, s := range []string{"012", "3456", "789", "é"} {
		_, _ = tb.Write([]byte(s))
	}
	if got := tb.String(); got != "…89é" {
		t.Errorf("tail = %q", got)
	}
	short := &tailBuffer{limit: 10}
	_, _ = short.Write([]byte("oops\n"))
	if short.String() != "oops\n" {
		t.Errorf("short tail = %q", short.String())
	}
}
