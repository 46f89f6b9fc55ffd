package storetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// sqsTests check a store's store.SQSStore. They run when the backend
// declares Features.SQS.
var sqsTests = []test{
	{"CreateAndGet", testSQSCreateGet},
	{"CreateKeepsExisting", testSQSCreateExisting},
	{"List", testSQSList},
	{"UpdateMerges", testSQSUpdate},
	{"DeleteAndRemove", testSQSDeleteRemove},
	{"InvalidRefused", testSQSInvalid},
	{"DeleteQueueJobs", testSQSDeleteJobs},
	{"CountQueueJobs", testSQSCount},
	{"CompleteUnclaimed", testSQSCompleteUnclaimed},
	{"RedriveDead", testSQSRedrive},
	{"Closed", testSQSClosed},
}

func (h *harness) sqs() store.SQSStore {
	h.t.Helper()
	qs := h.s.Capabilities().SQS
	if qs == nil {
		h.t.Fatal("the backend declares Features.SQS, but Capabilities().SQS is nil")
	}
	return qs
}

// createSQS creates a queue's settings and fails the test on an error.
func (h *harness) createSQS(q store.SQSQueue) (*store.SQSQueue, bool) {
	h.t.Helper()
	got, created, err := h.sqs().CreateSQSQueue(h.ctx, q)
	if err != nil {
		h.t.Fatalf("CreateSQSQueue(%s): %v", q.Queue, err)
	}
	if got == nil || got.Queue != q.Queue {
		h.t.Fatalf("CreateSQSQueue(%s) = %+v", q.Queue, got)
	}
	return got, created
}

// getSQS reads a queue's settings and fails the test if it cannot.
func (h *harness) getSQS(queue string) *store.SQSQueue {
	h.t.Helper()
	q, err := h.sqs().GetSQSQueue(h.ctx, queue)
	if err != nil {
		h.t.Fatalf("GetSQSQueue(%s): %v", queue, err)
	}
	if q == nil || q.Queue != queue {
		h.t.Fatalf("GetSQSQueue(%s) = %+v", queue, q)
	}
	return q
}

// wantSQS fails the test unless got has want's fields; times as instants,
// and nil maps equal to empty ones.
func wantSQS(t *testing.T, what string, got, want *store.SQSQueue) {
	t.Helper()
	switch {
	case got.Queue != want.Queue:
		t.Fatalf("%s: queue %q, want %q", what, got.Queue, want.Queue)
	case !maps.Equal(got.Attributes, want.Attributes) || got.Attributes == nil:
		t.Fatalf("%s: attributes %v, want %v", what, got.Attributes, want.Attributes)
	case !maps.Equal(got.Tags, want.Tags) || got.Tags == nil:
		t.Fatalf("%s: tags %v, want %v", what, got.Tags, want.Tags)
	case !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || !got.DeletedAt.Equal(want.DeletedAt):
		t.Fatalf("%s: created %v updated %v deleted %v, want %v %v %v", what,
			got.CreatedAt, got.UpdatedAt, got.DeletedAt, want.CreatedAt, want.UpdatedAt, want.DeletedAt)
	case got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC:
		t.Fatalf("%s: times not in UTC", what)
	}
}

func testSQSCreateGet(t *testing.T, h *harness) {
	h.clock.Advance(1500 * time.Microsecond)
	q := store.SQSQueue{Queue: "acme/orders.fifo", Attributes: map[string]string{"FifoQueue": "true", "VisibilityTimeout": "45"},
		Tags: map[string]string{"team": "billing", "empty": ""}}
	want := &store.SQSQueue{Queue: q.Queue, Attributes: maps.Clone(q.Attributes), Tags: maps.Clone(q.Tags), CreatedAt: h.now(), UpdatedAt: h.now()}
	got, created := h.createSQS(q)
	if !created {
		t.Fatal("CreateSQSQueue of a new queue: created = false")
	}
	wantSQS(t, "CreateSQSQueue's answer", got, want)
	wantSQS(t, "GetSQSQueue", h.getSQS(q.Queue), want)
	// The answer and the argument are the callers' own.
	got.Attributes["VisibilityTimeout"] = "1"
	q.Tags["team"] = "other"
	wantSQS(t, "GetSQSQueue after the caller changed its copies", h.getSQS(q.Queue), want)

	// No attributes nor tags: empty maps.
	bare, _ := h.createSQS(store.SQSQueue{Queue: "bare"})
	wantSQS(t, "a queue without settings", bare, &store.SQSQueue{Queue: "bare", Attributes: map[string]string{}, Tags: map[string]string{},
		CreatedAt: h.now(), UpdatedAt: h.now()})

	if _, err := h.sqs().GetSQSQueue(h.ctx, "acme/none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSQSQueue of an unknown queue = %v, want ErrNotFound", err)
	}
}

func testSQSCreateExisting(t *testing.T, h *harness) {
	first, _ := h.createSQS(store.SQSQueue{Queue: "acme/mail", Attributes: map[string]string{"DelaySeconds": "5"}})
	h.clock.Advance(time.Minute)
	got, created := h.createSQS(store.SQSQueue{Queue: "acme/mail", Attributes: map[string]string{"DelaySeconds": "9"}, Tags: map[string]string{"a": "b"}})
	if created {
		t.Fatal("CreateSQSQueue of an existing queue: created = true")
	}
	wantSQS(t, "CreateSQSQueue of an existing queue answers it as stored", got, first)

	// A deleted queue keeps its name until it is removed.
	if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/mail", store.SQSQueueUpdate{Delete: true}); err != nil {
		t.Fatal(err)
	}
	got, created = h.createSQS(store.SQSQueue{Queue: "acme/mail"})
	if created || !got.Deleted() {
		t.Fatalf("CreateSQSQueue of a deleted queue = %+v, created %v; want the deleted one, not created", got, created)
	}
}

func testSQSList(t *testing.T, h *harness) {
	for _, q := range []string{"acme/b", "acme/a", "acme/B", "beta/a", "acme/c", "acmeco/a", "acme/1"} {
		h.createSQS(store.SQSQueue{Queue: q})
	}
	if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/c", store.SQSQueueUpdate{Delete: true}); err != nil {
		t.Fatal(err)
	}
	list := func(p store.SQSQueueListParams) []string {
		t.Helper()
		qs, err := h.sqs().ListSQSQueues(h.ctx, p)
		if err != nil {
			t.Fatalf("ListSQSQueues(%+v): %v", p, err)
		}
		var names []string
		for _, q := range qs {
			names = append(names, q.Queue)
		}
		return names
	}
	for _, c := range []struct {
		p    store.SQSQueueListParams
		want []string
	}{
		// Byte order, deleted ones included; a prefix is a prefix of the
		// stored name, so "acme/" does not take "acmeco/".
		{store.SQSQueueListParams{Prefix: "acme/"}, []string{"acme/1", "acme/B", "acme/a", "acme/b", "acme/c"}},
		{store.SQSQueueListParams{Prefix: "acme/", Limit: 2}, []string{"acme/1", "acme/B"}},
		{store.SQSQueueListParams{Prefix: "acme/", After: "acme/B", Limit: 2}, []string{"acme/a", "acme/b"}},
		{store.SQSQueueListParams{Prefix: "acme/b"}, []string{"acme/b"}},
		{store.SQSQueueListParams{Prefix: "acme"}, []string{"acme/1", "acme/B", "acme/a", "acme/b", "acme/c", "acmeco/a"}},
		{store.SQSQueueListParams{}, []string{"acme/1", "acme/B", "acme/a", "acme/b", "acme/c", "acmeco/a", "beta/a"}},
		{store.SQSQueueListParams{After: "acmeco/a"}, []string{"beta/a"}},
		{store.SQSQueueListParams{Prefix: "zeta/"}, nil},
	} {
		if got := list(c.p); !slices.Equal(got, c.want) {
			t.Errorf("ListSQSQueues(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
	if _, err := h.sqs().ListSQSQueues(h.ctx, store.SQSQueueListParams{Limit: store.MaxListLimit + 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ListSQSQueues over the limit = %v, want ErrInvalid", err)
	}
}

func testSQSUpdate(t *testing.T, h *harness) {
	created := h.now()
	h.createSQS(store.SQSQueue{Queue: "acme/q", Attributes: map[string]string{"DelaySeconds": "5", "VisibilityTimeout": "30"},
		Tags: map[string]string{"team": "a", "env": "prod"}})
	update := func(u store.SQSQueueUpdate) *store.SQSQueue {
		t.Helper()
		got, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/q", u)
		if err != nil {
			t.Fatalf("UpdateSQSQueue(%+v): %v", u, err)
		}
		return got
	}
	// Attributes merge: set, replace, remove with "".
	h.clock.Advance(time.Second)
	attrsAt := h.now()
	got := update(store.SQSQueueUpdate{Attributes: map[string]string{"VisibilityTimeout": "60", "DelaySeconds": "", "Policy": "{}"}})
	want := &store.SQSQueue{Queue: "acme/q", Attributes: map[string]string{"VisibilityTimeout": "60", "Policy": "{}"},
		Tags: map[string]string{"team": "a", "env": "prod"}, CreatedAt: created, UpdatedAt: attrsAt}
	wantSQS(t, "after setting attributes", got, want)
	wantSQS(t, "GetSQSQueue after setting attributes", h.getSQS("acme/q"), want)

	// Tags merge too, and do not move UpdatedAt.
	h.clock.Advance(time.Second)
	got = update(store.SQSQueueUpdate{Tags: map[string]string{"team": "b", "cost": "42"}, Untag: []string{"env", "missing"}})
	want.Tags = map[string]string{"team": "b", "cost": "42"}
	wantSQS(t, "after tagging", got, want)

	// An empty update changes nothing and answers the queue.
	wantSQS(t, "after an empty update", update(store.SQSQueueUpdate{}), want)

	// Delete marks it; a deleted queue takes no updates.
	h.clock.Advance(time.Second)
	got = update(store.SQSQueueUpdate{Delete: true})
	want.DeletedAt, want.UpdatedAt = h.now(), h.now()
	wantSQS(t, "after delete", got, want)
	if !h.getSQS("acme/q").Deleted() {
		t.Fatal("a deleted queue reads back live")
	}
	for _, u := range []store.SQSQueueUpdate{{Attributes: map[string]string{"A": "1"}}, {Delete: true}, {}} {
		if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/q", u); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UpdateSQSQueue(%+v) of a deleted queue = %v, want ErrNotFound", u, err)
		}
	}
	if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/none", store.SQSQueueUpdate{Tags: map[string]string{"a": "b"}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSQSQueue of an unknown queue = %v, want ErrNotFound", err)
	}
	wantSQS(t, "GetSQSQueue after refused updates", h.getSQS("acme/q"), want)
}

func testSQSDeleteRemove(t *testing.T, h *harness) {
	h.createSQS(store.SQSQueue{Queue: "acme/q"})
	if err := h.sqs().RemoveSQSQueue(h.ctx, "acme/q"); err != nil {
		t.Fatalf("RemoveSQSQueue: %v", err)
	}
	if _, err := h.sqs().GetSQSQueue(h.ctx, "acme/q"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSQSQueue of a removed queue = %v, want ErrNotFound", err)
	}
	if err := h.sqs().RemoveSQSQueue(h.ctx, "acme/q"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveSQSQueue again = %v, want ErrNotFound", err)
	}
	// The name is free again.
	if _, created := h.createSQS(store.SQSQueue{Queue: "acme/q"}); !created {
		t.Fatal("CreateSQSQueue after RemoveSQSQueue did not create")
	}
}

func testSQSInvalid(t *testing.T, h *harness) {
	tooMany := map[string]string{}
	for i := range store.MaxSQSTags + 1 {
		tooMany["t"+strings.Repeat("x", i)] = "v"
	}
	for what, q := range map[string]store.SQSQueue{
		"no name":            {},
		"bad name":           {Queue: "acme/bad name"},
		"empty attribute":    {Queue: "acme/q", Attributes: map[string]string{"DelaySeconds": ""}},
		"nameless attr":      {Queue: "acme/q", Attributes: map[string]string{"": "1"}},
		"attribute with NUL": {Queue: "acme/q", Attributes: map[string]string{"Policy": "a\x00b"}},
		"too many tags":      {Queue: "acme/q", Tags: tooMany},
		"long tag value":     {Queue: "acme/q", Tags: map[string]string{"k": strings.Repeat("v", store.MaxSQSTagValue+1)}},
		"huge attributes":    {Queue: "acme/q", Attributes: map[string]string{"Policy": strings.Repeat("p", store.MaxSQSAttributesBytes+1)}},
	} {
		if got, _, err := h.sqs().CreateSQSQueue(h.ctx, q); !errors.Is(err, store.ErrInvalid) || got != nil {
			t.Errorf("CreateSQSQueue with %s = %+v, %v; want ErrInvalid", what, got, err)
		}
	}
	if qs, err := h.sqs().ListSQSQueues(h.ctx, store.SQSQueueListParams{}); err != nil || len(qs) != 0 {
		t.Fatalf("refused queues were stored: %v %v", qs, err)
	}
	h.createSQS(store.SQSQueue{Queue: "acme/q", Tags: map[string]string{"k": "v"}})
	if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/q", store.SQSQueueUpdate{Tags: tooMany}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("UpdateSQSQueue with too many tags = %v, want ErrInvalid", err)
	}
	if _, err := h.sqs().UpdateSQSQueue(h.ctx, "acme/q", store.SQSQueueUpdate{Untag: []string{""}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("UpdateSQSQueue untagging an empty key = %v, want ErrInvalid", err)
	}
	if got := h.getSQS("acme/q"); !maps.Equal(got.Tags, map[string]string{"k": "v"}) {
		t.Fatalf("refused updates changed the tags: %v", got.Tags)
	}
	for what, p := range map[string]store.RedriveParams{
		"same queue": {From: "a", To: "a"},
		"no target":  {From: "a"},
		"one prefix": {From: "a", To: "b", FromKeyPrefix: "a/"},
		"over limit": {From: "a", To: "b", Limit: store.MaxBatch + 1},
		"bad max":    {From: "a", To: "b", MaxDeliveries: -1},
		"bad queue":  {From: "a b", To: "b"},
	} {
		if _, err := h.sqs().RedriveDead(h.ctx, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("RedriveDead with %s = %v, want ErrInvalid", what, err)
		}
	}
	if _, err := h.sqs().DeleteQueueJobs(h.ctx, store.DeleteQueueJobsParams{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("DeleteQueueJobs without a queue = %v, want ErrInvalid", err)
	}
	if errs, err := h.sqs().CompleteUnclaimed(h.ctx, []store.Delivery{{ID: store.NewID(), Queue: "q"}, {ID: store.NewID(), Deliveries: 1}}); err != nil ||
		!errors.Is(errs[0], store.ErrInvalid) || !errors.Is(errs[1], store.ErrInvalid) {
		t.Errorf("CompleteUnclaimed of delivery 0, and without a queue = %v, %v; want ErrInvalid for both items", errs, err)
	}
}

func testSQSDeleteJobs(t *testing.T, h *harness) {
	old := h.add(store.EnqueueParams{Queue: "q"})
	running := h.add(store.EnqueueParams{Queue: "q"})
	h.claimID("q", old) // held by a lock
	h.claimID("q", running)
	h.settleOK(verdict(h.get(old), store.DeadLetter)) // dead now
	h.clock.Advance(time.Second)
	cut := h.now()
	available := h.add(store.EnqueueParams{Queue: "q"})
	scheduled := h.add(store.EnqueueParams{Queue: "q", Delay: time.Hour})
	done := h.add(store.EnqueueParams{Queue: "q"})
	h.settleOK(verdict(h.claimID("q", available), store.Snooze)) // back to available, at once
	j := h.claimOne("q")
	if j.ID != available && j.ID != done {
		t.Fatalf("claimed %s", j.ID)
	}
	h.settleOK(verdict(j, store.Complete))
	finished := j.ID
	other := h.add(store.EnqueueParams{Queue: "other"})

	del := func(p store.DeleteQueueJobsParams) int {
		t.Helper()
		n, err := h.sqs().DeleteQueueJobs(h.ctx, p)
		if err != nil {
			t.Fatalf("DeleteQueueJobs(%+v): %v", p, err)
		}
		return n
	}
	// Before the cut: the dead one and the running one.
	runningJob := h.get(running)
	if n := del(store.DeleteQueueJobsParams{Queue: "q", Before: cut}); n != 2 {
		t.Fatalf("DeleteQueueJobs before the cut deleted %d, want 2", n)
	}
	h.gone(old)
	h.gone(running)
	if errs := h.settle(verdict(runningJob, store.Complete)); !errors.Is(errs[0], store.ErrNotFound) {
		t.Fatalf("the deleted running job's holder settled with %v, want ErrNotFound", errs[0])
	}
	// A limit, then the rest; the completed job stays, and so does the
	// other queue's.
	if n := del(store.DeleteQueueJobsParams{Queue: "q", Limit: 1}); n != 1 {
		t.Fatalf("DeleteQueueJobs with limit 1 deleted %d", n)
	}
	if n := del(store.DeleteQueueJobsParams{Queue: "q"}); n != 1 {
		t.Fatalf("DeleteQueueJobs of the rest deleted %d, want 1", n)
	}
	for _, id := range []store.ID{available, scheduled, done} {
		if id != finished {
			h.gone(id)
		}
	}
	h.wantState(finished, store.StateCompleted)
	h.wantState(other, store.StateAvailable)
	if n := del(store.DeleteQueueJobsParams{Queue: "q"}); n != 0 {
		t.Fatalf("DeleteQueueJobs of an emptied queue deleted %d", n)
	}
}

func testSQSCount(t *testing.T, h *harness) {
	count := func() store.QueueDepth {
		t.Helper()
		d, err := h.sqs().CountQueueJobs(h.ctx, "q")
		if err != nil {
			t.Fatalf("CountQueueJobs: %v", err)
		}
		return d
	}
	if d := count(); d != (store.QueueDepth{}) {
		t.Fatalf("an empty queue counts %+v", d)
	}
	h.addN(3, func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "q"} })
	h.add(store.EnqueueParams{Queue: "q", Delay: time.Minute})
	h.add(store.EnqueueParams{Queue: "q", Delay: time.Hour})
	h.add(store.EnqueueParams{Queue: "other"})
	jobs := h.claim("q", 2)
	h.settleOK(verdict(jobs[0], store.DeadLetter))
	if got, want := count(), (store.QueueDepth{Available: 1, Running: 1, Delayed: 2, Dead: 1}); got != want {
		t.Fatalf("CountQueueJobs = %+v, want %+v", got, want)
	}
	h.claim("other", 1)
	if n, err := h.sqs().CountRunning(h.ctx, "q"); err != nil || n != 1 {
		t.Fatalf("CountRunning = %d, %v; want 1", n, err)
	}
	// A scheduled job whose run_at has come counts as available before any
	// claim promotes it.
	h.clock.Advance(2 * time.Minute)
	if got, want := count(), (store.QueueDepth{Available: 2, Running: 1, Delayed: 1, Dead: 1}); got != want {
		t.Fatalf("CountQueueJobs after a delay passed = %+v, want %+v", got, want)
	}
}

func testSQSCompleteUnclaimed(t *testing.T, h *harness) {
	complete := func(ds ...store.Delivery) []error {
		t.Helper()
		errs, err := h.sqs().CompleteUnclaimed(h.ctx, ds)
		if err != nil || len(errs) != len(ds) {
			t.Fatalf("CompleteUnclaimed(%v) = %v, %v", ds, errs, err)
		}
		return errs
	}
	// A lock that expired and was reaped: the delivery may still complete.
	expired := h.add(store.EnqueueParams{Queue: "q"})
	j := h.claimFor("q", 1, time.Second)[0]
	h.clock.Advance(2 * time.Second)
	h.reap(10)
	h.wantState(expired, store.StateAvailable)
	// A snoozed delivery too.
	snoozed := h.add(store.EnqueueParams{Queue: "s"})
	s := h.claimOne("s")
	h.settleOK(verdict(s, store.Snooze))
	// A job claimed again since: refused; a running one: refused.
	again := h.add(store.EnqueueParams{Queue: "a"})
	first := h.claimFor("a", 1, time.Second)[0]
	h.clock.Advance(2 * time.Second)
	h.reap(10)
	h.claimID("a", again)
	running := h.add(store.EnqueueParams{Queue: "r"})
	r := h.claimOne("r")
	unknown := store.NewID()

	errs := complete(store.Delivery{ID: expired, Queue: "q", Deliveries: j.Deliveries}, store.Delivery{ID: snoozed, Queue: "s", Deliveries: s.Deliveries},
		store.Delivery{ID: again, Queue: "a", Deliveries: first.Deliveries}, store.Delivery{ID: running, Queue: "r", Deliveries: r.Deliveries},
		store.Delivery{ID: unknown, Queue: "q", Deliveries: 1}, store.Delivery{ID: expired, Queue: "other", Deliveries: j.Deliveries})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("CompleteUnclaimed of unclaimed deliveries = %v, %v; want nil", errs[0], errs[1])
	}
	if !errors.Is(errs[2], store.ErrLockLost) || !errors.Is(errs[3], store.ErrLockLost) {
		t.Fatalf("CompleteUnclaimed of a job claimed since, and of a running one = %v, %v; want ErrLockLost", errs[2], errs[3])
	}
	if !errors.Is(errs[4], store.ErrNotFound) || !errors.Is(errs[5], store.ErrNotFound) {
		t.Fatalf("CompleteUnclaimed of an unknown job, and of a job of another queue = %v, %v; want ErrNotFound", errs[4], errs[5])
	}
	h.wantState(expired, store.StateCompleted)
	h.wantState(snoozed, store.StateCompleted)
	h.wantState(again, store.StateRunning)
	h.wantState(running, store.StateRunning)
	h.claimNone("q")

	// Again, as a retry: nil, and nothing changes. A completed job whose
	// deliveries differ was completed by another delivery: refused.
	finishedAt := h.get(expired).FinishedAt
	h.clock.Advance(time.Second)
	errs = complete(store.Delivery{ID: expired, Queue: "q", Deliveries: j.Deliveries}, store.Delivery{ID: expired, Queue: "q", Deliveries: j.Deliveries + 1})
	if errs[0] != nil || !errors.Is(errs[1], store.ErrLockLost) {
		t.Fatalf("CompleteUnclaimed retried = %v; want nil, then ErrLockLost for other deliveries", errs)
	}
	if got := h.get(expired).FinishedAt; !got.Equal(finishedAt) {
		t.Fatalf("a retried CompleteUnclaimed moved finished_at from %v to %v", finishedAt, got)
	}
}

func testSQSRedrive(t *testing.T, h *harness) {
	// Three dead jobs in "src", oldest first, with unique and ordering
	// keys; one live job that stays.
	ids := h.addN(3, func(i int) store.EnqueueParams {
		return store.EnqueueParams{Queue: "src", Tenant: "acme", UniqueKey: "u" + string(rune('a'+i)), OrderingKey: "src/g", MaxAttempts: 1,
			Metadata: map[string]string{"m": "v"}}
	})
	for range ids {
		j := h.claimOne("src")
		v := verdict(j, store.DeadLetter)
		v.Error = &store.AttemptError{Message: "boom"}
		h.settleOK(v)
	}
	live := h.add(store.EnqueueParams{Queue: "src", Tenant: "acme", OrderingKey: "other/g"})
	h.clock.Advance(time.Minute)

	redrive := func(p store.RedriveParams) int {
		t.Helper()
		n, err := h.sqs().RedriveDead(h.ctx, p)
		if err != nil {
			t.Fatalf("RedriveDead(%+v): %v", p, err)
		}
		return n
	}
	p := store.RedriveParams{From: "src", To: "dlq", Limit: 2, MaxDeliveries: 7, FromKeyPrefix: "src/", ToKeyPrefix: "dlq/"}
	if n := redrive(p); n != 2 {
		t.Fatalf("RedriveDead with limit 2 moved %d", n)
	}
	for _, id := range ids[:2] {
		j := h.wantState(id, store.StateAvailable)
		switch {
		case j.Queue != "dlq" || j.Deliveries != 0 || j.Attempts != 0 || j.MaxDeliveries != 7:
			t.Fatalf("moved job: queue %s deliveries %d attempts %d max deliveries %d", j.Queue, j.Deliveries, j.Attempts, j.MaxDeliveries)
		case j.UniqueKey != "" || j.OrderingKey != "dlq/g" || j.DeadReason != "" || !j.FinishedAt.IsZero():
			t.Fatalf("moved job: unique key %q ordering key %q dead reason %q finished %v", j.UniqueKey, j.OrderingKey, j.DeadReason, j.FinishedAt)
		case len(j.Errors) != 1 || j.Metadata["m"] != "v" || !j.CreatedAt.Equal(epoch) || !j.RunAt.Equal(h.now()):
			t.Fatalf("moved job: errors %v metadata %v created %v run at %v", j.Errors, j.Metadata, j.CreatedAt, j.RunAt)
		}
	}
	h.wantState(ids[2], store.StateDead)
	// The moved jobs gave their unique keys up.
	if r := h.enqueue(store.EnqueueParams{Queue: "src", Tenant: "acme", UniqueKey: "ua"})[0]; r.Duplicate {
		t.Fatalf("a moved job still holds its unique key: %+v", r)
	}
	// The rest, without rewriting keys; a second call finds none.
	if n := redrive(store.RedriveParams{From: "src", To: "dlq"}); n != 1 {
		t.Fatalf("RedriveDead of the rest moved %d, want 1", n)
	}
	if j := h.wantState(ids[2], store.StateAvailable); j.OrderingKey != "src/g" || j.MaxDeliveries != store.DefaultMaxDeliveries {
		t.Fatalf("moved without rewriting: ordering key %q max deliveries %d", j.OrderingKey, j.MaxDeliveries)
	}
	if n := redrive(store.RedriveParams{From: "src", To: "dlq"}); n != 0 {
		t.Fatalf("RedriveDead of a queue without dead jobs moved %d", n)
	}
	h.wantState(live, store.StateAvailable)
	// The dead-letter queue hands them out in order: its own line, first.
	h.claimID("dlq", ids[0])
}

func testSQSClosed(t *testing.T, h *harness) {
	qs := h.sqs()
	h.createSQS(store.SQSQueue{Queue: "q"})
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := h.ctx
	for name, call := range map[string]func() error{
		"CreateSQSQueue": func() error { _, _, err := qs.CreateSQSQueue(ctx, store.SQSQueue{Queue: "new"}); return err },
		"GetSQSQueue":    func() error { _, err := qs.GetSQSQueue(ctx, "q"); return err },
		"ListSQSQueues":  func() error { _, err := qs.ListSQSQueues(ctx, store.SQSQueueListParams{}); return err },
		"UpdateSQSQueue": func() error { _, err := qs.UpdateSQSQueue(ctx, "q", store.SQSQueueUpdate{Delete: true}); return err },
		"RemoveSQSQueue": func() error { return qs.RemoveSQSQueue(ctx, "q") },
		"DeleteQueueJobs": func() error {
			_, err := qs.DeleteQueueJobs(ctx, store.DeleteQueueJobsParams{Queue: "q"})
			return err
		},
		"CountQueueJobs": func() error { _, err := qs.CountQueueJobs(ctx, "q"); return err },
		"CountRunning":   func() error { _, err := qs.CountRunning(ctx, "q"); return err },
		"CompleteUnclaimed": func() error {
			_, err := qs.CompleteUnclaimed(ctx, []store.Delivery{{ID: store.NewID(), Queue: "q", Deliveries: 1}})
			return err
		},
		"RedriveDead": func() error { _, err := qs.RedriveDead(ctx, store.RedriveParams{From: "q", To: "d"}); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
