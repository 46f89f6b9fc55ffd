package bench

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/store"
)

// ScheduleConfig describes a schedule scale run. Zero fields take the
// documented defaults.
type ScheduleConfig struct {
	// Store keeps the schedules. Required.
	Store store.ScheduleStore
	// Schedules is how many hourly schedules to create. They are spread
	// evenly over the hour, each at its own second ("S M * * * *"), so
	// 1,000,000 of them fire about 278 times a second. Default 1,000,000.
	Schedules int
	// Tenants spreads the schedules over this many tenants. Default 1,000.
	Tenants int
	// Batch is how many schedules one upsert call writes. Default 1,000.
	Batch int
	// Steady is how long steady-state lateness is measured, after the
	// backlog of slots that passed during creation is fired. Default 60s.
	Steady time.Duration
	// Burst is how many extra schedules are then created all due in the
	// same second, on top of the hourly ones. Default 100,000; -1: none.
	Burst int
	// Progress, if set, is told each phase's progress.
	Progress func(phase string, done, total int)
}

// ScheduleResult is what a schedule scale run measured. Lateness is the time
// from a slot to the moment FireDue returned with its run enqueued durably.
type ScheduleResult struct {
	Schedules     int     `json:"schedules"`
	Tenants       int     `json:"tenants"`
	CreateSeconds float64 `json:"create_seconds"`
	CreatePerSec  float64 `json:"create_per_sec"`
	// BacklogRuns were due when the scheduler started (slots that passed
	// while schedules were being created); BacklogSeconds is how long it
	// took to fire them.
	BacklogRuns    int     `json:"backlog_runs"`
	BacklogSeconds float64 `json:"backlog_seconds"`
	// Steady state: runs whose slots fell in the measured window.
	SteadySeconds     float64  `json:"steady_seconds"`
	SteadyRuns        int      `json:"steady_runs"`
	SteadyPerSec      float64  `json:"steady_per_sec"`
	SteadyLatenessMS  *Latency `json:"steady_lateness_ms"`
	SteadyMissedSlots int      `json:"steady_missed_slots"`
	// Burst: BurstSchedules due at one second; BurstSeconds is from that
	// second to the last of their runs enqueued.
	BurstSchedules    int      `json:"burst_schedules,omitempty"`
	BurstCreateSecond float64  `json:"burst_create_seconds,omitempty"`
	BurstRuns         int      `json:"burst_runs,omitempty"`
	BurstSeconds      float64  `json:"burst_seconds,omitempty"`
	BurstLatenessMS   *Latency `json:"burst_lateness_ms,omitempty"`
	// PeakRSSMiB is the process's peak resident memory (VmHWM): the
	// scheduler, the store and the benchmark together.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// FireCalls, FireMSAvg and FireBatchMean describe the FireDue calls
	// that took at least one schedule: how many, their mean duration and
	// the mean number of schedules each took.
	FireCalls     int     `json:"fire_calls"`
	FireMSAvg     float64 `json:"fire_ms_avg"`
	FireBatchMean float64 `json:"fire_batch_mean"`
}

func (c *ScheduleConfig) defaults() error {
	if c.Store == nil {
		return &store.ValidationError{Field: "store", Reason: "is required"}
	}
	c.Schedules = cmp.Or(c.Schedules, 1_000_000)
	c.Tenants = cmp.Or(c.Tenants, 1_000)
	c.Batch = cmp.Or(c.Batch, 1_000)
	c.Steady = cmp.Or(c.Steady, 60*time.Second)
	c.Burst = cmp.Or(c.Burst, 100_000)
	if c.Burst < 0 {
		c.Burst = 0
	}
	if c.Progress == nil {
		c.Progress = func(string, int, int) {}
	}
	var errs []error
	if c.Schedules < 1 || c.Tenants < 1 || c.Batch < 1 || c.Batch > store.MaxBatch || c.Steady <= 0 {
		errs = append(errs, &store.ValidationError{Field: "schedule bench", Reason: "schedules, tenants and steady must be positive and batch 1.." + strconv.Itoa(store.MaxBatch)})
	}
	return errors.Join(errs...)
}

// observed is one fired run and when its FireDue call returned.
type observed struct {
	slot, at time.Time
	burst    bool
}

// Schedules runs the schedule scale benchmark: create cfg.Schedules hourly
// schedules (timed), start a scheduler and fire the backlog, measure
// steady-state lateness for cfg.Steady, then create cfg.Burst schedules due
// in one second and time how long firing all of them takes.
func Schedules(ctx context.Context, cfg ScheduleConfig) (*ScheduleResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &ScheduleResult{Schedules: cfg.Schedules, Tenants: cfg.Tenants}

	// Create.
	start := time.Now()
	if err := upsertAll(ctx, cfg, cfg.Schedules, "create", func(i int) store.Schedule {
		sec := i % 3600
		return store.Schedule{
			ID:     fmt.Sprintf("hourly-%07d", i),
			Tenant: fmt.Sprintf("t%04d", i%cfg.Tenants),
			Spec:   fmt.Sprintf("%d %d * * * *", sec%60, sec/60),
			Queue:  "bench-schedules",
			Kind:   "report",
		}
	}); err != nil {
		return nil, err
	}
	created := time.Now()
	res.CreateSeconds = created.Sub(start).Seconds()
	res.CreatePerSec = float64(cfg.Schedules) / res.CreateSeconds

	// Fire: the scheduler reports every run; the benchmark keeps them.
	var (
		mu      sync.Mutex
		runs    []observed
		burstOn bool
		burstCh = make(chan struct{}, 1)
		timed   = &timedFire{ScheduleStore: cfg.Store}
	)
	sch := scheduler.New(scheduler.Config{Store: timed, OnFire: func(r *store.FireResult) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, run := range r.Runs {
			b := strings.HasPrefix(run.Ref.ID, "burst-")
			runs = append(runs, observed{slot: run.Slot, at: now, burst: b})
		}
		if burstOn {
			select {
			case burstCh <- struct{}{}:
			default:
			}
		}
	}})
	schedStart := time.Now()
	if err := sch.Start(ctx); err != nil {
		return nil, err
	}
	defer sch.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // stopped explicitly below; this covers early returns

	// Backlog: slots that passed during creation. It is drained when a
	// report shows runs that are on time.
	backlogCut := time.Now().Truncate(time.Second)
	for {
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
		mu.Lock()
		n := len(runs)
		caughtUp := n > 0 && runs[n-1].slot.After(backlogCut)
		mu.Unlock()
		cfg.Progress("backlog", n, n)
		if caughtUp || time.Since(schedStart) > 10*time.Minute {
			break
		}
	}
	mu.Lock()
	for _, r := range runs {
		if !r.slot.After(backlogCut) {
			res.BacklogRuns++
		}
	}
	res.BacklogSeconds = time.Since(schedStart).Seconds()
	mu.Unlock()

	// Steady state: slots in [steadyFrom, steadyTo).
	steadyFrom := time.Now().Add(2 * time.Second).Truncate(time.Second)
	steadyTo := steadyFrom.Add(cfg.Steady)
	for t := time.Now(); t.Before(steadyTo.Add(3 * time.Second)); t = time.Now() {
		cfg.Progress("steady", int(t.Sub(steadyFrom).Seconds()), int(cfg.Steady.Seconds()))
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
	mu.Lock()
	var late []time.Duration
	for _, r := range runs {
		if !r.slot.Before(steadyFrom) && r.slot.Before(steadyTo) {
			late = append(late, r.at.Sub(r.slot))
		}
	}
	mu.Unlock()
	res.SteadySeconds = cfg.Steady.Seconds()
	res.SteadyRuns = len(late)
	res.SteadyPerSec = float64(len(late)) / cfg.Steady.Seconds()
	res.SteadyLatenessMS = summarize(late)
	res.SteadyMissedSlots = expectedSlots(cfg.Schedules, steadyFrom, steadyTo) - len(late)

	// Burst: cfg.Burst schedules due at the same second, on top of the rest.
	if cfg.Burst > 0 {
		lead := time.Duration(float64(cfg.Burst)/res.CreatePerSec*2*float64(time.Second)) + 10*time.Second
		at := time.Now().Add(lead).Truncate(time.Second).UTC()
		spec := fmt.Sprintf("%d %d %d %d %d *", at.Second(), at.Minute(), at.Hour(), at.Day(), int(at.Month()))
		mu.Lock()
		burstOn = true
		mu.Unlock()
		t0 := time.Now()
		if err := upsertAll(ctx, cfg, cfg.Burst, "burst create", func(i int) store.Schedule {
			return store.Schedule{
				ID:     fmt.Sprintf("burst-%07d", i),
				Tenant: fmt.Sprintf("t%04d", i%cfg.Tenants),
				Spec:   spec,
				Queue:  "bench-schedules",
				Kind:   "burst",
			}
		}); err != nil {
			return nil, err
		}
		res.BurstSchedules = cfg.Burst
		res.BurstCreateSecond = time.Since(t0).Seconds()
		if time.Now().After(at) {
			return nil, fmt.Errorf("bench: creating %d burst schedules took %.1fs, past their slot %s", cfg.Burst, res.BurstCreateSecond, at)
		}
		deadline := at.Add(5 * time.Minute)
		for {
			mu.Lock()
			n := 0
			var last time.Time
			var lat []time.Duration
			for _, r := range runs {
				if r.burst {
					n++
					last = r.at
					lat = append(lat, r.at.Sub(r.slot))
				}
			}
			mu.Unlock()
			cfg.Progress("burst", n, cfg.Burst)
			if n >= cfg.Burst {
				res.BurstRuns = n
				res.BurstSeconds = last.Sub(at).Seconds()
				res.BurstLatenessMS = summarize(lat)
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("bench: %d of %d burst runs fired by %s", n, cfg.Burst, deadline)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-burstCh:
			case <-time.After(time.Second):
			}
		}
	}
	if err := sch.Stop(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	timed.mu.Lock()
	res.FireCalls = timed.calls
	if timed.calls > 0 {
		res.FireMSAvg = float64(timed.busy.Microseconds()) / 1000 / float64(timed.calls)
		res.FireBatchMean = float64(timed.fired) / float64(timed.calls)
	}
	timed.mu.Unlock()
	res.PeakRSSMiB = peakRSSMiB()
	return res, nil
}

// timedFire times the FireDue calls that take schedules.
type timedFire struct {
	store.ScheduleStore
	mu           sync.Mutex
	calls, fired int
	busy         time.Duration
}

func (t *timedFire) FireDue(ctx context.Context, p store.FireParams) (*store.FireResult, error) {
	start := time.Now()
	res, err := t.ScheduleStore.FireDue(ctx, p)
	if err == nil && res.Schedules > 0 {
		t.mu.Lock()
		t.calls++
		t.fired += res.Schedules
		t.busy += time.Since(start)
		t.mu.Unlock()
	}
	return res, err
}

// upsertAll writes n schedules made by mk in batches of cfg.Batch.
func upsertAll(ctx context.Context, cfg ScheduleConfig, n int, phase string, mk func(i int) store.Schedule) error {
	batch := make([]store.Schedule, 0, cfg.Batch)
	for i := 0; i < n; {
		batch = batch[:0]
		for ; i < n && len(batch) < cfg.Batch; i++ {
			batch = append(batch, mk(i))
		}
		res, err := cfg.Store.UpsertSchedules(ctx, batch)
		if err != nil {
			return fmt.Errorf("bench: create schedules: %w", err)
		}
		for k, r := range res {
			if r.Err != nil {
				return fmt.Errorf("bench: create schedule %s: %w", batch[k].Ref(), r.Err)
			}
		}
		cfg.Progress(phase, i, n)
	}
	return nil
}

// expectedSlots counts the hourly slots of n spread schedules in [from, to):
// schedule i fires at second i%3600 of each hour.
func expectedSlots(n int, from, to time.Time) int {
	total := 0
	for t := from; t.Before(to); t = t.Add(time.Second) {
		sec := t.Minute()*60 + t.Second()
		if sec < n%3600 {
			total += n/3600 + 1
		} else {
			total += n / 3600
		}
	}
	return total
}

func summarize(d []time.Duration) *Latency {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	return &Latency{P50: pct(d, 0.50), P95: pct(d, 0.95), P99: pct(d, 0.99), Max: pct(d, 1)}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// peakRSSMiB reads the process's peak resident set size from /proc (Linux);
// zero elsewhere.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err == nil {
				return float64(kb) / 1024
			}
		}
	}
	return 0
}
