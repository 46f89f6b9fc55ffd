package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// golden checks that v marshals to the JSON want, compared as values: the
// field names and their forms are what scripts and dashboards rely on.
func golden(t *testing.T, v any, want string) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad golden JSON: %v", err)
	}
	compact, _ := json.Marshal(w)
	var g any
	_ = json.Unmarshal(got, &g)
	gotCompact, _ := json.Marshal(g)
	if string(gotCompact) != string(compact) {
		t.Errorf("JSON changed:\n got %s\nwant %s", gotCompact, compact)
	}
}

var (
	t0    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	jobID = store.ID{0x01, 0x93, 0xa4, 0xc1, 0x5e, 0x3b, 0x7d, 0x2e, 0x8f, 0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f}
)

func TestJobView(t *testing.T) {
	t.Parallel()
	j := &store.Job{ID: jobID, Queue: "mail", Kind: "welcome", Payload: []byte(`{"to":"ada"}`), Priority: -5,
		RunAt: t0, State: store.StateDead, Tenant: "acme", UniqueKey: "u", OrderingKey: "o",
		Attempts: 3, MaxAttempts: 3, Deliveries: 4, MaxDeliveries: 10, LockToken: 42,
		Errors: []store.AttemptError{{At: t0, Attempt: 1, Message: "boom", Stack: "main.go:1"}, {At: t0, Attempt: 3, Message: "bang"}},
		Result: []byte{0xff, 0x00}, DeadReason: store.DeadMaxAttempts, CreatedAt: t0, FinishedAt: t0.Add(time.Second)}
	golden(t, wire.JobOf(j, true), `{
		"id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "queue": "mail", "kind": "welcome", "state": "dead",
		"priority": -5, "tenant": "acme", "unique_key": "u", "ordering_key": "o",
		"attempts": 3, "max_attempts": 3, "deliveries": 4, "max_deliveries": 10,
		"run_at": "2030-01-02T02:04:05Z", "created_at": "2030-01-02T02:04:05Z", "finished_at": "2030-01-02T02:04:06Z",
		"dead_reason": "max_attempts", "last_error": "bang", "payload": {"to": "ada"}, "result_base64": "/wA=",
		"errors": [{"at": "2030-01-02T02:04:05Z", "attempt": 1, "message": "boom", "stack": "main.go:1"},
		           {"at": "2030-01-02T02:04:05Z", "attempt": 3, "message": "bang"}]}`)
	// Lists leave the history out; a running job shows its lock's end.
	j.State, j.LockedUntil, j.FinishedAt, j.Errors, j.Result, j.DeadReason = store.StateRunning, t0, time.Time{}, nil, nil, ""
	golden(t, wire.JobPageOf(&store.ListPage{Jobs: []*store.Job{j}, Next: jobID}), `{"jobs": [{
		"id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "queue": "mail", "kind": "welcome", "state": "running",
		"priority": -5, "tenant": "acme", "unique_key": "u", "ordering_key": "o",
		"attempts": 3, "max_attempts": 3, "deliveries": 4, "max_deliveries": 10,
		"run_at": "2030-01-02T02:04:05Z", "created_at": "2030-01-02T02:04:05Z", "locked_until": "2030-01-02T02:04:05Z",
		"payload": {"to": "ada"}}], "next": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f"}`)
	golden(t, wire.JobPageOf(&store.ListPage{}), `{"jobs": [], "next": ""}`)
	golden(t, wire.EnqueueResultOf(store.EnqueueResult{ID: jobID, Duplicate: true, State: store.StateAvailable}),
		`{"id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "duplicate": true, "state": "available"}`)
}

func TestQueueStatsView(t *testing.T) {
	t.Parallel()
	golden(t, wire.QueueStatsOf([]store.QueueStats{{Queue: "a", Paused: true,
		Counts: map[store.State]int{store.StateAvailable: 2}, OldestAvailable: 1500 * time.Millisecond}}), `[{
		"queue": "a", "paused": true, "oldest_available_seconds": 1.5,
		"counts": {"scheduled": 0, "available": 2, "running": 0, "completed": 0, "cancelled": 0, "dead": 0}}]`)
}

func TestScheduleViews(t *testing.T) {
	t.Parallel()
	sc := &store.Schedule{ID: "nightly", Tenant: "acme", Spec: "0 2 * * *", Zone: "Europe/Berlin", Queue: "reports",
		Kind: "report", Payload: []byte(`{"scope":"daily"}`), Priority: 1, MaxAttempts: 25,
		Overlap: store.OverlapQueueOne, Misfire: store.MisfireCatchUp, CatchUpMax: 4, Mode: store.ModeFixedRate,
		Version: 3, NextRunAt: t0, LiveJobID: jobID, Fired: 7, Skipped: 1, CreatedAt: t0, UpdatedAt: t0}
	view := `"id": "nightly", "tenant": "acme", "spec": "0 2 * * *", "zone": "Europe/Berlin", "queue": "reports",
		"kind": "report", "payload": {"scope": "daily"}, "priority": 1, "max_attempts": 25,
		"overlap": "queue_one", "misfire": "catch_up", "catch_up_max": 4, "mode": "fixed_rate", "paused": false,
		"version": 3, "next_run_at": "2030-01-02T02:04:05Z", "live_job_id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f",
		"fired": 7, "skipped": 1, "dropped": 0, "created_at": "2030-01-02T02:04:05Z", "updated_at": "2030-01-02T02:04:05Z"`
	golden(t, wire.ScheduleOf(sc), `{`+view+`}`)
	golden(t, wire.UpsertedSchedule{Schedule: wire.ScheduleOf(sc), Created: true}, `{`+view+`, "created": true}`)
	run := wire.ScheduleRunOf(store.ScheduleRun{Slot: t0, JobID: jobID, Triggered: true}, store.StateCompleted)
	golden(t, wire.ScheduleDetailOf(sc, []wire.ScheduleRun{run}, []time.Time{t0}), `{`+view+`,
		"last_runs": [{"slot": "2030-01-02T02:04:05Z", "job_id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "triggered": true, "state": "completed"}],
		"next_runs": ["2030-01-02T02:04:05Z"]}`)
	golden(t, wire.ScheduleDetailOf(sc, nil, nil), `{`+view+`, "last_runs": [], "next_runs": []}`)
	golden(t, wire.SchedulePage{Schedules: wire.SchedulesOf(nil), Next: ""}, `{"schedules": [], "next": ""}`)
	golden(t, wire.TriggeredRunOf(sc.Ref(), store.ScheduleRun{Slot: t0, JobID: jobID}),
		`{"schedule": "nightly", "tenant": "acme", "job_id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "slot": "2030-01-02T02:04:05Z"}`)
}

func TestItemsView(t *testing.T) {
	t.Parallel()
	golden(t, wire.Items([]error{nil, store.JobNotFound(jobID)}), `[{"index": 0, "ok": true},
		{"index": 1, "error": {"code": "not_found", "message": "spool: job 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f not found",
		 "resource": "job", "name": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f"}}]`)
}
