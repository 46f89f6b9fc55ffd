package wire_test

import (
	"encoding/json"
	"errors"
	"reflect"
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
		RunAt: t0, State: store.StateDead, Tenant: "acme", UniqueKey: "u", OrderingKey: "o", HoldKeyWhenDead: true,
		Attempts: 3, MaxAttempts: 3, Deliveries: 4, MaxDeliveries: 10, LockToken: 42,
		Errors: []store.AttemptError{{At: t0, Attempt: 1, Message: "boom", Stack: "main.go:1"}, {At: t0, Attempt: 3, Message: "bang"}},
		Result: []byte{0xff, 0x00}, DeadReason: store.DeadMaxAttempts, CreatedAt: t0, FinishedAt: t0.Add(time.Second),
		UniqueUntil: t0.Add(time.Hour), Metadata: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		AttemptedAt: t0.Add(time.Second / 2), LastAttemptDuration: 1500 * time.Millisecond}
	golden(t, wire.JobOf(j, true), `{
		"id": "0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f", "queue": "mail", "kind": "welcome", "state": "dead",
		"priority": -5, "tenant": "acme", "unique_key": "u", "unique_until": "2030-01-02T03:04:05Z", "ordering_key": "o", "hold_key_when_dead": true,
		"attempts": 3, "max_attempts": 3, "deliveries": 4, "max_deliveries": 10,
		"run_at": "2030-01-02T02:04:05Z", "created_at": "2030-01-02T02:04:05Z", "finished_at": "2030-01-02T02:04:06Z",
		"dead_reason": "max_attempts", "last_error": "bang", "payload": {"to": "ada"}, "result_base64": "/wA=",
		"errors": [{"at": "2030-01-02T02:04:05Z", "attempt": 1, "message": "boom", "stack": "main.go:1"},
		           {"at": "2030-01-02T02:04:05Z", "attempt": 3, "message": "bang"}],
		"metadata": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"attempted_at": "2030-01-02T02:04:05.5Z", "last_attempt_seconds": 1.5}`)
	// Lists leave the history out; a running job shows its lock's end.
	j.State, j.LockedUntil, j.FinishedAt, j.Errors, j.Result, j.DeadReason = store.StateRunning, t0, time.Time{}, nil, nil, ""
	j.HoldKeyWhenDead, j.UniqueUntil, j.Metadata, j.AttemptedAt, j.LastAttemptDuration = false, time.Time{}, nil, time.Time{}, 0
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

func TestEventViews(t *testing.T) {
	t.Parallel()
	e := &store.Event{Topic: "orders", Position: 7, ID: "e1", Kind: "order.placed", Key: "o1", Version: 2, Tenant: "acme",
		Headers: map[string]string{"trace": "abc"}, Payload: []byte(`{"total":5}`), PublishedAt: t0}
	view := `"topic": "orders", "position": 7, "id": "e1", "kind": "order.placed", "key": "o1", "version": 2,
		"tenant": "acme", "headers": {"trace": "abc"}, "payload": {"total": 5}, "published_at": "2030-01-02T02:04:05Z"`
	golden(t, wire.EventOf(e), `{`+view+`}`)
	golden(t, wire.EventPageOf(&store.EventPage{Events: []*store.Event{e}, Next: 7}), `{"events": [{`+view+`}], "next": 7}`)
	golden(t, wire.EventPageOf(&store.EventPage{}), `{"events": [], "next": 0}`)
	// Without a key, tenant or headers; bytes that are not JSON.
	golden(t, wire.EventOf(&store.Event{Topic: "t", Position: 1, ID: "e2", Kind: "k", Payload: []byte{0xff}, PublishedAt: t0}),
		`{"topic": "t", "position": 1, "id": "e2", "kind": "k", "payload_base64": "/w==", "published_at": "2030-01-02T02:04:05Z"}`)
	golden(t, wire.PublishResultOf("orders", store.PublishResult{ID: "e1", Position: 7, Version: 2, Duplicate: true}),
		`{"topic": "orders", "id": "e1", "position": 7, "version": 2, "duplicate": true}`)
	golden(t, wire.PublishResultOf("orders", store.PublishResult{ID: "e3", Position: 8}),
		`{"topic": "orders", "id": "e3", "position": 8, "duplicate": false}`)
	golden(t, wire.TopicsOf([]store.TopicInfo{
		{Name: "orders", Head: 9, Oldest: 3, Retention: 36 * time.Hour, Published: t0},
		{Name: "audit", Retention: store.KeepEvents},
	}), `[{"name": "orders", "head": 9, "oldest": 3, "retention_seconds": 129600, "published": "2030-01-02T02:04:05Z"},
		{"name": "audit", "head": 0, "retention_seconds": null}]`)
}

func TestSubscriptionView(t *testing.T) {
	t.Parallel()
	s := &store.Subscription{Topic: "orders", Name: "mail", Queue: "sub/orders/mail", Kinds: []string{"a", "b"}, Ordered: true,
		OnDeadHead: store.DeadHeadBlock, LockFor: 30 * time.Second, MaxAttempts: 5, MaxDeliveries: 10, RetryBase: 1500 * time.Millisecond, RetryMax: time.Hour,
		Paused: true, Cursor: 4, CreatedAt: t0, UpdatedAt: t0,
		Lag: store.Lag{Head: 9, Unrouted: 5, Pending: 2, Dead: 1, Behind: 7, OldestAge: 2500 * time.Millisecond, HoldsRetention: true}}
	view := `"topic": "orders", "name": "mail", "queue": "sub/orders/mail", "kinds": ["a", "b"], "ordered": true, "on_dead_head": "block", "paused": true,
		"lock_for_seconds": 30, "max_attempts": 5, "max_deliveries": 10, "retry_base_seconds": 1.5, "retry_max_seconds": 3600,
		"cursor": 4, "created_at": "2030-01-02T02:04:05Z", "updated_at": "2030-01-02T02:04:05Z",
		"lag": {"head": 9, "unrouted": 5, "pending": 2, "dead": 1, "behind": 7, "oldest_age_seconds": 2.5, "holds_retention": true}`
	golden(t, wire.SubscriptionOf(s), `{`+view+`}`)
	golden(t, wire.CreatedSubscription{Subscription: wire.SubscriptionOf(s), Created: true}, `{`+view+`, "created": true}`)
	// Every kind: an empty list, not null.
	s.Kinds = nil
	if v := wire.SubscriptionsOf([]*store.Subscription{s}); v[0].Kinds == nil || len(v[0].Kinds) != 0 {
		t.Errorf("kinds of a subscription to every kind = %#v, want []", v[0].Kinds)
	}
}

// TestViewsBackToStore: a remote store reads the API's views back into the
// store's types; with exact bytes, nothing is lost on the way.
func TestViewsBackToStore(t *testing.T) {
	t.Parallel()
	u := t0.UTC()
	j := &store.Job{ID: jobID, Queue: "mail", Kind: "welcome", Payload: []byte(`{"to": "ada"}`), Priority: -5,
		RunAt: u, State: store.StateRunning, Tenant: "acme", UniqueKey: "u", OrderingKey: "o", HoldKeyWhenDead: true,
		Attempts: 1, MaxAttempts: 3, Deliveries: 2, MaxDeliveries: 10, LockToken: 42, LockedUntil: u.Add(time.Minute),
		Errors: []store.AttemptError{{At: u, Attempt: 1, Message: "boom", Stack: "main.go:1"}},
		Result: []byte{0xff, 0x00}, CreatedAt: u, FinishedAt: u.Add(time.Second), UniqueUntil: u.Add(time.Hour)}
	v := wire.ClaimedJobOf(j)
	v.ExactBytes()
	b, _ := json.Marshal(v)
	var back wire.Job
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.StoreJob()
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("job came back as\n%+v, %v\nwant\n%+v", got, err, j)
	}
	if _, err := (&wire.Job{ID: "x", State: "nope"}).StoreJob(); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a view with a bad ID and state: %v, want ErrInvalid", err)
	}

	sc := &store.Schedule{ID: "nightly", Tenant: "acme", Spec: "0 2 * * *", Zone: "Europe/Berlin", Queue: "reports",
		Kind: "report", Payload: []byte(`{"scope": "daily"}`), Priority: 1, MaxAttempts: 25,
		Overlap: store.OverlapQueueOne, Misfire: store.MisfireCatchUp, CatchUpMax: 4, Mode: store.ModeFixedDelay, Paused: true,
		Version: 3, NextRunAt: u, LastRunAt: u, LiveJobID: jobID, Fired: 7, Skipped: 1, Dropped: 2, CreatedAt: u, UpdatedAt: u,
		Recent: []store.ScheduleRun{{Slot: u, JobID: jobID, Triggered: true}}}
	lv := wire.ListedScheduleOf(sc)
	lv.ExactBytes()
	b, _ = json.Marshal(lv)
	var lback wire.ListedSchedule
	if err := json.Unmarshal(b, &lback); err != nil {
		t.Fatal(err)
	}
	gotSc, err := lback.StoreSchedule()
	if err == nil {
		gotSc.Recent, err = wire.StoreRuns(lback.LastRuns)
	}
	if err != nil || !reflect.DeepEqual(gotSc, sc) {
		t.Fatalf("schedule came back as\n%+v, %v\nwant\n%+v", gotSc, err, sc)
	}

	// A schedule's definition, as written.
	def := store.Schedule{ID: "n", Tenant: "t", Spec: "@hourly", Zone: "UTC", Queue: "q", Kind: "k", Payload: []byte{0, 1},
		Priority: 2, MaxAttempts: 3, Overlap: store.OverlapAllow, Misfire: store.MisfireSkip, CatchUpMax: 5,
		Mode: store.ModeFixedDelay, Paused: true, Version: 9}
	b, _ = json.Marshal(wire.UpsertSchedulesRequestOf([]store.Schedule{def, {ID: "d", Spec: "@daily", Kind: "k"}}))
	var req wire.UpsertSchedulesRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	for i, want := range []store.Schedule{def, {ID: "d", Spec: "@daily", Kind: "k"}} {
		if got, err := req.Schedules[i].Params(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("schedule %d came back as %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := (wire.ScheduleParams{ID: "n", Overlap: "sometimes"}).Params(); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a bad overlap: %v, want ErrInvalid", err)
	}

	// Per-item answers and FireDue's result.
	ups := []store.ScheduleUpsertResult{{Version: 2, Created: true, NextRunAt: u}, {Err: store.ScheduleNotFound(store.ScheduleRef{ID: "x"})}}
	b, _ = json.Marshal(wire.ScheduleUpsertItemsOf(ups))
	var upItems []wire.ScheduleUpsertItem
	_ = json.Unmarshal(b, &upItems)
	gotUps, err := wire.ScheduleUpsertResults(upItems, 2)
	if err != nil || gotUps[0].Version != 2 || !gotUps[0].Created || !gotUps[0].NextRunAt.Equal(u) || !errors.Is(gotUps[1].Err, store.ErrNotFound) {
		t.Errorf("upsert answers came back as %+v, %v", gotUps, err)
	}
	trs := []store.TriggerResult{{Run: store.ScheduleRun{Slot: u, JobID: jobID, Triggered: true}, Duplicate: true}, {Err: store.ErrNotFound}}
	b, _ = json.Marshal(wire.TriggerItemsOf(trs))
	var trItems []wire.TriggerItem
	_ = json.Unmarshal(b, &trItems)
	if gotTrs, err := wire.TriggerResults(trItems, 2); err != nil || gotTrs[0].Err != nil || !reflect.DeepEqual(gotTrs[0].Run, trs[0].Run) || !gotTrs[0].Duplicate || !errors.Is(gotTrs[1].Err, store.ErrNotFound) {
		t.Errorf("trigger answers came back as %+v, %v", gotTrs, err)
	}
	if _, err := wire.TriggerResults(trItems[:1], 2); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a missing answer: %v, want ErrInvalid", err)
	}
	fr := &store.FireResult{Now: u, Schedules: 2, Runs: []store.FiredRun{{Ref: store.ScheduleRef{Tenant: "t", ID: "n"}, Slot: u, JobID: jobID, Duplicate: true}},
		Skipped: 1, Dropped: 2, Failed: 3, NextDue: u.Add(time.Hour)}
	b, _ = json.Marshal(wire.FireResultOf(fr))
	var fv wire.FireResult
	_ = json.Unmarshal(b, &fv)
	if got, err := fv.StoreResult(); err != nil || !reflect.DeepEqual(got, fr) {
		t.Errorf("fire result came back as %+v, %v; want %+v", got, err, fr)
	}

	qs := wire.QueueStatsOf([]store.QueueStats{{Queue: "a", Paused: true, Counts: map[store.State]int{store.StateAvailable: 2, store.StateDead: store.StatsCountCap},
		Capped: []store.State{store.StateDead}, OldestAvailable: 1234567891 * time.Nanosecond}})
	b, _ = json.Marshal(qs)
	var qv []wire.QueueStats
	_ = json.Unmarshal(b, &qv)
	if got := qv[0].StoreStats(); got.OldestAvailable != 1234567891*time.Nanosecond || got.Counts[store.StateAvailable] != 2 || !got.Paused ||
		got.Counts[store.StateDead] != store.StatsCountCap || !reflect.DeepEqual(got.Capped, []store.State{store.StateDead}) {
		t.Errorf("queue stats came back as %+v", got)
	}
}
