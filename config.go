package spool

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/maint"
	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/internal/settle"
	"github.com/spoolrun/spool/store"
)

// Worker defaults, for the zero fields of WorkerConfig and its parts.
const (
	defaultLockDuration    = 30 * time.Second
	defaultJobTimeout      = time.Minute
	defaultTimeoutGrace    = 10 * time.Second
	defaultPollInterval    = time.Second
	defaultShutdownTimeout = 10 * time.Second
	defaultConcurrency     = 10
	defaultHeartbeat       = 10 * time.Second
)

// queueSpec is one queue of a resolved WorkerConfig.
type queueSpec struct {
	name     string
	conc     int           // executors: Concurrency with its default applied
	capacity int           // Concurrency + Prefetch: most jobs claimed and not yet finished
	lock     time.Duration // zero: WorkerConfig.LockDuration
	sub      *subscriber   // a subscription's deliveries; nil for a job queue
}

// resolve fills cfg's zero fields with their defaults, then checks every
// field and returns all mistakes at once, joined. Each is a
// *store.ValidationError or *store.LimitError (both match ErrInvalid) named
// after the public field, such as WorkerConfig.SettleDelay or
// QueueConfig["mail"].Prefetch. Defaults come first so that what is
// checked is what will run. resolve also returns the queues, sorted by
// name.
func (cfg *WorkerConfig) resolve() ([]queueSpec, error) {
	var errs []error
	invalid := func(field, format string, args ...any) {
		errs = append(errs, &store.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	notNegative := func(field string, d time.Duration) {
		if d < 0 {
			invalid(field, "%v is negative", d)
		}
	}
	inRange := func(field string, v, limit int) {
		switch {
		case v < 1:
			invalid(field, "%d is below 1", v)
		case v > limit:
			errs = append(errs, &store.LimitError{Field: field, Limit: limit, Got: v})
		}
	}

	if cfg.Store == nil {
		invalid("WorkerConfig.Store", "is required")
	}
	cfg.LockDuration = cmp.Or(cfg.LockDuration, defaultLockDuration)
	if d := cfg.LockDuration; d < store.MinLockDuration || d > store.MaxLockDuration {
		invalid("WorkerConfig.LockDuration", "%v is outside %v..%v", d, store.MinLockDuration, store.MaxLockDuration)
	}
	cfg.JobTimeout = cmp.Or(cfg.JobTimeout, defaultJobTimeout) // negative: no timeout
	cfg.TimeoutGrace = cmp.Or(cfg.TimeoutGrace, defaultTimeoutGrace)
	notNegative("WorkerConfig.TimeoutGrace", cfg.TimeoutGrace)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, defaultPollInterval)
	notNegative("WorkerConfig.PollInterval", cfg.PollInterval)
	cfg.SettleBatch = cmp.Or(cfg.SettleBatch, settle.DefaultMaxBatch)
	inRange("WorkerConfig.SettleBatch", cfg.SettleBatch, store.MaxBatch)
	cfg.SettleDelay = cmp.Or(cfg.SettleDelay, settle.DefaultMaxDelay)
	notNegative("WorkerConfig.SettleDelay", cfg.SettleDelay)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, defaultShutdownTimeout)
	notNegative("WorkerConfig.ShutdownTimeout", cfg.ShutdownTimeout)
	if cfg.Retry == nil {
		cfg.Retry = DefaultRetry
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = cmp.Or(host, "worker") + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(uint64(rand.Uint32()), 36)
	}
	hb := &cfg.Heartbeat
	hb.Interval = cmp.Or(hb.Interval, defaultHeartbeat)
	hb.TTL = cmp.Or(hb.TTL, 3*hb.Interval)
	if hb.Interval < 0 {
		invalid("HeartbeatConfig.Interval", "%v is negative", hb.Interval)
	}
	if hb.TTL < hb.Interval || hb.TTL < store.MinWorkerTTL || hb.TTL > store.MaxWorkerTTL {
		invalid("HeartbeatConfig.TTL", "%v is outside max(Interval, %v)..%v", hb.TTL, store.MinWorkerTTL, store.MaxWorkerTTL)
	}

	if cfg.Queues == nil {
		cfg.Queues = map[string]QueueConfig{store.DefaultQueue: {}}
	}
	queues := cfg.Queues
	var specs []queueSpec
	for _, name := range slices.Sorted(maps.Keys(queues)) {
		q := queues[name]
		if err := store.ValidName(fmt.Sprintf("WorkerConfig.Queues[%q]", name), name, false); err != nil {
			errs = append(errs, err)
		}
		conc, capacity, err := slots(fmt.Sprintf("QueueConfig[%q].", name), q.Concurrency, q.Prefetch)
		if err != nil {
			errs = append(errs, err)
		}
		specs = append(specs, queueSpec{name: name, conc: conc, capacity: capacity})
	}

	m := &cfg.Maintenance
	m.ReapInterval = cmp.Or(m.ReapInterval, maint.DefaultReapInterval)
	notNegative("MaintenanceConfig.ReapInterval", m.ReapInterval)
	m.RetentionInterval = cmp.Or(m.RetentionInterval, maint.DefaultRetentionInterval)
	notNegative("MaintenanceConfig.RetentionInterval", m.RetentionInterval)
	m.CompletedRetention = cmp.Or(m.CompletedRetention, maint.DefaultCompletedRetention)
	m.CancelledRetention = cmp.Or(m.CancelledRetention, maint.DefaultCancelledRetention)
	m.DeadRetention = cmp.Or(m.DeadRetention, KeepForever)
	m.InboxRetention = cmp.Or(m.InboxRetention, maint.DefaultInboxRetention)
	for _, r := range []struct {
		field string
		d     time.Duration
	}{
		{"MaintenanceConfig.CompletedRetention", m.CompletedRetention},
		{"MaintenanceConfig.CancelledRetention", m.CancelledRetention},
		{"MaintenanceConfig.DeadRetention", m.DeadRetention},
		{"MaintenanceConfig.InboxRetention", m.InboxRetention},
	} {
		if r.d < 0 && r.d != KeepForever {
			invalid(r.field, "%v is negative; use a positive duration, or KeepForever", r.d)
		}
	}

	// Checked whether or not the store keeps schedules, so a config that
	// works on one store does not fail on another.
	s := &cfg.Scheduler
	s.Batch = cmp.Or(s.Batch, store.DefaultFireBatch)
	inRange("SchedulerConfig.Batch", s.Batch, store.MaxFireBatch)
	s.Concurrency = cmp.Or(s.Concurrency, scheduler.DefaultConcurrency)
	inRange("SchedulerConfig.Concurrency", s.Concurrency, scheduler.MaxConcurrency)
	s.MaxWait = cmp.Or(s.MaxWait, scheduler.DefaultMaxWait)
	notNegative("SchedulerConfig.MaxWait", s.MaxWait)

	return specs, errors.Join(errs...)
}

// slots resolves a queue's (or a subscription's) Concurrency, with its
// default, and Prefetch into executors and capacity, and checks them; field
// prefixes the names in its errors.
func slots(field string, concurrency, prefetch int) (conc, capacity int, err error) {
	conc = cmp.Or(concurrency, defaultConcurrency)
	var errs []error
	if conc < 0 {
		errs = append(errs, &store.ValidationError{Field: field + "Concurrency", Reason: fmt.Sprintf("%d is negative", conc)})
	}
	if prefetch < 0 {
		errs = append(errs, &store.ValidationError{Field: field + "Prefetch", Reason: fmt.Sprintf("%d is negative", prefetch)})
	}
	if len(errs) == 0 && conc+prefetch > store.MaxClaim {
		// One claim asks for every free slot, and a claim takes at most
		// store.MaxClaim jobs.
		errs = append(errs, &store.LimitError{Field: field + "Concurrency+Prefetch", Limit: store.MaxClaim, Got: conc + prefetch})
	}
	return conc, conc + prefetch, errors.Join(errs...)
}
