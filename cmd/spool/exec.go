package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

const (
	// stderrTail is how much of the end of a failed command's stderr is
	// recorded as the attempt's error message.
	stderrTail = 2 << 10
	// waitDelay bounds how long a command's output pipes are read after it
	// exited or was killed: a background process it left behind that
	// still holds them open does not hold the job up longer than this.
	waitDelay = 2 * time.Second
)

// commandRunner runs one command per job or event: the payload on stdin,
// the job's or event's identity in the environment, and a non-zero exit as
// a failed attempt. For jobs, stdout is the result.
type commandRunner struct {
	argv      []string
	maxOutput int
	procs     *procSet
	log       *slog.Logger
}

// run is the Worker's catch-all handler for jobs.
func (r *commandRunner) run(ctx context.Context, job *spool.Job) ([]byte, error) {
	out, err := r.exec(ctx, invocation{
		stdin: job.Payload,
		env: append([]string{
			"SPOOL_JOB_ID=" + job.ID.String(),
			"SPOOL_JOB_KIND=" + job.Kind,
			"SPOOL_JOB_QUEUE=" + job.Queue,
			"SPOOL_JOB_ATTEMPT=" + strconv.Itoa(job.Attempts+1),
			"SPOOL_JOB_TENANT=" + job.Tenant,
		}, traceEnv(ctx, job.Metadata)...),
		what:   "job",
		result: true,
		attrs:  jobLogAttrs(job),
	})
	if err != nil {
		return nil, err
	}
	return commandResult(out.Bytes(), out.truncated), nil
}

// jobLogAttrs names a job in logs with the attributes every log line
// about a job uses: job, queue, kind, tenant (when it has one), attempt.
func jobLogAttrs(job *spool.Job) []any {
	attrs := []any{"job", job.ID, "queue", job.Queue, "kind", job.Kind}
	if job.Tenant != "" {
		attrs = append(attrs, "tenant", job.Tenant)
	}
	return append(attrs, "attempt", job.Attempts+1)
}

// traceEnv is the W3C trace context a command gets in TRACEPARENT and
// TRACESTATE, so that its own tracing continues the trace: the handler's
// span when this process traces, else the producer's context stored with
// the job or event.
func traceEnv(ctx context.Context, md map[string]string) []string {
	carrier := propagation.MapCarrier{}
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagation.TraceContext{}.Inject(ctx, carrier)
	} else {
		carrier = md
	}
	var env []string
	if tp := carrier[store.MetadataTraceparent]; tp != "" {
		env = append(env, "TRACEPARENT="+tp)
		if ts := carrier[store.MetadataTracestate]; ts != "" {
			env = append(env, "TRACESTATE="+ts)
		}
	}
	return env
}

// invocation is what one run of the command gets, and how logs name it.
type invocation struct {
	stdin []byte
	env   []string // added to the parent's environment
	what  string   // "job" or "event", for log messages
	attrs []any    // log attributes naming the job or event
	// result keeps stdout, up to maxOutput bytes; otherwise it is discarded.
	result bool
}

// exec runs the command once and returns its stdout (up to maxOutput
// bytes; nothing unless inv.result), or why it failed.
func (r *commandRunner) exec(ctx context.Context, inv invocation) (*cappedBuffer, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, r.argv[0], r.argv[1:]...)
	cmd.Stdin = bytes.NewReader(inv.stdin)
	cmd.Env = append(os.Environ(), inv.env...)
	stdout := &cappedBuffer{}
	stderr := &tailBuffer{limit: stderrTail}
	cmd.Stderr = stderr
	if inv.result {
		stdout.limit = r.maxOutput
		cmd.Stdout = stdout
	}
	// The command and everything it starts get a process group of their
	// own: a timeout or shutdown kills the whole group, and a Ctrl-C in
	// the terminal reaches only spool, which shuts down gracefully.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start command: %w", err)
	}
	pid := cmd.Process.Pid
	r.procs.add(pid)
	err := cmd.Wait()
	r.procs.remove(pid)
	elapsed := time.Since(start)

	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success() {
		r.log.Warn("command exited but a process it started kept its output open; output cut short", inv.attrs...)
		err = nil
	}
	if err != nil {
		err = commandError(ctx, cmd.ProcessState, err, stderr.String())
		msg := inv.what + " failed"
		if ctx.Err() != nil {
			// A timeout fails the attempt; a shutdown releases the job.
			msg = "command killed"
		}
		r.log.Warn(msg, append(inv.attrs, "elapsed", elapsed.Round(time.Millisecond), "err", err)...)
		return nil, err
	}
	if stdout.truncated {
		r.log.Warn("command output over --max-output; result truncated", append(inv.attrs, "limit", r.maxOutput)...)
	}
	r.log.Debug(inv.what+" completed", append(inv.attrs, "elapsed", elapsed.Round(time.Millisecond))...)
	return stdout, nil
}

// commandError says why a command failed: its exit status or signal, or
// why its context ended (wrapped, so the Worker sees a timeout or shutdown
// for what it is), and the tail of its stderr.
func commandError(ctx context.Context, ps *os.ProcessState, err error, stderr string) error {
	tail := ""
	if s := strings.TrimSpace(stderr); s != "" {
		tail = ": " + s
	}
	if ctx.Err() != nil {
		return fmt.Errorf("command killed (%w)%s", context.Cause(ctx), tail)
	}
	if ps == nil {
		return fmt.Errorf("command failed: %w%s", err, tail)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("command killed by signal %s%s", ws.Signal(), tail)
	}
	return fmt.Errorf("command exited with status %d%s", ps.ExitCode(), tail)
}

// commandResult turns a command's stdout into a job result, which is JSON:
// stdout itself when it is a JSON document, else stdout as a JSON string
// (without its trailing newlines). Empty output is no result.
func commandResult(out []byte, truncated bool) []byte {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return nil
	}
	if !truncated && json.Valid(trimmed) {
		return bytes.Clone(trimmed)
	}
	s := strings.TrimRight(string(out), "\r\n")
	for {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s) // a string always encodes
		b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if len(b) <= store.MaxResultBytes {
			return b
		}
		// Escaping grew it past the store's limit: keep less.
		s = s[:len(s)*9/10]
	}
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// cappedBuffer keeps the first limit bytes written to it and discards the
// rest, without failing the writer (a failed write would break the pipe
// of the command writing it).
type cappedBuffer struct {
	limit     int
	buf       bytes.Buffer
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *cappedBuffer) Bytes() []byte { return c.buf.Bytes() }

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	limit int
	buf   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.limit {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
	}
	return len(p), nil
}

// String returns the kept tail, starting at a whole UTF-8 character.
func (t *tailBuffer) String() string {
	b := t.buf
	cut := len(b) > t.limit
	if cut {
		b = b[len(b)-t.limit:]
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	if cut {
		return "…" + string(b)
	}
	return string(b)
}

// procSet is the set of process groups `spool work` is running.
type procSet struct {
	mu   sync.Mutex // guards pids
	pids map[int]struct{}
}

func newProcSet() *procSet { return &procSet{pids: map[int]struct{}{}} }

func (s *procSet) add(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[pid] = struct{}{}
}

func (s *procSet) remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pids, pid)
}

// killAll kills every running process group and returns how many there were.
func (s *procSet) killAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid := range s.pids {
		_ = killGroup(pid)
	}
	return len(s.pids)
}

// runEvent is the handler of the subscriptions `spool work` works: the
// event's payload on stdin, its identity in the environment. Stdout is
// discarded: a delivery has no result.
func (r *commandRunner) runEvent(ctx context.Context, e *spool.Event[json.RawMessage]) error {
	version := ""
	if e.Key != "" {
		version = strconv.FormatInt(e.Version, 10)
	}
	headers := "{}"
	if len(e.Headers) > 0 {
		b, err := json.Marshal(e.Headers)
		if err != nil {
			return err
		}
		headers = string(b)
	}
	attempt := e.Delivery.Attempts + 1
	_, err := r.exec(ctx, invocation{
		stdin: e.Raw,
		env: append([]string{
			"SPOOL_TOPIC=" + e.Topic,
			"SPOOL_SUBSCRIPTION=" + e.Subscription,
			"SPOOL_EVENT_ID=" + e.ID,
			"SPOOL_EVENT_KIND=" + e.Kind,
			"SPOOL_EVENT_POSITION=" + strconv.FormatInt(e.Position, 10),
			"SPOOL_ORDERING_KEY=" + e.Key,
			"SPOOL_EVENT_VERSION=" + version,
			"SPOOL_EVENT_TENANT=" + e.Tenant,
			"SPOOL_EVENT_HEADERS=" + headers,
			"SPOOL_EVENT_PUBLISHED_AT=" + e.PublishedAt.UTC().Format(time.RFC3339Nano),
			"SPOOL_DELIVERY_ID=" + e.Delivery.ID.String(),
			"SPOOL_ATTEMPT=" + strconv.Itoa(attempt),
		}, traceEnv(ctx, e.Headers)...),
		what: "event",
		attrs: []any{"subscription", e.Subscription, "event", e.ID, "kind", e.Kind, "position", e.Position,
			"delivery", e.Delivery.ID, "attempt", attempt},
	})
	return err
}
