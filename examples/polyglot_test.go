package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPolyglotWorkers runs the Python and Node workers against a real
// spool serve on a temporary SQLite file, then checks through the API what
// became of their jobs and events. A worker whose interpreter is not on
// PATH is skipped (CI installs both: .ci/run).
func TestPolyglotWorkers(t *testing.T) {
	workers := []struct{ name, interpreter, script string }{
		{"python", "python3", filepath.Join("python", "worker.py")},
		{"node", "node", filepath.Join("node", "worker.mjs")},
	}
	var missing []string
	for _, w := range workers {
		if _, err := exec.LookPath(w.interpreter); err != nil || w.interpreter == "node" && !nodeHasFetch() {
			missing = append(missing, w.interpreter)
		}
	}
	if len(missing) == len(workers) {
		t.Skipf("%s not on PATH (or node older than 18)", strings.Join(missing, " and "))
	}
	base := serve(t)
	for _, w := range workers {
		t.Run(w.name, func(t *testing.T) {
			if slices.Contains(missing, w.interpreter) {
				t.Skipf("%s is not on PATH (or, for node, older than 18)", w.interpreter)
			}
			queue := "polyglot/" + w.name
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, w.interpreter, w.script, base, queue)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", w.interpreter, w.script, err, stdout.String(), stderr.String())
			}
			t.Logf("%s printed:\n%s", w.script, stdout.String())
			var sum summary
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("the summary is not JSON: %v", err)
			}
			checkJobs(t, base, w.name, queue, sum)
			checkEvents(t, base, w.name, sum)
		})
	}
}

// summary is what a worker prints.
type summary struct {
	Queue string `json:"queue"`
	Jobs  []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	} `json:"jobs"`
	StaleToken string   `json:"stale_token"`
	Topic      string   `json:"topic"`
	Published  string   `json:"published"`
	Delivered  []string `json:"delivered"`
}

// job is a job as the API answers it.
type job struct {
	ID       string          `json:"id"`
	Queue    string          `json:"queue"`
	Kind     string          `json:"kind"`
	State    string          `json:"state"`
	Attempts int             `json:"attempts"`
	Result   json.RawMessage `json:"result"`
	Errors   []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// checkJobs checks each job's final state as spool serve has it, not as
// the worker said.
func checkJobs(t *testing.T, base, by, queue string, sum summary) {
	t.Helper()
	if sum.Queue != queue || len(sum.Jobs) != 5 {
		t.Fatalf("summary: queue %q with %d jobs", sum.Queue, len(sum.Jobs))
	}
	if sum.StaleToken != "lock_lost" {
		t.Errorf("a settle with a stale lock token answered %q, want lock_lost", sum.StaleToken)
	}
	kinds := map[string]int{}
	for _, s := range sum.Jobs {
		var j job
		get(t, base, "/v1/jobs/"+s.ID, &j)
		kinds[j.Kind]++
		if j.Queue != queue {
			t.Errorf("job %s is in queue %q, want %q", j.ID, j.Queue, queue)
		}
		var res struct{ By string }
		switch j.Kind {
		case "greet":
			if j.State != "completed" || j.Attempts != 0 || json.Unmarshal(j.Result, &res) != nil || res.By != by {
				t.Errorf("greet job: %+v", j)
			}
		case "flaky": // failed once, retried, completed
			if j.State != "completed" || j.Attempts != 1 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Message, "timed out") {
				t.Errorf("flaky job: %+v", j)
			}
		case "poison": // dead-lettered at once
			if j.State != "dead" || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Message, "poison pill") {
				t.Errorf("poison job: %+v", j)
			}
		default:
			t.Errorf("job of kind %q", j.Kind)
		}
	}
	if kinds["greet"] != 3 || kinds["flaky"] != 1 || kinds["poison"] != 1 {
		t.Errorf("job kinds: %v", kinds)
	}
	var dead struct{ Jobs []job }
	get(t, base, "/v1/dlq?queue="+url.QueryEscape(queue), &dead)
	if len(dead.Jobs) != 1 || dead.Jobs[0].Kind != "poison" {
		t.Errorf("dead letters of %s: %+v", queue, dead.Jobs)
	}
}

// checkEvents checks that the worker's subscription got its event and
// handled it.
func checkEvents(t *testing.T, base, name string, sum summary) {
	t.Helper()
	if sum.Published == "" || !slices.Equal(sum.Delivered, []string{sum.Published}) {
		t.Fatalf("published %q, delivered %q", sum.Published, sum.Delivered)
	}
	var sub struct {
		Queue string `json:"queue"`
		Lag   struct {
			Head   int64 `json:"head"`
			Behind int64 `json:"behind"`
		} `json:"lag"`
	}
	get(t, base, "/v1/topics/"+url.PathEscape(sum.Topic)+"/subscriptions/"+name, &sub)
	if sub.Queue != "sub/"+sum.Topic+"/"+name || sub.Lag.Head != 1 || sub.Lag.Behind != 0 {
		t.Errorf("subscription %s/%s: %+v", sum.Topic, name, sub)
	}
}

// get reads path from the API into v.
func get(t *testing.T, base, path string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// serve builds the spool command, starts spool serve on a temporary SQLite
// file, and returns its URL; it is stopped (SIGINT) when the test ends.
func serve(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	goTool, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	if err != nil {
		t.Fatalf("the test builds spool with the go command: %v", err)
	}
	bin := filepath.Join(dir, "spool")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/spoolrun/spool/cmd/spool").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/spool: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--insecure-no-auth", "--addr", "127.0.0.1:0", "--json",
		"--store", filepath.Join(dir, "spool.db"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("spool serve exited with %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("spool serve did not stop on SIGINT\n%s", stderr.String())
		}
	})
	var started struct{ URL string }
	decoded := make(chan error, 1)
	go func() {
		decoded <- json.NewDecoder(stdout).Decode(&started)
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case err := <-decoded:
		if err != nil || started.URL == "" {
			t.Fatalf("spool serve printed no URL (%v)\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("spool serve did not start\n%s", stderr.String())
	}
	return started.URL
}

// nodeHasFetch reports whether node is 18 or later, with a built-in fetch.
func nodeHasFetch() bool {
	out, err := exec.Command("node", "-e", "process.exit(typeof fetch === 'function' ? 0 : 1)").CombinedOutput()
	return err == nil && len(out) == 0
}
