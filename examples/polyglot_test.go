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
	bin := buildSpool(t)
	// Without keys, every request acts as an operator's; with a tenant's
	// key, the worker's queues and topics are stored under "acme/", which
	// it never sees.
	dir := t.TempDir()
	insecure := serve(t, bin, filepath.Join(dir, "insecure.db"), true)
	keyed := filepath.Join(dir, "keyed.db")
	acme := makeKey(t, bin, keyed, "acme")
	operator := makeKey(t, bin, keyed, "*")
	secure := serve(t, bin, keyed, false)
	for _, w := range workers {
		for _, mode := range []struct{ name, base, key, prefix string }{
			{"insecure", insecure, "", ""},
			{"tenant-key", secure, acme, "acme/"},
		} {
			t.Run(w.name+"/"+mode.name, func(t *testing.T) {
				if slices.Contains(missing, w.interpreter) {
					t.Skipf("%s is not on PATH (or, for node, older than 18)", w.interpreter)
				}
				sum := runWorker(t, w.interpreter, w.script, mode.base, mode.key, "polyglot/"+w.name)
				api := client{base: mode.base, key: mode.key}
				checkJobs(t, api, w.name, "polyglot/"+w.name, sum)
				checkEvents(t, api, w.name, sum)
				if mode.prefix == "" {
					return
				}
				// The operator sees what the worker made under its tenant's prefix.
				op := client{base: mode.base, key: operator}
				var j job
				op.get(t, "/v1/jobs/"+sum.Jobs[0].ID, &j)
				if j.Queue != mode.prefix+"polyglot/"+w.name {
					t.Errorf("the operator sees the job in queue %q", j.Queue)
				}
				var sub struct{ Queue string }
				op.get(t, "/v1/topics/"+url.PathEscape(mode.prefix+sum.Topic)+"/subscriptions/"+w.name, &sub)
				if sub.Queue != "sub/"+mode.prefix+sum.Topic+"/"+w.name {
					t.Errorf("the operator sees the subscription's queue as %q", sub.Queue)
				}
			})
		}
	}
}

// runWorker runs a worker script against base with key (none when empty)
// and returns its summary.
func runWorker(t *testing.T, interpreter, script, base, key, queue string) summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, script, base, queue)
	cmd.Env = append(os.Environ(), "SPOOL_API_KEY="+key)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", interpreter, script, err, stdout.String(), stderr.String())
	}
	t.Logf("%s printed:\n%s", script, stdout.String())
	var sum summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("the summary is not JSON: %v", err)
	}
	return sum
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
func checkJobs(t *testing.T, api client, by, queue string, sum summary) {
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
		api.get(t, "/v1/jobs/"+s.ID, &j)
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
	api.get(t, "/v1/dlq?queue="+url.QueryEscape(queue), &dead)
	if len(dead.Jobs) != 1 || dead.Jobs[0].Kind != "poison" {
		t.Errorf("dead letters of %s: %+v", queue, dead.Jobs)
	}
}

// checkEvents checks that the worker's subscription got its event and
// handled it.
func checkEvents(t *testing.T, api client, name string, sum summary) {
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
	api.get(t, "/v1/topics/"+url.PathEscape(sum.Topic)+"/subscriptions/"+name, &sub)
	if sub.Queue != "sub/"+sum.Topic+"/"+name || sub.Lag.Head != 1 || sub.Lag.Behind != 0 {
		t.Errorf("subscription %s/%s: %+v", sum.Topic, name, sub)
	}
}

// client reads the API at base with key (none when empty).
type client struct{ base, key string }

// get reads path from the API into v.
func (c client) get(t *testing.T, path string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
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

// buildSpool builds the spool command into a temporary directory.
func buildSpool(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	if err != nil {
		t.Fatalf("the test builds spool with the go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "spool")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/spoolrun/spool/cmd/spool").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/spool: %v\n%s", err, out)
	}
	return bin
}

// makeKey makes an admin key of tenant in the store at path with spool
// keys create, and returns its token.
func makeKey(t *testing.T, bin, path, tenant string) string {
	t.Helper()
	out, err := exec.Command(bin, "keys", "create", "--tenant", tenant, "--role", "admin", "--json", "--store", path).Output()
	if err != nil {
		t.Fatalf("spool keys create: %v", err)
	}
	var made struct{ Token string }
	if err := json.Unmarshal(out, &made); err != nil || made.Token == "" {
		t.Fatalf("spool keys create printed %s (%v)", out, err)
	}
	return made.Token
}

// serve starts spool serve on the SQLite file at path (insecure: without
// keys) and returns its URL; it is stopped (SIGINT) when the test ends.
func serve(t *testing.T, bin, path string, insecure bool) string {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--json", "--store", path}
	if insecure {
		args = append(args, "--insecure-no-auth")
	}
	cmd := exec.Command(bin, args...)
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
