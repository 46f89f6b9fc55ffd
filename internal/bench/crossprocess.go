package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// report is one line of JSON the worker process of a cross-process run
// writes to its standard output; exactly one field is set.
type report struct {
	Ready  bool    `json:"ready,omitempty"`
	Done   int     `json:"done,omitempty"` // jobs completed so far
	Result *Result `json:"result,omitempty"`
	Idle   *Idle   `json:"idle,omitempty"`
}

// CrossProcess measures pickup across processes: it enqueues cfg.Rate
// jobs/s for cfg.Duration from this process, one per Enqueue call, while
// worker, a command that runs WorkerProcess on the same store with Jobs set
// to rate × duration, works them. The latency is from just before Enqueue
// here to the handler's start there, on the wall clock the two processes
// share. The worker then idles and reports its CPU use (Result.Idle). worker
// must not be started; its standard output is the run's protocol.
func CrossProcess(ctx context.Context, cfg Config, worker *exec.Cmd) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	if total < 1 {
		return nil, &store.ValidationError{Field: "rate", Reason: "rate × duration is less than one job"}
	}
	out, err := worker.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := worker.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the worker process: %w", err)
	}
	reports := make(chan report)
	readErr := make(chan error, 1)
	go func() {
		defer close(reports)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				readErr <- fmt.Errorf("bench: the worker process wrote %q: %w", sc.Text(), err)
				io.Copy(io.Discard, out) //nolint:errcheck // let the worker finish writing
				return
			}
			reports <- r
		}
		readErr <- sc.Err()
	}()
	finish := func(err error) (*Result, error) {
		if err != nil {
			worker.Process.Kill() //nolint:errcheck // it may have exited already
		}
		for range reports { //nolint:revive // drain until the reader ends
		}
		werr := worker.Wait()
		if err == nil && werr != nil {
			err = fmt.Errorf("bench: the worker process: %w", werr)
		}
		return nil, errors.Join(err, <-readErr)
	}
	next := func() (report, error) {
		select {
		case r, ok := <-reports:
			if !ok {
				return report{}, errors.New("bench: the worker process ended early")
			}
			return r, nil
		case <-ctx.Done():
			return report{}, ctx.Err()
		}
	}
	if r, err := next(); err != nil || !r.Ready {
		return finish(errors.Join(err, errors.New("bench: the worker process did not start")))
	}

	client, err := spool.NewClient(spool.Config{Store: cfg.Store})
	if err != nil {
		return finish(err)
	}
	start := time.Now()
	produced := make(chan error, 1)
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	go func() {
		produced <- produce(pctx, client, cfg, total, func() uint64 { return uint64(time.Now().UnixNano()) }) //nolint:gosec // the clock is after 1970
	}()
	var res *Result
	for res == nil {
		r, err := next()
		if err != nil {
			stopProducing()
			if perr := <-produced; perr != nil && !errors.Is(perr, context.Canceled) {
				err = errors.Join(err, perr)
			}
			return finish(err)
		}
		if r.Done > 0 && cfg.Progress != nil {
			cfg.Progress(r.Done, total)
		}
		res = r.Result
	}
	elapsed := time.Since(start)
	if err := <-produced; err != nil {
		return finish(err)
	}
	for {
		r, ok := <-reports
		if !ok {
			break
		}
		if r.Idle != nil {
			res.Idle = r.Idle
		}
	}
	if err := worker.Wait(); err != nil {
		return nil, fmt.Errorf("bench: the worker process: %w", err)
	}
	if err := <-readErr; err != nil {
		return nil, err
	}
	res.Mode, res.Rate, res.Jobs = "cross-process", cfg.Rate, total
	res.Seconds, res.JobsPerSec = elapsed.Seconds(), float64(total)/elapsed.Seconds()
	return res, nil
}

// WorkerProcess is the worker half of CrossProcess, run in a process of its
// own on the same store: it works cfg.Jobs no-op jobs of cfg.Queue with
// cfg.Workers at once, then leaves the worker idle for idle (none if not
// positive) and measures the process's CPU time meanwhile. It writes its
// reports to out.
func WorkerProcess(ctx context.Context, cfg Config, idle time.Duration, out io.Writer) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	cs := &countingStore{Store: cfg.Store, target: int64(cfg.Jobs), done: make(chan struct{})}
	latencies := make([]time.Duration, cfg.Jobs)
	var started atomic.Int64
	w, err := newWorker(cs, cfg, func(_ context.Context, job *spool.Job) ([]byte, error) {
		lat := time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(job.Payload))) //nolint:gosec // stamped by time.Now().UnixNano()
		if i := started.Add(1) - 1; i < int64(len(latencies)) {
			latencies[i] = lat
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	err = enc.Encode(report{Ready: true})
	if err == nil {
		err = cs.wait(ctx, func(done, _ int) { enc.Encode(report{Done: done}) }) //nolint:errcheck // progress only
	}
	if err == nil {
		lat := latencies[:min(int(started.Load()), len(latencies))]
		slices.Sort(lat)
		err = enc.Encode(report{Result: &Result{
			Workers:     cfg.Workers,
			LatencyMS:   &Latency{P50: pct(lat, 0.50), P95: pct(lat, 0.95), P99: pct(lat, 0.99), Max: pct(lat, 1)},
			SettleBatch: w.Stats().Settle.AverageBatch(),
		}})
	}
	if err == nil && idle > 0 {
		var r *Idle
		if r, err = idleCPU(ctx, idle); err == nil {
			err = enc.Encode(report{Idle: r})
		}
	}
	return errors.Join(err, stop(ctx, w))
}

// idleSettle is how long the worker is left to finish its last verdicts
// and wake-ups before its idle CPU is measured.
const idleSettle = time.Second

// idleCPU measures this process's CPU time over d.
func idleCPU(ctx context.Context, d time.Duration) (*Idle, error) {
	t := time.NewTimer(idleSettle)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c0, err := cpuTime()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	t.Reset(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c1, err := cpuTime()
	if err != nil {
		return nil, err
	}
	wall := time.Since(start)
	return &Idle{Seconds: wall.Seconds(), CPUSeconds: (c1 - c0).Seconds(), CPUPercent: 100 * float64(c1-c0) / float64(wall)}, nil
}
