package peers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSmoke runs every system with tiny sizes, so the harness and each
// adapter are exercised end to end. A system whose server is down is
// skipped (and logged), as the command does; every system that runs must
// complete every workload.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the servers; -short skips it")
	}
	pg := cmp.Or(os.Getenv("SPOOL_TEST_POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	systems := []System{
		&SpoolSQLite{Dir: t.TempDir()},
		NewSpoolPostgres(pg),
		NewRiver(pg),
		&Asynq{Addr: "127.0.0.1:6379", DB: 14},
		&Goqite{Dir: t.TempDir()},
		&JetStream{URL: "nats://127.0.0.1:4222"},
	}
	var log bytes.Buffer
	cfg := Config{Jobs: 200, Batch: 50, Workers: 10, Rate: 200, Duration: time.Second, Timeout: 30 * time.Second, Drain: 15 * time.Second, Log: &log}
	rows, err := Run(context.Background(), cfg, systems)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("harness log:\n%s", log.String())
		}
	}()
	if len(rows) != len(systems) {
		t.Fatalf("%d rows for %d systems", len(rows), len(systems))
	}
	ran := 0
	for _, row := range rows {
		if row.Skipped != "" {
			t.Logf("%s skipped: %s", row.System, row.Skipped)
			if !strings.Contains(log.String(), "SKIPPED "+row.System) {
				t.Errorf("%s was skipped without a line saying so", row.System)
			}
			continue
		}
		ran++
		// Test binaries carry no module versions, so Version reads
		// "unknown" here; the command's build has them.
		if row.Version == "" {
			t.Errorf("%s: no version", row.System)
		}
		if row.Durability == "" {
			t.Errorf("%s: no durability", row.System)
		}
		for name, m := range map[string]*Measure{"enqueue": row.Enqueue, "burn-down": row.BurnDown, "continuous": row.Continuous} {
			if !m.OK() {
				t.Errorf("%s %s: %+v", row.System, name, m)
				continue
			}
			if m.JobsPerSec <= 0 {
				t.Errorf("%s %s: %v jobs/s", row.System, name, m.JobsPerSec)
			}
		}
		if row.Enqueue.Done != cfg.Jobs || row.BurnDown.Done < cfg.Jobs {
			t.Errorf("%s: enqueued %d, completed %d of %d", row.System, row.Enqueue.Done, row.BurnDown.Done, cfg.Jobs)
		}
		if c := row.Continuous; c.Done < c.Enqueued || c.Enqueued == 0 || c.LatencyMS == nil || c.LatencyMS.P99 <= 0 {
			t.Errorf("%s continuous: %+v", row.System, c)
		}
	}
	// The embedded systems need no server, so at least they ran.
	if ran < 2 {
		t.Fatalf("only %d systems ran", ran)
	}
	t.Logf("\n%s", (&Report{Config: cfg, Rows: rows}).Table())
}

// lossySystem is an in-memory queue that can lose one job, to check that the
// harness notices.
type lossySystem struct {
	lose int64 // sequence number never completed; -1: none

	mu      sync.Mutex
	queue   [][]byte
	pending atomic.Int64
	wake    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	workers int
}

func (s *lossySystem) Name() string                { return "lossy" }
func (s *lossySystem) Info() Info                  { return Info{Version: "test", Durable: true, Durability: "none"} }
func (s *lossySystem) Probe(context.Context) error { return nil }

func (s *lossySystem) Open(_ context.Context, workers int) error {
	s.queue, s.workers = nil, workers
	s.pending.Store(0)
	s.wake = make(chan struct{}, 1)
	return nil
}

func (s *lossySystem) Enqueue(_ context.Context, payloads [][]byte) error {
	s.mu.Lock()
	s.queue = append(s.queue, payloads...)
	s.mu.Unlock()
	s.pending.Add(int64(len(payloads)))
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *lossySystem) Start(_ context.Context, w Work) error {
	s.stop = make(chan struct{})
	for range s.workers {
		s.wg.Go(func() {
			for {
				s.mu.Lock()
				var p []byte
				if len(s.queue) > 0 {
					p, s.queue = s.queue[0], s.queue[1:]
				}
				s.mu.Unlock()
				if p == nil {
					select {
					case <-s.stop:
						return
					case <-s.wake:
					case <-time.After(time.Millisecond):
					}
					continue
				}
				w.Started(p)
				var v struct{ Seq int64 }
				_ = json.Unmarshal(p, &v)
				if v.Seq == s.lose {
					continue // lost: never completed, still pending
				}
				s.pending.Add(-1)
				w.Completed(1)
			}
		})
	}
	return nil
}

func (s *lossySystem) Stop(context.Context) error {
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
		s.stop = nil
	}
	return nil
}

func (s *lossySystem) Remaining(context.Context) (int, error) { return int(s.pending.Load()), nil }
func (s *lossySystem) Close(ctx context.Context) error        { return s.Stop(ctx) }

func TestHarnessReportsLostJobs(t *testing.T) {
	t.Parallel()
	cfg := Config{Jobs: 100, Batch: 10, Workers: 4, Rate: 100, Duration: 200 * time.Millisecond, Timeout: 300 * time.Millisecond, Drain: 300 * time.Millisecond}
	rows, err := Run(context.Background(), cfg, []System{&lossySystem{lose: 7}})
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if !r.Enqueue.OK() {
		t.Errorf("enqueue failed: %s", r.Enqueue.Failure)
	}
	for name, m := range map[string]*Measure{"burn-down": r.BurnDown, "continuous": r.Continuous} {
		if m.OK() || !strings.Contains(m.Failure, "incomplete") {
			t.Errorf("%s: a lost job went unnoticed: %+v", name, m)
		}
	}
	table := (&Report{Config: cfg, Rows: rows}).Table()
	if !strings.Contains(table, "✗") || !strings.Contains(table, "incomplete") {
		t.Errorf("the table does not flag the failure:\n%s", table)
	}

	rows, err = Run(context.Background(), cfg, []System{&lossySystem{lose: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Measure{"enqueue": rows[0].Enqueue, "burn-down": rows[0].BurnDown, "continuous": rows[0].Continuous} {
		if !m.OK() {
			t.Errorf("%s failed without a lost job: %s", name, m.Failure)
		}
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	p := encodePayload(42, 1234567890)
	var v struct{ Seq, Enq int64 }
	if err := json.Unmarshal(p, &v); err != nil || v.Seq != 42 || v.Enq != 1234567890 {
		t.Fatalf("payload %s decodes to %+v, %v", p, v, err)
	}
	for _, s := range []string{string(p), `{"enq": 1234567890, "seq": 42}`, "{ \"seq\" : 42 , \"enq\" :\n1234567890 }"} {
		if enq, ok := payloadEnq([]byte(s)); !ok || enq != 1234567890 {
			t.Errorf("payloadEnq(%s) = %d, %v", s, enq, ok)
		}
	}
	if _, ok := payloadEnq([]byte(`{"seq":1}`)); ok {
		t.Error("payloadEnq found an enq that is not there")
	}
}

func TestReportAndChart(t *testing.T) {
	t.Parallel()
	lat := &Latency{P50: 1, P95: 2, P99: 3, Max: 4}
	rep := &Report{
		Config: Config{Jobs: 1000, Batch: 100, Workers: 10, Rate: 100, Duration: time.Second},
		Rows: []Row{
			{System: "A (SQLite)", Info: Info{Version: "v1", Durable: true, Durability: "fsync"},
				Enqueue: &Measure{JobsPerSec: 12345}, BurnDown: &Measure{JobsPerSec: 2000}, Continuous: &Measure{JobsPerSec: 100, LatencyMS: lat}},
			{System: "B", Info: Info{Version: "v2", Durable: false, Caveat: "memory only"},
				Enqueue: &Measure{JobsPerSec: 5000}, BurnDown: &Measure{JobsPerSec: 300, Failure: "incomplete: 3 of 10"}, Continuous: &Measure{JobsPerSec: 90, LatencyMS: &Latency{P99: 9000}}},
			{System: "C", Skipped: "server not reachable"},
		},
	}
	table := rep.Table()
	for _, want := range []string{"12,345", "300 (memory only) ✗", "incomplete: 3 of 10", "skipped", "server not reachable", "**memory only**"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if doc := rep.Document("chart.png"); !strings.Contains(doc, "![") || !strings.Contains(doc, "How to reproduce") {
		t.Errorf("document lacks the chart or the reproduction steps:\n%s", doc)
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := WriteChart(rep, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("chart is not a PNG (%d bytes, %v)", len(b), err)
	}
	if err := WriteChart(&Report{Rows: []Row{{System: "x", Skipped: "down"}}}, path); err == nil {
		t.Error("a chart of nothing was drawn")
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{Jobs: -1, Workers: -3, Duration: -time.Second}, nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"jobs", "workers", "duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if errors.Is(err, ErrUnreachable) {
		t.Error("config error matches ErrUnreachable")
	}
}

// TestEventsEmbeddedJetStream runs the events workloads with tiny sizes on
// both embedded NATS rows: every subscription must get every event, and
// the table must carry the rows.
func TestEventsEmbeddedJetStream(t *testing.T) {
	t.Parallel()
	var systems []EventSystem
	for _, key := range []string{"nats-embedded", "nats-embedded-sync-always"} {
		sys, ok := NewEventSystem(key, EventOptions{Dir: t.TempDir()})
		if !ok {
			t.Fatalf("no event system %q", key)
		}
		systems = append(systems, sys)
	}
	runEventRows(t, systems, nil)
}

// TestEventsSpool runs the events workloads with tiny sizes on Spool's two
// event systems, the SQLite one always, the PostgreSQL one when its server
// answers (it is skipped with a line saying so otherwise, as the command
// does). Their deliveries are batched, so the counts also check that every
// event of a batch is counted once.
func TestEventsSpool(t *testing.T) {
	t.Parallel()
	pg := cmp.Or(os.Getenv("SPOOL_TEST_POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	var systems []EventSystem
	for _, key := range []string{"spool-sqlite-events", "spool-postgres-events"} {
		sys, ok := NewEventSystem(key, EventOptions{Dir: t.TempDir(), PostgresURL: pg})
		if !ok {
			t.Fatalf("no event system %q", key)
		}
		systems = append(systems, sys)
	}
	runEventRows(t, systems, map[string]bool{"Spool (PostgreSQL)": true})
}

// runEventRows runs the events workloads with tiny sizes on systems: every
// subscription must get every event, once. The systems named in maySkip
// may be skipped because their server does not answer.
func runEventRows(t *testing.T, systems []EventSystem, maySkip map[string]bool) {
	t.Helper()
	var log bytes.Buffer
	cfg := Config{Events: 200, Batch: 50, Workers: 5, Rate: 100, Duration: 2 * time.Second, Timeout: 30 * time.Second, Drain: 15 * time.Second, Log: &log}
	rows, err := RunEvents(context.Background(), cfg, systems)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("harness log:\n%s", log.String())
		}
	}()
	if len(rows) != len(systems) {
		t.Fatalf("%d rows for %d systems", len(rows), len(systems))
	}
	for _, row := range rows {
		if row.Skipped != "" {
			if !maySkip[row.System] || !strings.Contains(row.Skipped, ErrUnreachable.Error()) {
				t.Errorf("%s skipped: %s", row.System, row.Skipped)
			} else {
				t.Logf("%s skipped: %s", row.System, row.Skipped)
			}
			continue
		}
		if row.Durability == "" || row.Completion == "" || row.Settings == "" {
			t.Errorf("%s: no durability, completion or settings: %+v", row.System, row.Info)
		}
		if !row.Publish.OK() || row.Publish.Done != cfg.Events || row.Publish.EventsPerSec <= 0 {
			t.Errorf("%s publish: %+v", row.System, row.Publish)
		}
		bd := row.BurnDown
		if !bd.OK() || len(bd.Subscriptions) != 3 || bd.Slowest <= 0 || bd.Mean < bd.Slowest || bd.Note != "" {
			t.Errorf("%s event burn-down: %+v", row.System, bd)
		}
		for _, s := range bd.Subscriptions {
			if s.Done != cfg.Events {
				t.Errorf("%s event burn-down %s: %d of %d events acked", row.System, s.Subscription, s.Done, cfg.Events)
			}
		}
		c := row.Continuous
		if !c.OK() || c.Published == 0 || c.Deliveries != 3*c.Published || c.LatencyMS == nil || c.LatencyMS.P99 <= 0 || c.Note != "" {
			t.Errorf("%s event continuous: %+v", row.System, c)
		}
	}
	t.Logf("\n%s", log.String())
}

// lossyEvents is an in-memory topic whose subscription loseOn never acks
// event lose, to check that the harness notices, per subscription.
type lossyEvents struct {
	lose   int64 // sequence number never acked; -1: none
	loseOn string

	mu      sync.Mutex
	subs    []string
	queues  map[string][][]byte
	pending map[string]int
	workers int
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (s *lossyEvents) Name() string                { return "lossy events" }
func (s *lossyEvents) Info() Info                  { return Info{Version: "test", Durable: true, Durability: "none"} }
func (s *lossyEvents) Probe(context.Context) error { return nil }

func (s *lossyEvents) Open(_ context.Context, subs []string, workers int) error {
	s.subs, s.workers = subs, workers
	s.queues, s.pending = map[string][][]byte{}, map[string]int{}
	return nil
}

func (s *lossyEvents) Publish(_ context.Context, payloads [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		s.queues[sub] = append(s.queues[sub], payloads...)
		s.pending[sub] += len(payloads)
	}
	return nil
}

func (s *lossyEvents) Start(_ context.Context, w EventWork) error {
	s.stop = make(chan struct{})
	for _, sub := range s.subs {
		for range s.workers {
			s.wg.Go(func() {
				for {
					s.mu.Lock()
					var p []byte
					if q := s.queues[sub]; len(q) > 0 {
						p, s.queues[sub] = q[0], q[1:]
					}
					s.mu.Unlock()
					if p == nil {
						select {
						case <-s.stop:
							return
						case <-time.After(time.Millisecond):
						}
						continue
					}
					w.Started(sub, p)
					var v struct{ Seq int64 }
					_ = json.Unmarshal(p, &v)
					if sub == s.loseOn && v.Seq == s.lose {
						continue
					}
					s.mu.Lock()
					s.pending[sub]--
					s.mu.Unlock()
					w.Completed(sub, 1)
				}
			})
		}
	}
	return nil
}

func (s *lossyEvents) Stop(context.Context) error {
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
		s.stop = nil
	}
	return nil
}

func (s *lossyEvents) Remaining(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rem := make(map[string]int, len(s.pending))
	for k, v := range s.pending {
		rem[k] = v
	}
	return rem, nil
}

func (s *lossyEvents) Close(ctx context.Context) error { return s.Stop(ctx) }

func TestEventsHarnessReportsLostEvents(t *testing.T) {
	t.Parallel()
	cfg := Config{Events: 100, Batch: 10, Workers: 2, Rate: 100, Duration: 200 * time.Millisecond, Timeout: 300 * time.Millisecond, Drain: 300 * time.Millisecond}
	rows, err := RunEvents(context.Background(), cfg, []EventSystem{&lossyEvents{lose: 7, loseOn: "sub-2"}})
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if !r.Publish.OK() || r.Publish.Done != cfg.Events {
		t.Errorf("publish: %+v", r.Publish)
	}
	if r.BurnDown.OK() || !strings.Contains(r.BurnDown.Failure, "sub-2: incomplete") || strings.Contains(r.BurnDown.Failure, "sub-1") {
		t.Errorf("event burn-down: the lost event is not blamed on sub-2 alone: %q", r.BurnDown.Failure)
	}
	for _, s := range r.BurnDown.Subscriptions {
		if s.OK() != (s.Subscription != "sub-2") {
			t.Errorf("event burn-down %s: %+v", s.Subscription, s)
		}
	}
	if r.Continuous.OK() || !strings.Contains(r.Continuous.Failure, "sub-2: incomplete") {
		t.Errorf("event continuous: a lost event went unnoticed: %+v", r.Continuous)
	}
	table := (&Report{Config: cfg, Events: rows}).EventsTable()
	if !strings.Contains(table, "✗") || !strings.Contains(table, "sub-2: incomplete") {
		t.Errorf("the table does not flag the failure:\n%s", table)
	}

	rows, err = RunEvents(context.Background(), cfg, []EventSystem{&lossyEvents{lose: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rows[0]; !r.Publish.OK() || !r.BurnDown.OK() || !r.Continuous.OK() {
		t.Errorf("failed without a lost event: %+v %+v %+v", r.Publish, r.BurnDown, r.Continuous)
	} else if c := r.Continuous; c.Deliveries != 3*c.Published || c.LatencyMS.P99 <= 0 {
		t.Errorf("event continuous: %d deliveries of %d events, p99 %v", c.Deliveries, c.Published, c.LatencyMS.P99)
	}
}

func TestEventsReportAndChart(t *testing.T) {
	t.Parallel()
	lat := &Latency{P50: 1, P95: 2, P99: 3, Max: 4}
	subs := func(rates ...float64) []EventMeasure {
		var ms []EventMeasure
		for i, r := range rates {
			ms = append(ms, EventMeasure{Subscription: fmt.Sprintf("sub-%d", i+1), EventsPerSec: r})
		}
		return ms
	}
	events := []EventRow{
		{System: "E (durable)", Info: Info{Version: "v1", Durable: true, Durability: "fsync"},
			Publish: &EventMeasure{EventsPerSec: 54321}, BurnDown: &EventBurnDown{Subscriptions: subs(1000, 2000, 3000), Slowest: 1000, Mean: 2000},
			Continuous: &EventContinuous{Events: 100, Published: 100, LatencyMS: lat}},
		{System: "F", Info: Info{Version: "v2", Caveat: "fsync every 2 min"},
			Publish: &EventMeasure{EventsPerSec: 9000}, BurnDown: &EventBurnDown{Subscriptions: subs(700, 800, 900), Slowest: 700, Mean: 800, Failure: "sub-1: incomplete: 5 of 10 acked"},
			Continuous: &EventContinuous{Events: 100, Published: 80, LatencyMS: &Latency{P99: 7000}, Note: "published 80 of 100 events"}},
		{System: "G", Skipped: "server not reachable"},
	}
	rep := &Report{
		Config: Config{Jobs: 1000, Events: 1000, Subscriptions: 3, Batch: 100, Workers: 10, Rate: 100, Duration: time.Second},
		Rows: []Row{{System: "A", Info: Info{Version: "v1", Durable: true, Durability: "fsync"},
			Enqueue: &Measure{JobsPerSec: 12345}, BurnDown: &Measure{JobsPerSec: 2000}, Continuous: &Measure{JobsPerSec: 100, LatencyMS: lat}}},
		Events: events,
	}
	table := rep.EventsTable()
	for _, want := range []string{"54,321", "slowest of 3", "| 1,000 | 2,000 |", "700 (fsync every 2 min) ✗", "sub-1: incomplete", "7,000.0 (fsync every 2 min) [", "published 80 of 100", "skipped", "**fsync every 2 min**"} {
		if !strings.Contains(table, want) {
			t.Errorf("events table lacks %q:\n%s", want, table)
		}
	}
	doc := rep.Document("chart.png")
	for _, want := range []string{"## Events", "Events: F", "| 12,345 |", "![", "-workloads"} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q:\n%s", want, doc)
		}
	}
	dir := t.TempDir()
	if dump := os.Getenv("SPOOL_BENCH_CHART_DIR"); dump != "" {
		dir = dump // to look at the charts
	}
	for name, r := range map[string]*Report{"both.png": rep, "events.png": {Config: rep.Config, Events: events}} {
		path := filepath.Join(dir, name)
		if err := WriteChart(r, path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("chart is not a PNG (%d bytes, %v)", len(b), err)
		}
	}
	if doc := (&Report{Config: rep.Config, Events: events}).Document(""); strings.Contains(doc, "Burn-down jobs/s") || !strings.Contains(doc, "Publish events/s") {
		t.Errorf("an events-only document shows a jobs table or no events table:\n%s", doc)
	}
}
