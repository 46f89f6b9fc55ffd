// Package peers runs the same job-system workloads on Spool and on its peers
// (River, Asynq, goqite, NATS JetStream) and reports them side by side.
//
// # Systems
//
// Each system under test implements [System] in a file of its own. The
// harness owns the workloads; a system only knows how to enqueue a batch of
// payloads, run workers that report when a job starts and when completions
// became durable, and count what it still holds.
//
// # Workloads
//
//   - enqueue: N jobs in batches of B through the system's batch API, timed;
//   - burn-down: those N jobs are then worked; jobs/s runs from the first
//     worker start to the last durable completion the harness can observe;
//   - continuous: R jobs/s for D, one enqueue call per job, with the
//     enqueue→start latency of every job.
//
// The enqueue workload is the first half of the burn-down: the same jobs are
// timed going in, then timed coming out.
//
// Every job has the same payload, a small JSON object carrying a sequence
// number and the time its enqueue began; every system runs the same number
// of workers.
package peers

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrUnreachable marks a system whose server did not answer: the harness
// skips it with a line saying so.
var ErrUnreachable = errors.New("server not reachable")

// System is one job system under test. For each workload the harness calls
// Open, then Enqueue and Start/Stop as the workload needs, then Remaining to
// check that nothing was left behind, then Close. A System is used by one
// workload at a time, but its Enqueue may be called concurrently.
type System interface {
	// Name is the row's label, such as "River (PostgreSQL)".
	Name() string
	// Info says what the row's numbers mean: version, durability, settings.
	Info() Info
	// Probe checks that the system's server answers. It returns an error
	// matching ErrUnreachable when it does not.
	Probe(ctx context.Context) error
	// Open prepares a fresh, empty instance (a new database, file, stream
	// or Redis database) whose workers will run up to workers jobs at once.
	Open(ctx context.Context, workers int) error
	// Enqueue adds one job per payload in one call of the system's API: its
	// single-job call for one payload, its batch call for more. When it
	// returns nil the system has acknowledged every job.
	Enqueue(ctx context.Context, payloads [][]byte) error
	// Start starts the workers, running a no-op handler that reports to w,
	// and returns once they run.
	Start(ctx context.Context, w Work) error
	// Stop stops the workers started by Start, waiting for them.
	Stop(ctx context.Context) error
	// Remaining counts the jobs the system still holds unfinished (not
	// completed and acknowledged).
	Remaining(ctx context.Context) (int, error)
	// Close releases the instance and deletes what Open made.
	Close(ctx context.Context) error
}

// Work is what a system's workers report to the harness.
type Work struct {
	// Started is called by the handler as each job begins, with the job's
	// payload as the system delivered it.
	Started func(payload []byte)
	// Completed is called when n more completions became durable, as far as
	// the system lets the harness observe it (Info.Completion says how). It
	// may be called concurrently.
	Completed func(n int)
}

// Info describes a system's row.
type Info struct {
	// Version is the Go module version of the system's client library.
	Version string `json:"version"`
	// Server names the server the system talks to and its version, if any.
	Server string `json:"server,omitempty"`
	// Durable is true when an acknowledged enqueue or completion has been
	// fsynced: it survives a power loss.
	Durable bool `json:"durable"`
	// Durability says in a few words what an acknowledgement guarantees.
	Durability string `json:"durability"`
	// Caveat is the short tag printed next to each number of a system that
	// is not Durable, such as "no fsync".
	Caveat string `json:"caveat,omitempty"`
	// Settings lists the configuration used, as its docs recommend for
	// throughput.
	Settings string `json:"settings"`
	// Completion says how the harness observes a durable completion.
	Completion string `json:"completion"`
}

// moduleVersion returns the version of module path in this binary, with its
// replacement when the module is replaced (Spool is benchmarked from the
// working tree).
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range info.Deps {
		if m.Path != path {
			continue
		}
		if m.Replace != nil {
			if m.Replace.Version == "" || m.Replace.Version == "(devel)" {
				return "working tree (" + m.Replace.Path + ")"
			}
			return m.Replace.Version
		}
		return m.Version
	}
	if info.Main.Path == path {
		return info.Main.Version
	}
	return "unknown"
}

// unreachable wraps err as ErrUnreachable with the address that failed.
func unreachable(addr string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
}
