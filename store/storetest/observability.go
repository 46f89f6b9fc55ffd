package storetest

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// metadataTests check that a job's metadata (EnqueueParams.Metadata, where
// the producer's trace context lives) round-trips through every read and
// that its limits are enforced.
var metadataTests = []test{
	{"RoundTrip", testMetadataRoundTrip},
	{"LimitsRefused", testMetadataLimits},
	{"CallerMapNotKept", testMetadataCopied},
}

func testMetadataRoundTrip(t *testing.T, h *harness) {
	md := map[string]string{
		store.MetadataTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"correlation":             "ünïcode ok",
		"empty":                   "",
	}
	// One job with metadata beside plain ones, in one call, so a backend
	// that inserts a batch in one statement is checked row by row.
	res := h.enqueue(store.EnqueueParams{Queue: "q"}, store.EnqueueParams{Queue: "q", Metadata: md}, store.EnqueueParams{Queue: "q"})
	with, without := res[1].ID, res[0].ID
	check := func(where string, j *store.Job) {
		t.Helper()
		if j.ID == with && !maps.Equal(j.Metadata, md) {
			t.Errorf("%s: metadata = %v, want %v", where, j.Metadata, md)
		}
		if j.ID != with && j.Metadata != nil {
			t.Errorf("%s: job %s enqueued without metadata has %v", where, j.ID, j.Metadata)
		}
	}
	check("Get", h.get(with))
	check("Get", h.get(without))
	page, err := h.s.List(h.ctx, store.ListParams{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		check("List", j)
	}
	for _, j := range h.claim("q", 3) {
		check("Claim", j)
	}
	// A unique key's holder keeps its own metadata; a duplicate's is dropped.
	k := h.add(store.EnqueueParams{Queue: "u", UniqueKey: "k", Metadata: map[string]string{"a": "1"}})
	if r := h.enqueue(store.EnqueueParams{Queue: "u", UniqueKey: "k", Metadata: map[string]string{"a": "2"}})[0]; !r.Duplicate || r.ID != k {
		t.Fatalf("second enqueue of the key = %+v, want the first job", r)
	}
	if j, err := h.s.GetByUniqueKey(h.ctx, "", "k"); err != nil || j.Metadata["a"] != "1" {
		t.Fatalf("GetByUniqueKey = %+v, %v; want metadata a=1", j, err)
	}
}

func testMetadataLimits(t *testing.T, h *harness) {
	many := map[string]string{}
	for i := range store.MaxMetadata + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		name  string
		md    map[string]string
		limit bool // a *store.LimitError, else a *store.ValidationError
	}{
		{"too many entries", many, true},
		{"too large", map[string]string{"big": strings.Repeat("x", store.MaxMetadataBytes)}, true},
		{"long name", map[string]string{strings.Repeat("n", store.MaxMetadataName+1): "v"}, true},
		{"empty name", map[string]string{"": "v"}, false},
		{"NUL in value", map[string]string{"a": "x\x00y"}, false},
		{"bad UTF-8", map[string]string{"a": "\xff"}, false},
	} {
		_, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{{Queue: "q", Kind: "k"}, {Queue: "q", Kind: "k", Metadata: tc.md}})
		var ie *store.ItemError
		if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ie) || ie.Index != 1 {
			t.Errorf("%s: Enqueue = %v, want item 1 refused with ErrInvalid", tc.name, err)
			continue
		}
		var le *store.LimitError
		if got := errors.As(err, &le); got != tc.limit {
			t.Errorf("%s: LimitError = %v, want %v (%v)", tc.name, got, tc.limit, err)
		}
	}
	h.claimNone("q") // all or nothing: the good items were not inserted either
}

func testMetadataCopied(t *testing.T, h *harness) {
	md := map[string]string{"a": "1"}
	id := h.add(store.EnqueueParams{Queue: "q", Metadata: md})
	md["a"] = "changed"
	if j := h.get(id); j.Metadata["a"] != "1" {
		t.Fatalf("metadata = %v after the caller changed its map, want a=1", j.Metadata)
	}
}

// timingTests check the timing of attempts: AttemptedAt is set by each
// claim, LastAttemptDuration by each settle but a release, both by the
// store's clock.
var timingTests = []test{
	{"ClaimThenComplete", testTimingComplete},
	{"EveryVerdict", testTimingVerdicts},
	{"ReleaseAndReapLeaveIt", testTimingRelease},
}

func testTimingComplete(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{Queue: "q"})
	if j := h.get(id); !j.AttemptedAt.IsZero() || j.LastAttemptDuration != 0 {
		t.Fatalf("before any claim: attempted at %v, last attempt %v; want zero", j.AttemptedAt, j.LastAttemptDuration)
	}
	h.clock.Advance(time.Second)
	claimedAt := h.now()
	j := h.claimID("q", id)
	if !j.AttemptedAt.Equal(claimedAt) {
		t.Fatalf("claimed job: attempted at %v, want %v", j.AttemptedAt, claimedAt)
	}
	if got := h.get(id); !got.AttemptedAt.Equal(claimedAt) || got.LastAttemptDuration != 0 {
		t.Fatalf("running job: attempted at %v, last attempt %v; want %v and zero", got.AttemptedAt, got.LastAttemptDuration, claimedAt)
	}
	h.clock.Advance(1500 * time.Millisecond)
	h.settleOK(store.Verdict{ID: id, Token: j.LockToken, Outcome: store.Complete})
	got := h.get(id)
	if !got.AttemptedAt.Equal(claimedAt) || got.LastAttemptDuration != 1500*time.Millisecond {
		t.Fatalf("completed job: attempted at %v, last attempt %v; want %v and 1.5s", got.AttemptedAt, got.LastAttemptDuration, claimedAt)
	}
}

func testTimingVerdicts(t *testing.T, h *harness) {
	outcomes := []store.Outcome{store.Complete, store.Fail, store.DeadLetter, store.Cancel, store.Snooze}
	ids := h.addN(len(outcomes), func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "q"} })
	jobs := h.claim("q", len(ids))
	if len(jobs) != len(ids) {
		t.Fatalf("claimed %d jobs, want %d", len(jobs), len(ids))
	}
	h.clock.Advance(250 * time.Millisecond)
	vs := make([]store.Verdict, len(jobs))
	for i, j := range jobs {
		vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: outcomes[i], Delay: time.Hour, Result: nil}
		if o := outcomes[i]; o == store.Fail || o == store.DeadLetter || o == store.Cancel {
			vs[i].Error = &store.AttemptError{Message: "no"}
		}
	}
	h.settleOK(vs...)
	for i, j := range jobs {
		if got := h.get(j.ID); got.LastAttemptDuration != 250*time.Millisecond {
			t.Errorf("%v: last attempt %v, want 250ms", outcomes[i], got.LastAttemptDuration)
		}
	}
	// A result goes through the one-by-one path of some backends.
	id := h.add(store.EnqueueParams{Queue: "r"})
	j := h.claimID("r", id)
	h.clock.Advance(2 * time.Second)
	h.settleOK(store.Verdict{ID: id, Token: j.LockToken, Outcome: store.Complete, Result: []byte(`{"ok":true}`)})
	if got := h.get(id); got.LastAttemptDuration != 2*time.Second {
		t.Errorf("complete with a result: last attempt %v, want 2s", got.LastAttemptDuration)
	}
}

func testTimingRelease(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{Queue: "q"})
	j := h.claimID("q", id)
	h.clock.Advance(time.Second)
	h.settleOK(store.Verdict{ID: id, Token: j.LockToken, Outcome: store.Fail, Error: &store.AttemptError{Message: "x"}})
	h.clock.Advance(time.Hour) // past the retry's backoff
	second := h.now()
	j = h.claimID("q", id)
	if !j.AttemptedAt.Equal(second) || j.LastAttemptDuration != time.Second {
		t.Fatalf("second claim: attempted at %v, last attempt %v; want %v and the first's 1s", j.AttemptedAt, j.LastAttemptDuration, second)
	}
	h.clock.Advance(3 * time.Second)
	h.settleOK(store.Verdict{ID: id, Token: j.LockToken, Outcome: store.Release})
	if got := h.get(id); got.LastAttemptDuration != time.Second {
		t.Fatalf("after a release: last attempt %v, want the earlier 1s", got.LastAttemptDuration)
	}
	j = h.claimID("q", id)
	h.clock.Advance(defaultLock + time.Second)
	if _, err := h.s.ReapExpired(h.ctx, store.MaxReapLimit); err != nil {
		t.Fatal(err)
	}
	if got := h.get(id); got.State != store.StateAvailable || got.LastAttemptDuration != time.Second || !got.AttemptedAt.Equal(j.AttemptedAt) {
		t.Fatalf("after a lost lock: %s, attempted at %v, last attempt %v; want available, %v, 1s", got.State, got.AttemptedAt, got.LastAttemptDuration, j.AttemptedAt)
	}
}

// workerTests check a store's store.WorkerStore. They run when the backend
// declares Features.Workers.
var workerTests = []test{
	{"HeartbeatAndList", testWorkerHeartbeat},
	{"HeartbeatReplaces", testWorkerReplace},
	{"Expiry", testWorkerExpiry},
	{"Remove", testWorkerRemove},
	{"InvalidRefused", testWorkerInvalid},
}

func (h *harness) workers() store.WorkerStore {
	h.t.Helper()
	ws := h.s.Capabilities().Workers
	if ws == nil {
		h.t.Fatal("the backend declares Features.Workers, but Capabilities().Workers is nil")
	}
	return ws
}

func (h *harness) heartbeat(w store.WorkerInfo, ttl time.Duration) *store.WorkerInfo {
	h.t.Helper()
	got, err := h.workers().Heartbeat(h.ctx, w, ttl)
	if err != nil {
		h.t.Fatalf("Heartbeat(%s): %v", w.ID, err)
	}
	return got
}

func (h *harness) listWorkers() []*store.WorkerInfo {
	h.t.Helper()
	ws, err := h.workers().ListWorkers(h.ctx)
	if err != nil {
		h.t.Fatalf("ListWorkers: %v", err)
	}
	return ws
}

func workerIDs(ws []*store.WorkerInfo) string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return strings.Join(ids, ",")
}

func testWorkerHeartbeat(t *testing.T, h *harness) {
	if ws := h.listWorkers(); len(ws) != 0 {
		t.Fatalf("a new store lists workers %s", workerIDs(ws))
	}
	started := epoch.Add(-time.Hour)
	w := store.WorkerInfo{ID: "w-b", Host: "host-1", PID: 4242, Version: "v1.2.3", Queues: []string{"mail", "sub/orders/billing"},
		Busy: 3, Slots: 10, StartedAt: started}
	got := h.heartbeat(w, 30*time.Second)
	if !got.SeenAt.Equal(h.now()) || !got.ExpiresAt.Equal(h.now().Add(30*time.Second)) {
		t.Fatalf("Heartbeat stamped seen %v, expires %v; want the store's now %v and +30s", got.SeenAt, got.ExpiresAt, h.now())
	}
	h.heartbeat(store.WorkerInfo{ID: "w-a", Tenant: "acme"}, 30*time.Second)
	ws := h.listWorkers()
	if workerIDs(ws) != "w-a,w-b" {
		t.Fatalf("ListWorkers = %s, want w-a,w-b (in ID order)", workerIDs(ws))
	}
	b := ws[1]
	if b.Host != "host-1" || b.PID != 4242 || b.Version != "v1.2.3" || strings.Join(b.Queues, ",") != "mail,sub/orders/billing" ||
		b.Busy != 3 || b.Slots != 10 || !b.StartedAt.Equal(started) || !b.SeenAt.Equal(h.now()) || b.Tenant != "" {
		t.Fatalf("ListWorkers returned %+v, want what w-b sent", b)
	}
	if a := ws[0]; a.Tenant != "acme" || a.Queues != nil || !a.StartedAt.Equal(h.now()) {
		t.Fatalf("ListWorkers returned %+v, want tenant acme, no queues, started now (default)", a)
	}
}

func testWorkerReplace(t *testing.T, h *harness) {
	h.heartbeat(store.WorkerInfo{ID: "w", Busy: 1, Slots: 4, Queues: []string{"a"}}, 10*time.Second)
	h.clock.Advance(5 * time.Second)
	h.heartbeat(store.WorkerInfo{ID: "w", Busy: 4, Slots: 4}, 10*time.Second)
	ws := h.listWorkers()
	if len(ws) != 1 || ws[0].Busy != 4 || ws[0].Queues != nil || !ws[0].SeenAt.Equal(h.now()) {
		t.Fatalf("after a second heartbeat: %+v, want one entry, busy 4, no queues, seen now", ws)
	}
}

func testWorkerExpiry(t *testing.T, h *harness) {
	h.heartbeat(store.WorkerInfo{ID: "dead"}, 10*time.Second)
	h.heartbeat(store.WorkerInfo{ID: "alive"}, time.Minute)
	h.clock.Advance(10 * time.Second) // dead expires now: no longer listed
	if ids := workerIDs(h.listWorkers()); ids != "alive" {
		t.Fatalf("at the TTL: ListWorkers = %s, want alive", ids)
	}
	// A heartbeat deletes expired entries; a late heartbeat of the dead
	// worker brings it back.
	h.clock.Advance(time.Second)
	h.heartbeat(store.WorkerInfo{ID: "alive"}, time.Minute)
	h.heartbeat(store.WorkerInfo{ID: "dead"}, 10*time.Second)
	if ids := workerIDs(h.listWorkers()); ids != "alive,dead" {
		t.Fatalf("after the dead worker's late heartbeat: ListWorkers = %s, want alive,dead", ids)
	}
}

func testWorkerRemove(t *testing.T, h *harness) {
	h.heartbeat(store.WorkerInfo{ID: "a"}, time.Minute)
	h.heartbeat(store.WorkerInfo{ID: "b"}, time.Minute)
	if err := h.workers().RemoveWorker(h.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := h.workers().RemoveWorker(h.ctx, "never-there"); err != nil {
		t.Fatalf("RemoveWorker of an unknown worker: %v, want nil", err)
	}
	if ids := workerIDs(h.listWorkers()); ids != "b" {
		t.Fatalf("after removing a: ListWorkers = %s, want b", ids)
	}
}

func testWorkerInvalid(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name string
		w    store.WorkerInfo
		ttl  time.Duration
	}{
		{"no id", store.WorkerInfo{}, time.Minute},
		{"ttl too short", store.WorkerInfo{ID: "w"}, time.Millisecond},
		{"ttl too long", store.WorkerInfo{ID: "w"}, store.MaxWorkerTTL + time.Second},
		{"bad queue", store.WorkerInfo{ID: "w", Queues: []string{"no spaces"}}, time.Minute},
		{"negative busy", store.WorkerInfo{ID: "w", Busy: -1}, time.Minute},
		{"long host", store.WorkerInfo{ID: "w", Host: strings.Repeat("h", store.MaxNameLen+1)}, time.Minute},
	} {
		if _, err := h.workers().Heartbeat(h.ctx, tc.w, tc.ttl); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Heartbeat = %v, want ErrInvalid", tc.name, err)
		}
	}
	if ws := h.listWorkers(); len(ws) != 0 {
		t.Fatalf("refused heartbeats stored %s", workerIDs(ws))
	}
}
