package storetest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var enqueueTests = []test{
	{"Defaults", testEnqueueDefaults},
	{"CarriesHistory", testEnqueueCarriesHistory},
	{"HoldKeyWhenDeadPerJob", testEnqueueHoldKeyPerJob},
	{"FieldsRoundTrip", testEnqueueFieldsRoundTrip},
	{"RunAtDecidesState", testEnqueueRunAtDecidesState},
	{"IDsIncrease", testEnqueueIDsIncrease},
	{"CallerID", testEnqueueCallerID},
	{"InputReusable", testEnqueueInputReusable},
	{"PayloadRoundTrip", testEnqueuePayloadRoundTrip},
	{"LimitsAccepted", testEnqueueLimitsAccepted},
	{"InvalidWritesNothing", testEnqueueInvalid},
	{"InvalidReportsEveryItem", testEnqueueInvalidSeveral},
	{"BatchTooLarge", testEnqueueBatchTooLarge},
	{"MaxBatchAccepted", testEnqueueMaxBatch},
	{"EmptyBatch", testEnqueueEmpty},
}

var uniqueTests = append([]test{
	{"DuplicateReturnsFirst", testUniqueDuplicate},
	{"DuplicateReportsState", testUniqueDuplicateState},
	{"OtherTenant", testUniqueOtherTenant},
	{"SpansQueues", testUniqueSpansQueues},
	{"WithinBatch", testUniqueWithinBatch},
	{"FreedWhenFinished", testUniqueFreedWhenFinished},
	{"HeldWhileRetrying", testUniqueHeldWhileRetrying},
	{"EmptyKeyNotUnique", testUniqueEmptyKey},
	{"ConcurrentEnqueues", testUniqueConcurrent},
}, uniqueForTests...)

func testEnqueueDefaults(t *testing.T, h *harness) {
	res, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: "email"}})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("Enqueue returned %d results, want 1", len(res))
	}
	if res[0].ID.IsZero() || res[0].Duplicate || res[0].State != store.StateAvailable {
		t.Errorf("result = %+v, want a new ID, Duplicate false, State available", res[0])
	}
	j := h.get(res[0].ID)
	want := &store.Job{
		ID: res[0].ID, Queue: store.DefaultQueue, Kind: "email", RunAt: h.now(), State: store.StateAvailable,
		MaxAttempts: store.DefaultMaxAttempts, MaxDeliveries: store.DefaultMaxDeliveries, CreatedAt: h.now(),
	}
	if d := diffJobs(want, j); len(d) != 0 {
		t.Errorf("new job differs from the defaults: %v", d)
	}
}

func testEnqueueFieldsRoundTrip(t *testing.T, h *harness) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	runAt := h.now().Add(90*time.Minute + 123*time.Millisecond).In(zone)
	p := store.EnqueueParams{
		Queue: "mail.outbound", Kind: "send:welcome/v2", Payload: []byte(`{"to":"a@example.com"}`),
		Priority: -7, RunAt: runAt, Tenant: "acme_corp", UniqueKey: "welcome:42 ✓", OrderingKey: "user/42",
		MaxAttempts: 3, MaxDeliveries: 4, HoldKeyWhenDead: true, UniqueFor: 90*time.Minute + 250*time.Millisecond,
	}
	res := h.enqueue(p)[0]
	if res.State != store.StateScheduled {
		t.Errorf("result state = %s, want scheduled", res.State)
	}
	j := h.get(res.ID)
	want := &store.Job{
		ID: res.ID, Queue: p.Queue, Kind: p.Kind, Payload: p.Payload, Priority: p.Priority, RunAt: runAt,
		State: store.StateScheduled, Tenant: p.Tenant, UniqueKey: p.UniqueKey, OrderingKey: p.OrderingKey,
		MaxAttempts: 3, MaxDeliveries: 4, HoldKeyWhenDead: true, CreatedAt: h.now(),
		UniqueUntil: h.now().Add(90*time.Minute + 250*time.Millisecond),
	}
	if d := diffJobs(want, j); len(d) != 0 {
		t.Errorf("job differs from what was enqueued: %v", d)
	}
}

func testEnqueueRunAtDecidesState(t *testing.T, h *harness) {
	now := h.now()
	cases := []struct {
		runAt time.Time
		want  store.State
	}{
		{time.Time{}, store.StateAvailable},
		{now, store.StateAvailable},
		{now.Add(-time.Hour), store.StateAvailable},
		{now.Add(time.Millisecond), store.StateScheduled},
		{now.Add(24 * time.Hour), store.StateScheduled},
	}
	for _, c := range cases {
		res := h.enqueue(store.EnqueueParams{RunAt: c.runAt})[0]
		if res.State != c.want {
			t.Errorf("run_at %v: result state = %s, want %s", c.runAt, res.State, c.want)
		}
		j := h.get(res.ID)
		if j.State != c.want {
			t.Errorf("run_at %v: job state = %s, want %s", c.runAt, j.State, c.want)
		}
		wantRunAt := c.runAt
		if wantRunAt.IsZero() {
			wantRunAt = now
		}
		if !j.RunAt.Equal(wantRunAt) {
			t.Errorf("run_at %v: stored run_at = %v", c.runAt, j.RunAt)
		}
	}
}

func testEnqueueIDsIncrease(t *testing.T, h *harness) {
	ids := h.addN(50, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	for range 3 {
		ids = append(ids, h.add(store.EnqueueParams{Queue: "other"}))
	}
	for i := 1; i < len(ids); i++ {
		if !idLess(ids[i-1], ids[i]) {
			t.Fatalf("ID %d (%s) does not sort after ID %d (%s)", i, ids[i], i-1, ids[i-1])
		}
	}
	jobs := h.all()
	if len(jobs) != len(ids) {
		t.Fatalf("List returned %d jobs, want %d", len(jobs), len(ids))
	}
	for i, j := range jobs {
		if j.ID != ids[i] {
			t.Fatalf("List position %d is %s, want %s (enqueue order)", i, j.ID, ids[i])
		}
	}
}

func testEnqueueCallerID(t *testing.T, h *harness) {
	id := store.NewID()
	res := h.enqueue(store.EnqueueParams{ID: id})[0]
	if res.ID != id {
		t.Fatalf("Enqueue with ID %s returned %s", id, res.ID)
	}
	h.wantState(id, store.StateAvailable)
}

// testEnqueueInputReusable: Enqueue leaves the caller's params as they were,
// so enqueueing the same slice again makes new jobs rather than clashing IDs.
func testEnqueueInputReusable(t *testing.T, h *harness) {
	ps := []store.EnqueueParams{{Kind: "k"}, {Kind: "k", Queue: "q"}}
	first := h.enqueue(ps...)
	for i, p := range ps {
		if !p.ID.IsZero() || p.Queue != []string{"", "q"}[i] || !p.RunAt.IsZero() || p.MaxAttempts != 0 || p.MaxDeliveries != 0 {
			t.Errorf("Enqueue changed the caller's item %d: %+v", i, p)
		}
	}
	second := h.enqueue(ps...)
	for i := range ps {
		if second[i].Duplicate || second[i].ID == first[i].ID {
			t.Errorf("item %d enqueued again: %+v, want a new job", i, second[i])
		}
	}
	if n := len(h.all()); n != 4 {
		t.Errorf("store holds %d jobs, want 4", n)
	}
}

func testEnqueuePayloadRoundTrip(t *testing.T, h *harness) {
	every := make([]byte, 256*4)
	for i := range every {
		every[i] = byte(i)
	}
	big := make([]byte, store.MaxPayloadBytes)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	payloads := map[string][]byte{
		"empty":        nil,
		"json":         []byte(`{"a":[1,2,3],"b":"ünïcode"}`),
		"every byte":   every,
		"invalid utf8": {0xff, 0xfe, 0x00, 0xc3, 0x28},
		"nul bytes":    {0, 0, 0},
		"max size":     big,
	}
	for name, p := range payloads {
		id := h.add(store.EnqueueParams{Kind: "payload", Payload: p})
		got := h.get(id).Payload
		if !bytes.Equal(got, p) {
			t.Errorf("%s payload: got %d bytes back, want the %d bytes sent", name, len(got), len(p))
		}
	}
	// Claims hand out the same bytes.
	for _, j := range h.claim(store.DefaultQueue, len(payloads)+1) {
		if want := h.get(j.ID).Payload; !bytes.Equal(j.Payload, want) {
			t.Errorf("claimed job %s: payload of %d bytes, want %d", j.ID, len(j.Payload), len(want))
		}
	}
}

func testEnqueueLimitsAccepted(t *testing.T, h *harness) {
	ps := []store.EnqueueParams{
		{Queue: strings.Repeat("q", store.MaxNameLen), Kind: strings.Repeat("k", store.MaxNameLen), Tenant: strings.Repeat("t", store.MaxNameLen)},
		{UniqueKey: strings.Repeat("u", store.MaxKeyLen), OrderingKey: strings.Repeat("o", store.MaxKeyLen)},
		{Priority: store.MinPriority},
		{Priority: store.MaxPriority},
		{MaxAttempts: store.MaxAttemptsLimit, MaxDeliveries: store.MaxAttemptsLimit},
		{MaxAttempts: 1, MaxDeliveries: 1},
		{Payload: make([]byte, store.MaxPayloadBytes)},
		{Queue: "a.b_c:d/e-F9", Kind: "x", Tenant: "T-1"},
	}
	res, err := h.s.Enqueue(h.ctx, fillKind(ps))
	if err != nil {
		t.Fatalf("Enqueue at the limits: %v", err)
	}
	for i, r := range res {
		j := h.get(r.ID)
		p := ps[i]
		if j.Queue != cmpOr(p.Queue, store.DefaultQueue) || j.Kind != p.Kind || j.Tenant != p.Tenant ||
			j.UniqueKey != p.UniqueKey || j.OrderingKey != p.OrderingKey || j.Priority != p.Priority ||
			len(j.Payload) != len(p.Payload) {
			t.Errorf("item %d did not round-trip: got %+v", i, j)
		}
		if p.MaxAttempts != 0 && (j.MaxAttempts != p.MaxAttempts || j.MaxDeliveries != p.MaxDeliveries) {
			t.Errorf("item %d: max attempts/deliveries = %d/%d, want %d/%d", i, j.MaxAttempts, j.MaxDeliveries, p.MaxAttempts, p.MaxDeliveries)
		}
	}
}

func fillKind(ps []store.EnqueueParams) []store.EnqueueParams {
	for i := range ps {
		if ps[i].Kind == "" {
			ps[i].Kind = "test"
		}
	}
	return ps
}

// invalidJobs are refused enqueues; tooLarge marks the documented limits,
// which must also match ErrTooLarge and *store.LimitError.
var invalidJobs = []struct {
	name     string
	p        store.EnqueueParams
	tooLarge bool
}{
	{"empty kind", store.EnqueueParams{Kind: ""}, false},
	{"kind with space", store.EnqueueParams{Kind: "send email"}, false},
	{"kind too long", store.EnqueueParams{Kind: strings.Repeat("k", store.MaxNameLen+1)}, true},
	{"queue with bang", store.EnqueueParams{Kind: "k", Queue: "q!"}, false},
	{"queue with accent", store.EnqueueParams{Kind: "k", Queue: "é"}, false},
	{"queue too long", store.EnqueueParams{Kind: "k", Queue: strings.Repeat("q", store.MaxNameLen+1)}, true},
	{"tenant with space", store.EnqueueParams{Kind: "k", Tenant: "a b"}, false},
	{"tenant too long", store.EnqueueParams{Kind: "k", Tenant: strings.Repeat("t", store.MaxNameLen+1)}, true},
	{"unique key too long", store.EnqueueParams{Kind: "k", UniqueKey: strings.Repeat("u", store.MaxKeyLen+1)}, true},
	{"unique key not utf8", store.EnqueueParams{Kind: "k", UniqueKey: "a\xffb"}, false},
	{"ordering key too long", store.EnqueueParams{Kind: "k", OrderingKey: strings.Repeat("o", store.MaxKeyLen+1)}, true},
	{"ordering key not utf8", store.EnqueueParams{Kind: "k", OrderingKey: "\xc3\x28"}, false},
	{"unique key with NUL", store.EnqueueParams{Kind: "k", UniqueKey: "a\x00b"}, false},
	{"ordering key with NUL", store.EnqueueParams{Kind: "k", OrderingKey: "\x00"}, false},
	{"payload too large", store.EnqueueParams{Kind: "k", Payload: make([]byte, store.MaxPayloadBytes+1)}, true},
	{"priority too low", store.EnqueueParams{Kind: "k", Priority: store.MinPriority - 1}, false},
	{"priority too high", store.EnqueueParams{Kind: "k", Priority: store.MaxPriority + 1}, false},
	{"max attempts negative", store.EnqueueParams{Kind: "k", MaxAttempts: -1}, false},
	{"max attempts too high", store.EnqueueParams{Kind: "k", MaxAttempts: store.MaxAttemptsLimit + 1}, false},
	{"max deliveries negative", store.EnqueueParams{Kind: "k", MaxDeliveries: -1}, false},
	{"max deliveries too high", store.EnqueueParams{Kind: "k", MaxDeliveries: store.MaxAttemptsLimit + 1}, false},
	{"hold key without a key", store.EnqueueParams{Kind: "k", HoldKeyWhenDead: true}, false},
	{"unique for without a key", store.EnqueueParams{Kind: "k", UniqueFor: time.Minute}, false},
	{"unique for negative", store.EnqueueParams{Kind: "k", UniqueKey: "u", UniqueFor: -time.Minute}, false},
	{"unique for too long", store.EnqueueParams{Kind: "k", UniqueKey: "u", UniqueFor: store.MaxUniqueFor + time.Second}, false},
}

func testEnqueueInvalid(t *testing.T, h *harness) {
	for _, c := range invalidJobs {
		batch := []store.EnqueueParams{{Kind: "ok", UniqueKey: "u1"}, c.p, {Kind: "ok", OrderingKey: "o1"}}
		_, err := h.s.Enqueue(h.ctx, batch)
		if err == nil {
			t.Errorf("%s: Enqueue succeeded, want ErrInvalid", c.name)
			continue
		}
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error %v does not match ErrInvalid", c.name, err)
		}
		if got := errors.Is(err, store.ErrTooLarge); got != c.tooLarge {
			t.Errorf("%s: errors.Is(err, ErrTooLarge) = %v, want %v (err: %v)", c.name, got, c.tooLarge, err)
		}
		if c.tooLarge {
			if le := (*store.LimitError)(nil); !errors.As(err, &le) {
				t.Errorf("%s: error %v has no *store.LimitError", c.name, err)
			}
		} else if ve := (*store.ValidationError)(nil); !errors.As(err, &ve) {
			t.Errorf("%s: error %v has no *store.ValidationError", c.name, err)
		}
		wantCode := "invalid"
		if c.tooLarge {
			wantCode = "too_large"
		}
		if got := store.Code(err); got != wantCode {
			t.Errorf("%s: Code = %q, want %q", c.name, got, wantCode)
		}
		items := itemErrors(err)
		if len(items) != 1 || items[0].Index != 1 {
			t.Errorf("%s: item errors %v, want exactly one at index 1", c.name, items)
		} else if !errors.Is(items[0], store.ErrInvalid) {
			t.Errorf("%s: item error %v does not match ErrInvalid", c.name, items[0])
		}
		if jobs := h.all(); len(jobs) != 0 {
			t.Fatalf("%s: refused Enqueue wrote %d jobs, want none", c.name, len(jobs))
		}
	}
	// The valid items' unique and ordering keys were not taken either.
	res := h.enqueue(store.EnqueueParams{UniqueKey: "u1"}, store.EnqueueParams{OrderingKey: "o1"})
	if res[0].Duplicate {
		t.Error("a refused Enqueue left its unique key taken")
	}
	if jobs := h.claim(store.DefaultQueue, 10); len(jobs) != 2 {
		t.Errorf("claimed %d jobs after the refused enqueues, want 2", len(jobs))
	}
}

func testEnqueueInvalidSeveral(t *testing.T, h *harness) {
	batch := []store.EnqueueParams{
		{Kind: ""},
		{Kind: "ok"},
		{Kind: "ok", Priority: 1000},
		{Kind: "ok"},
		{Kind: "bad kind", Payload: make([]byte, store.MaxPayloadBytes+1)},
	}
	_, err := h.s.Enqueue(h.ctx, batch)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Enqueue = %v, want ErrInvalid", err)
	}
	items := itemErrors(err)
	var got []int
	for _, it := range items {
		got = append(got, it.Index)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 2 || got[2] != 4 {
		t.Errorf("item error indexes = %v, want [0 2 4]", got)
	}
	h.wantEmpty()
}

func testEnqueueBatchTooLarge(t *testing.T, h *harness) {
	batch := make([]store.EnqueueParams, store.MaxBatch+1)
	for i := range batch {
		batch[i] = store.EnqueueParams{Kind: "k"}
	}
	_, err := h.s.Enqueue(h.ctx, batch)
	if !errors.Is(err, store.ErrTooLarge) || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Enqueue of %d jobs = %v, want ErrTooLarge and ErrInvalid", len(batch), err)
	}
	if le := (*store.LimitError)(nil); !errors.As(err, &le) {
		t.Errorf("error %v has no *store.LimitError", err)
	}
	h.wantEmpty()
}

func testEnqueueMaxBatch(t *testing.T, h *harness) {
	ids := h.addN(store.MaxBatch, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	seen := make(map[store.ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("ID %s returned twice", id)
		}
		seen[id] = true
	}
	if n := len(h.all()); n != store.MaxBatch {
		t.Fatalf("store holds %d jobs, want %d", n, store.MaxBatch)
	}
}

func testEnqueueEmpty(t *testing.T, h *harness) {
	res, err := h.s.Enqueue(h.ctx, nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("Enqueue(nil) = %v, %v; want no results and no error", res, err)
	}
	h.wantEmpty()
}

func testUniqueDuplicate(t *testing.T, h *harness) {
	first := h.enqueue(store.EnqueueParams{UniqueKey: "k", Payload: []byte("first")})[0]
	if first.Duplicate {
		t.Fatal("first enqueue reported Duplicate")
	}
	second := h.enqueue(store.EnqueueParams{UniqueKey: "k", Payload: []byte("second"), Queue: "default", Priority: 5})[0]
	if second.ID != first.ID || !second.Duplicate || second.State != store.StateAvailable {
		t.Fatalf("second enqueue = %+v, want ID %s, Duplicate, available", second, first.ID)
	}
	jobs := h.all()
	if len(jobs) != 1 {
		t.Fatalf("store holds %d jobs, want 1", len(jobs))
	}
	if string(jobs[0].Payload) != "first" || jobs[0].Priority != 0 {
		t.Errorf("the live job was changed by the duplicate: payload %q priority %d", jobs[0].Payload, jobs[0].Priority)
	}
}

func testUniqueDuplicateState(t *testing.T, h *harness) {
	sched := h.add(store.EnqueueParams{UniqueKey: "later", RunAt: h.now().Add(time.Hour)})
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "later"})[0]; r.ID != sched || !r.Duplicate || r.State != store.StateScheduled {
		t.Errorf("duplicate of a scheduled job = %+v, want ID %s, Duplicate, scheduled", r, sched)
	}
	run := h.add(store.EnqueueParams{UniqueKey: "now"})
	h.claimID(store.DefaultQueue, run)
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "now"})[0]; r.ID != run || !r.Duplicate || r.State != store.StateRunning {
		t.Errorf("duplicate of a running job = %+v, want ID %s, Duplicate, running", r, run)
	}
	if n := len(h.all()); n != 2 {
		t.Errorf("store holds %d jobs, want 2", n)
	}
}

func testUniqueOtherTenant(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{UniqueKey: "k"})
	b := h.enqueue(store.EnqueueParams{UniqueKey: "k", Tenant: "t1"})[0]
	c := h.enqueue(store.EnqueueParams{UniqueKey: "k", Tenant: "t2"})[0]
	if b.Duplicate || c.Duplicate || b.ID == a || c.ID == a || b.ID == c.ID {
		t.Fatalf("same key in other tenants: %+v, %+v; want new jobs", b, c)
	}
	d := h.enqueue(store.EnqueueParams{UniqueKey: "k", Tenant: "t1"})[0]
	if !d.Duplicate || d.ID != b.ID {
		t.Errorf("repeat in tenant t1 = %+v, want duplicate of %s", d, b.ID)
	}
	if n := len(h.all()); n != 3 {
		t.Errorf("store holds %d jobs, want 3", n)
	}
}

// testUniqueSpansQueues: the key is (tenant, unique key); the queue is not part of it.
func testUniqueSpansQueues(t *testing.T, h *harness) {
	a := h.add(store.EnqueueParams{Queue: "q1", UniqueKey: "k", Tenant: "t"})
	r := h.enqueue(store.EnqueueParams{Queue: "q2", UniqueKey: "k", Tenant: "t"})[0]
	if !r.Duplicate || r.ID != a {
		t.Errorf("same (tenant, key) in another queue = %+v, want duplicate of %s", r, a)
	}
}

func testUniqueWithinBatch(t *testing.T, h *harness) {
	res := h.enqueue(
		store.EnqueueParams{UniqueKey: "k", Payload: []byte("0")},
		store.EnqueueParams{UniqueKey: "k", Payload: []byte("1")},
		store.EnqueueParams{UniqueKey: "j"},
		store.EnqueueParams{UniqueKey: "k", Payload: []byte("3")},
		store.EnqueueParams{UniqueKey: "k", Tenant: "other"},
	)
	if res[0].Duplicate || res[2].Duplicate || res[4].Duplicate {
		t.Errorf("first items of each key were marked duplicate: %+v", res)
	}
	for _, i := range []int{1, 3} {
		if !res[i].Duplicate || res[i].ID != res[0].ID {
			t.Errorf("item %d = %+v, want duplicate of item 0 (%s)", i, res[i], res[0].ID)
		}
	}
	if res[2].ID == res[0].ID || res[4].ID == res[0].ID {
		t.Error("items with another key or tenant got item 0's ID")
	}
	jobs := h.all()
	if len(jobs) != 3 {
		t.Fatalf("store holds %d jobs, want 3", len(jobs))
	}
	if string(h.get(res[0].ID).Payload) != "0" {
		t.Error("the job kept is not the first item")
	}
}

func testUniqueFreedWhenFinished(t *testing.T, h *harness) {
	for _, st := range []store.State{store.StateCompleted, store.StateCancelled, store.StateDead} {
		key := "key-" + string(st)
		old := h.finish(store.EnqueueParams{UniqueKey: key}, st)
		r := h.enqueue(store.EnqueueParams{UniqueKey: key})[0]
		if r.Duplicate || r.ID == old {
			t.Errorf("key of a %s job: enqueue = %+v, want a new job", st, r)
			continue
		}
		// The new job holds the key now.
		if again := h.enqueue(store.EnqueueParams{UniqueKey: key})[0]; !again.Duplicate || again.ID != r.ID {
			t.Errorf("key re-used after %s: next enqueue = %+v, want duplicate of %s", st, again, r.ID)
		}
		h.cancelOK(r.ID)
	}
}

func testUniqueHeldWhileRetrying(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{UniqueKey: "k"})
	j := h.claimID(store.DefaultQueue, id)
	h.settleOK(failed(j, "boom", h.now().Add(time.Minute)))
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0]; !r.Duplicate || r.ID != id || r.State != store.StateScheduled {
		t.Errorf("enqueue while the holder waits to retry = %+v, want duplicate of %s, scheduled", r, id)
	}
	h.clock.Advance(time.Minute)
	j = h.claimID(store.DefaultQueue, id)
	h.settleOK(verdict(j, store.Release))
	if r := h.enqueue(store.EnqueueParams{UniqueKey: "k"})[0]; !r.Duplicate || r.ID != id {
		t.Errorf("enqueue after the holder was released = %+v, want duplicate of %s", r, id)
	}
}

func testUniqueEmptyKey(t *testing.T, h *harness) {
	res := h.enqueue(store.EnqueueParams{}, store.EnqueueParams{})
	res = append(res, h.enqueue(store.EnqueueParams{})...)
	for i, r := range res {
		if r.Duplicate {
			t.Errorf("job %d without a unique key was a duplicate", i)
		}
	}
	if n := len(h.all()); n != 3 {
		t.Errorf("store holds %d jobs, want 3", n)
	}
}

func testUniqueConcurrent(t *testing.T, h *harness) {
	const n = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		res   = make([]store.EnqueueResult, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: "race", UniqueKey: "same", Tenant: "t"}})
			if err == nil && len(r) != 1 {
				err = errors.New("wrong number of results")
			}
			if err == nil {
				res[i] = r[0]
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: Enqueue: %v", i, errs[i])
		}
		if res[i].ID != res[0].ID {
			t.Errorf("goroutine %d got ID %s, goroutine 0 got %s", i, res[i].ID, res[0].ID)
		}
		if !res[i].Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d enqueues reported a new job, want exactly 1", fresh)
	}
	if jobs := h.all(); len(jobs) != 1 {
		t.Errorf("store holds %d jobs, want 1", len(jobs))
	}
}

// testEnqueueCarriesHistory: a job may start with attempts and errors
// recorded elsewhere; the next failure adds to them.
func testEnqueueCarriesHistory(t *testing.T, h *harness) {
	first := store.AttemptError{At: h.now().Add(-time.Minute), Attempt: 1, Message: "failed in a batch"}
	id := h.add(store.EnqueueParams{MaxAttempts: 3, Attempts: 1, Errors: []store.AttemptError{first}})
	plain := h.add(store.EnqueueParams{})
	j := h.get(id)
	if j.Attempts != 1 || len(j.Errors) != 1 || j.Errors[0].Message != "failed in a batch" || !j.Errors[0].At.Equal(first.At) {
		t.Fatalf("job starts with attempts %d, errors %+v", j.Attempts, j.Errors)
	}
	if p := h.get(plain); p.Attempts != 0 || len(p.Errors) != 0 {
		t.Fatalf("a plain job of the same call has attempts %d, errors %v", p.Attempts, p.Errors)
	}
	c := h.claimID(store.DefaultQueue, id)
	h.settleOK(store.Verdict{ID: id, Token: c.LockToken, Outcome: store.Fail, Error: &store.AttemptError{Message: "again"}})
	if j = h.get(id); j.Attempts != 2 || len(j.Errors) != 2 || j.Errors[1].Message != "again" {
		t.Fatalf("after one more failure: attempts %d, errors %+v", j.Attempts, j.Errors)
	}
	for _, bad := range []store.EnqueueParams{
		{Kind: "k", MaxAttempts: 2, Attempts: 2},
		{Kind: "k", Attempts: -1},
		{Kind: "k", Errors: make([]store.AttemptError, store.MaxErrorHistory+1)},
	} {
		if _, err := h.s.Enqueue(h.ctx, []store.EnqueueParams{bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Enqueue(attempts %d, %d errors): %v, want ErrInvalid", bad.Attempts, len(bad.Errors), err)
		}
	}
}

// testEnqueueHoldKeyPerJob: HoldKeyWhenDead is kept per job in a batch that
// mixes it with jobs without it, also when a duplicate makes the store
// insert the batch row by row.
func testEnqueueHoldKeyPerJob(t *testing.T, h *harness) {
	first := h.add(store.EnqueueParams{UniqueKey: "u"})
	ps := []store.EnqueueParams{
		{OrderingKey: "k1", HoldKeyWhenDead: true},
		{UniqueKey: "u", OrderingKey: "k9", HoldKeyWhenDead: true}, // a duplicate: not inserted
		{OrderingKey: "k2"},
		{},
		{OrderingKey: "k3", HoldKeyWhenDead: true, UniqueKey: "u2"},
	}
	res := h.enqueue(ps...)
	if !res[1].Duplicate || res[1].ID != first {
		t.Fatalf("the duplicate's result = %+v, want job %s", res[1], first)
	}
	if h.get(first).HoldKeyWhenDead {
		t.Error("the duplicate's HoldKeyWhenDead reached the job holding its unique key")
	}
	for i, p := range ps {
		if i == 1 {
			continue
		}
		if j := h.get(res[i].ID); j.HoldKeyWhenDead != p.HoldKeyWhenDead {
			t.Errorf("job %d: HoldKeyWhenDead = %v, want %v", i, j.HoldKeyWhenDead, p.HoldKeyWhenDead)
		}
	}
	// A batch without it, after one with it.
	for _, r := range h.enqueue(store.EnqueueParams{OrderingKey: "k4"}, store.EnqueueParams{}) {
		if h.get(r.ID).HoldKeyWhenDead {
			t.Error("a job enqueued without HoldKeyWhenDead has it")
		}
	}
	// Claims return it too.
	for _, j := range h.claim(store.DefaultQueue, 10) {
		if want := j.OrderingKey == "k1" || j.OrderingKey == "k3"; j.HoldKeyWhenDead != want {
			t.Errorf("claimed job of key %q: HoldKeyWhenDead = %v, want %v", j.OrderingKey, j.HoldKeyWhenDead, want)
		}
	}
}
