package spooltest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/testhook"
	"github.com/spoolrun/spool/store"
)

// Result is what working one job did.
type Result struct {
	// Job is the job as the store holds it after the verdict: completed
	// with its Result, scheduled for a retry with the failure in Errors,
	// cancelled, dead, ...
	Job *spool.Job

	// Outcome is the verdict the handler's return gave: store.Complete,
	// store.Fail (retried, or dead once MaxAttempts failures are spent: see
	// Job.State), store.Cancel, store.Snooze or store.DeadLetter.
	Outcome store.Outcome

	// Err is the attempt's error as the Worker recorded it: the handler's
	// error, with why its context ended when it did (a timeout); a
	// *spool.PanicError for a panic; "no handler registered" for a kind
	// without one. nil when the job completed.
	Err error

	// Delay is, for store.Fail and store.Snooze, how long after the verdict
	// the job runs again, by the store's clock: the retry policy's delay,
	// or the snooze's.
	Delay time.Duration

	// Refused is the store's refusal of the verdict, such as an error
	// matching spool.ErrLockLost when the job was cancelled while its
	// handler ran; nil when the verdict was applied.
	Refused error
}

// WorkOne claims one available job of queue and works it with w's
// handlers and semantics (see the package documentation), in the calling
// goroutine, writing its verdict before it returns. w must not be started,
// and must be configured for queue (WorkerConfig.Queues). It fails the test
// when the queue has no job available, saying how many are scheduled for
// later, and when the store fails; the handler failing is not a test
// failure but a Result.
func WorkOne(ctx context.Context, tb testing.TB, w *spool.Worker, queue string) *Result {
	tb.Helper()
	res, err := workOne(ctx, w, queue)
	if err != nil {
		tb.Fatalf("spooltest: WorkOne: %v", err)
		return nil
	}
	if res == nil {
		msg := fmt.Sprintf("spooltest: WorkOne: queue %q has no job available", queue)
		if later, err := scheduled(ctx, w, queue); err == nil && len(later) > 0 {
			msg += "; " + laterText(later)
		}
		tb.Fatalf("%s", msg)
	}
	return res
}

// Drained is what Drain did.
type Drained struct {
	// Worked holds a Result for each job worked, in the order worked; a
	// job that was retried or snoozed within the Drain appears once per
	// execution.
	Worked []*Result
	// Scheduled holds the jobs of the queue left scheduled for later when
	// Drain stopped, such as retries whose backoff has not passed by the
	// store's clock, in enqueue order.
	Scheduled []*spool.Job
}

// maxDrain bounds the executions of one Drain.
var maxDrain = 10_000

// Drain works the jobs of queue with w, one at a time as WorkOne does,
// until the queue has no job available, including jobs that the handlers
// enqueue on it and retries that are due at once. Jobs scheduled for later
// by the store's clock are left, returned in Drained.Scheduled and logged.
// It fails the test when the store fails, and after 10,000 executions (a
// handler that snoozes or fails without delay forever keeps a queue busy).
func Drain(ctx context.Context, tb testing.TB, w *spool.Worker, queue string) *Drained {
	tb.Helper()
	d := &Drained{}
	for {
		if len(d.Worked) == maxDrain {
			tb.Fatalf("spooltest: Drain: queue %q still has jobs available after %d executions: does a handler snooze, or fail without a retry delay, forever?", queue, maxDrain)
			return d
		}
		res, err := workOne(ctx, w, queue)
		if err != nil {
			tb.Fatalf("spooltest: Drain: %v", err)
			return d
		}
		if res == nil {
			break
		}
		d.Worked = append(d.Worked, res)
	}
	later, err := scheduled(ctx, w, queue)
	if err != nil {
		tb.Fatalf("spooltest: Drain: list the jobs scheduled for later: %v", err)
		return d
	}
	d.Scheduled = later
	if len(later) > 0 {
		tb.Logf("spooltest: Drain worked %d jobs of queue %q; %s", len(d.Worked), queue, laterText(later))
	}
	return d
}

// workOne works one job through the Worker's hook; nil when none was
// available.
func workOne(ctx context.Context, w *spool.Worker, queue string) (*Result, error) {
	a, err := testhook.WorkOne(ctx, w, queue)
	if err != nil {
		return nil, err
	}
	if a.Job == nil {
		return nil, nil
	}
	return &Result{Job: a.Settled, Outcome: a.Verdict.Outcome, Err: a.Err, Delay: a.Verdict.Delay, Refused: a.Refused}, nil
}

// scheduled lists queue's jobs scheduled for later.
func scheduled(ctx context.Context, w *spool.Worker, queue string) ([]*spool.Job, error) {
	st, err := testhook.Store(w)
	if err != nil {
		return nil, err
	}
	var out []*spool.Job
	p := spool.ListParams{Queue: queue, States: []spool.State{spool.StateScheduled}, Limit: store.MaxListLimit}
	for {
		page, err := st.List(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Jobs...)
		if page.Next.IsZero() {
			return out, nil
		}
		p.After = page.Next
	}
}

// laterText says which jobs wait for later.
func laterText(later []*spool.Job) string {
	kinds := map[string]int{}
	var order []string
	for _, j := range later {
		if kinds[j.Kind] == 0 {
			order = append(order, j.Kind)
		}
		kinds[j.Kind]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d of kind %q", kinds[k], k)
	}
	n := "1 job is"
	if len(later) != 1 {
		n = fmt.Sprintf("%d jobs are", len(later))
	}
	return n + " scheduled for later (" + strings.Join(parts, ", ") + "); move the store's clock to run them"
}
