package spool_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

type email struct {
	To      string   `json:"to"`
	Subject string   `json:"subject"`
	Tags    []string `json:"tags,omitempty"`
}

var sendEmail = spool.NewKind[email]("email.send")

func TestNewClientRequiresStore(t *testing.T) {
	t.Parallel()
	c, err := spool.NewClient(spool.Config{})
	if c != nil || !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("NewClient(Config{}) = %v, %v; want nil and ErrInvalid", c, err)
	}
	var ve *store.ValidationError
	if !errors.As(err, &ve) || ve.Field != "Config.Store" {
		t.Fatalf("error %v does not name Config.Store", err)
	}
}

func TestSentinelsAreTheStores(t *testing.T) {
	t.Parallel()
	pairs := []struct{ ours, theirs error }{
		{spool.ErrNotFound, store.ErrNotFound},
		{spool.ErrLockLost, store.ErrLockLost},
		{spool.ErrInvalid, store.ErrInvalid},
		{spool.ErrTooLarge, store.ErrTooLarge},
		{spool.ErrWrongState, store.ErrWrongState},
		{spool.ErrDuplicate, store.ErrDuplicate},
		{spool.ErrClosed, store.ErrClosed},
	}
	for _, p := range pairs {
		if p.ours != p.theirs { //nolint:errorlint // identity is the point
			t.Errorf("%v is not the store's sentinel", p.ours)
		}
	}
	id := store.NewID()
	got, err := spool.ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%s) = %s, %v", id, got, err)
	}
	if _, err := spool.ParseID("nope"); !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("ParseID(nope) error = %v, want ErrInvalid", err)
	}
}

func TestKindRoundTrip(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	in := email{To: "ada@example.com", Subject: "hello", Tags: []string{"welcome"}}
	res, err := sendEmail.Enqueue(ctx, c, in, nil)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if res.ID.IsZero() || res.Duplicate || res.State != spool.StateAvailable {
		t.Fatalf("result = %+v; want a new available job", res)
	}

	job := mustGet(t, c, res.ID)
	if job.Kind != "email.send" || job.Kind != sendEmail.Name() {
		t.Errorf("kind = %q, want email.send", job.Kind)
	}
	// Defaults of nil options.
	if job.Queue != store.DefaultQueue || job.Priority != 0 || job.Tenant != "" ||
		job.MaxAttempts != store.DefaultMaxAttempts || job.MaxDeliveries != store.DefaultMaxDeliveries ||
		!job.RunAt.Equal(testNow) || job.State != spool.StateAvailable {
		t.Errorf("job with nil options = %+v; want defaults", job)
	}
	out, err := sendEmail.Decode(job)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if out.To != in.To || out.Subject != in.Subject || !slices.Equal(out.Tags, in.Tags) {
		t.Fatalf("Decode = %+v, want %+v", out, in)
	}

	// A claimed job decodes the same way, as a handler would see it.
	got, err := sendEmail.Decode(claim(t, st, store.DefaultQueue))
	if err != nil || got.To != in.To {
		t.Fatalf("Decode(claimed) = %+v, %v", got, err)
	}
}

func TestDecodeRefusesOtherKinds(t *testing.T) {
	t.Parallel()
	other := spool.NewKind[email]("email.other")
	if _, err := other.Decode(&spool.Job{Kind: "email.send", Payload: []byte(`{}`)}); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("Decode of another kind: %v, want ErrInvalid", err)
	}
	if _, err := other.Decode(nil); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("Decode(nil): %v, want ErrInvalid", err)
	}
	if _, err := other.Decode(&spool.Job{Kind: "email.other", Payload: []byte(`{"to":`)}); err == nil {
		t.Error("Decode of a broken payload succeeded")
	}
	v, err := other.Decode(&spool.Job{Kind: "email.other"})
	if err != nil || v.To != "" {
		t.Errorf("Decode of an empty payload = %+v, %v; want the zero value", v, err)
	}
}

func TestDecodeResult(t *testing.T) {
	t.Parallel()
	type receipt struct{ N int }
	r, err := spool.DecodeResult[receipt](&spool.Job{State: spool.StateCompleted, Result: []byte(`{"N":7}`)})
	if err != nil || r.N != 7 {
		t.Errorf("DecodeResult = %+v, %v; want N=7", r, err)
	}
	r, err = spool.DecodeResult[receipt](&spool.Job{State: spool.StateCompleted})
	if err != nil || r.N != 0 {
		t.Errorf("DecodeResult without a result = %+v, %v; want the zero value", r, err)
	}
	for _, s := range []spool.State{spool.StateAvailable, spool.StateRunning, spool.StateCancelled, spool.StateDead} {
		if _, err := spool.DecodeResult[receipt](&spool.Job{State: s, Result: []byte(`{}`)}); !errors.Is(err, spool.ErrWrongState) {
			t.Errorf("DecodeResult of a %s job: %v, want ErrWrongState", s, err)
		}
	}
	if _, err := spool.DecodeResult[receipt](nil); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("DecodeResult(nil): %v, want ErrInvalid", err)
	}
	if _, err := spool.DecodeResult[receipt](&spool.Job{State: spool.StateCompleted, Result: []byte(`[`)}); err == nil {
		t.Error("DecodeResult of a broken result succeeded")
	}
}

func TestEnqueueOptions(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	res, err := sendEmail.Enqueue(ctx, c, email{To: "x"}, &spool.EnqueueOptions{
		Queue:         "mail",
		Priority:      -5,
		Tenant:        "acme",
		UniqueKey:     "welcome:x",
		OrderingKey:   "user:x",
		MaxAttempts:   3,
		MaxDeliveries: 4,
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	job := mustGet(t, c, res.ID)
	want := spool.Job{Queue: "mail", Priority: -5, Tenant: "acme", UniqueKey: "welcome:x", OrderingKey: "user:x", MaxAttempts: 3, MaxDeliveries: 4}
	if job.Queue != want.Queue || job.Priority != want.Priority || job.Tenant != want.Tenant ||
		job.UniqueKey != want.UniqueKey || job.OrderingKey != want.OrderingKey ||
		job.MaxAttempts != want.MaxAttempts || job.MaxDeliveries != want.MaxDeliveries {
		t.Errorf("job = %+v\nwant fields of %+v", job, want)
	}

	t.Run("delay schedules the job", func(t *testing.T) {
		t.Parallel()
		res, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "delay", Delay: time.Hour})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		job := mustGet(t, c, res.ID)
		if res.State != spool.StateScheduled || job.State != spool.StateScheduled || !job.RunAt.Equal(testNow.Add(time.Hour)) {
			t.Fatalf("delayed job: result state %s, job state %s, run at %v; want scheduled at %v", res.State, job.State, job.RunAt, testNow.Add(time.Hour))
		}
	})
	t.Run("run at in the future schedules the job", func(t *testing.T) {
		t.Parallel()
		at := testNow.Add(24 * time.Hour)
		res, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "runat", RunAt: at})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if job := mustGet(t, c, res.ID); job.State != spool.StateScheduled || !job.RunAt.Equal(at) {
			t.Fatalf("job state %s run at %v; want scheduled at %v", job.State, job.RunAt, at)
		}
	})
	t.Run("run at in the past runs now", func(t *testing.T) {
		t.Parallel()
		res, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "past", RunAt: testNow.Add(-time.Hour)})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if job := mustGet(t, c, res.ID); job.State != spool.StateAvailable {
			t.Fatalf("job state %s; want available", job.State)
		}
	})
}

func TestUniqueKeyReturnsTheLiveJob(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	opts := &spool.EnqueueOptions{UniqueKey: "report:2030-01-02", Tenant: "acme"}
	first, err := sendEmail.Enqueue(ctx, c, email{To: "first"}, opts)
	if err != nil {
		t.Fatalf("first Enqueue: %v", err)
	}
	second, err := sendEmail.Enqueue(ctx, c, email{To: "second"}, opts)
	if err != nil {
		t.Fatalf("second Enqueue: %v", err)
	}
	if !second.Duplicate || second.ID != first.ID || second.State != spool.StateAvailable {
		t.Fatalf("second = %+v; want duplicate of %s", second, first.ID)
	}
	if got, _ := sendEmail.Decode(mustGet(t, c, first.ID)); got.To != "first" {
		t.Fatalf("the duplicate overwrote the payload: %+v", got)
	}
	// Keys are scoped by tenant.
	other, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{UniqueKey: opts.UniqueKey, Tenant: "globex"})
	if err != nil || other.Duplicate || other.ID == first.ID {
		t.Fatalf("same key, other tenant = %+v, %v; want a new job", other, err)
	}
	if n := countJobs(t, c); n != 2 {
		t.Fatalf("%d jobs stored, want 2", n)
	}
}

// UniqueFor: a finished job keeps its key for the window, so enqueueing it
// again returns the finished job, whose result GetByUniqueKey reads back.
func TestUniqueForResultByKey(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	opts := &spool.EnqueueOptions{Queue: "quotes", UniqueKey: "quote:a1", UniqueFor: 5 * time.Minute, Tenant: "acme"}
	first, err := sendEmail.Enqueue(ctx, c, email{To: "first"}, opts)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if j := mustGet(t, c, first.ID); !j.UniqueUntil.Equal(testNow.Add(5 * time.Minute)) {
		t.Fatalf("UniqueUntil = %v, want %v", j.UniqueUntil, testNow.Add(5*time.Minute))
	}
	settle(t, st, claim(t, st, "quotes"), store.Verdict{Outcome: store.Complete, Result: []byte(`{"price":42}`)})
	again, err := sendEmail.Enqueue(ctx, c, email{To: "again"}, opts)
	if err != nil || !again.Duplicate || again.ID != first.ID || again.State != spool.StateCompleted {
		t.Fatalf("Enqueue within the window = %+v, %v; want the completed job %s", again, err, first.ID)
	}
	job, err := c.GetByUniqueKey(ctx, "acme", "quote:a1")
	if err != nil || job.ID != first.ID {
		t.Fatalf("GetByUniqueKey = %v, %v", job, err)
	}
	if r, err := spool.DecodeResult[struct{ Price int }](job); err != nil || r.Price != 42 {
		t.Fatalf("DecodeResult = %+v, %v", r, err)
	}
	if _, err := c.GetByUniqueKey(ctx, "", "quote:a1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("GetByUniqueKey in another tenant = %v, want ErrNotFound", err)
	}
	if _, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{UniqueFor: time.Minute}); !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("UniqueFor without a key = %v, want ErrInvalid", err)
	}
}

func TestInvalidEnqueueChangesNothing(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	cases := []struct {
		name   string
		item   spool.Item
		fields []string // every field the error must name
		large  bool     // the error must match ErrTooLarge
	}{
		{"negative delay", sendEmail.Item(email{}, &spool.EnqueueOptions{Delay: -time.Second}), []string{"delay"}, false},
		{"delay and run at", sendEmail.Item(email{}, &spool.EnqueueOptions{Delay: time.Second, RunAt: testNow}), []string{"delay"}, false},
		{"priority", sendEmail.Item(email{}, &spool.EnqueueOptions{Priority: store.MaxPriority + 1}), []string{"priority"}, false},
		{"queue name", sendEmail.Item(email{}, &spool.EnqueueOptions{Queue: "no spaces"}), []string{"queue"}, false},
		{"empty kind", spool.NewKind[email]("").Item(email{}, nil), []string{"kind"}, false},
		{"zero item", spool.Item{}, []string{"kind"}, false},
		{"kind name", spool.RawItem("bad kind!", nil, nil), []string{"kind"}, false},
		{"max attempts", sendEmail.Item(email{}, &spool.EnqueueOptions{MaxAttempts: -1}), []string{"max attempts"}, false},
		{"unencodable payload", spool.NewKind[func()]("fn").Item(func() {}, nil), []string{"payload"}, false},
		{"payload too large", spool.RawItem("big", make([]byte, store.MaxPayloadBytes+1), nil), nil, true},
		{"every mistake at once", sendEmail.Item(email{}, &spool.EnqueueOptions{Delay: -1, Priority: 1000, Queue: "?"}), []string{"delay", "priority", "queue"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := c.EnqueueMany(ctx, tc.item)
			if err == nil || res != nil {
				t.Fatalf("EnqueueMany = %v, %v; want an error", res, err)
			}
			if !errors.Is(err, spool.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			if tc.large && !errors.Is(err, spool.ErrTooLarge) {
				t.Fatalf("error %v does not match ErrTooLarge", err)
			}
			var ie *store.ItemError
			if !errors.As(err, &ie) || ie.Index != 0 {
				t.Fatalf("error %v does not name item 0", err)
			}
			for _, f := range tc.fields {
				if !hasField(err, f) {
					t.Errorf("error %v does not name field %q", err, f)
				}
			}
		})
	}
	t.Run("single enqueue reports the mistake itself", func(t *testing.T) {
		t.Parallel()
		_, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Delay: -time.Second})
		var ve *store.ValidationError
		if !errors.As(err, &ve) || ve.Field != "delay" || strings.Contains(err.Error(), "item 0") {
			t.Fatalf("Enqueue error = %v; want the delay's ValidationError", err)
		}
	})
	t.Cleanup(func() {
		if n := countJobs(t, c); n != 0 {
			t.Errorf("refused enqueues stored %d jobs", n)
		}
	})
}

// hasField reports whether err's tree holds a ValidationError or LimitError
// about field. Unlike errors.As it looks past the first match.
//
//nolint:errorlint // walks the tree by hand on purpose
func hasField(err error, field string) bool {
	if ve, ok := err.(*store.ValidationError); ok && ve.Field == field {
		return true
	}
	if le, ok := err.(*store.LimitError); ok && strings.HasPrefix(le.Field, field) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return hasField(u.Unwrap(), field)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if hasField(e, field) {
				return true
			}
		}
	}
	return false
}

func TestEnqueueManyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	_, err := c.EnqueueMany(ctx,
		sendEmail.Item(email{To: "ok"}, nil),
		sendEmail.Item(email{}, &spool.EnqueueOptions{Delay: -time.Second}), // refused by the client
		sendEmail.Item(email{To: "ok"}, nil),
		sendEmail.Item(email{}, &spool.EnqueueOptions{Priority: 500}), // refused by the store's rules
	)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("EnqueueMany with bad items: %v; want a joined error", err)
	}
	var bad []int
	for _, e := range joined.Unwrap() {
		var ie *store.ItemError
		if !errors.As(e, &ie) {
			t.Fatalf("joined error %v is not an ItemError", e)
		}
		bad = append(bad, ie.Index)
	}
	slices.Sort(bad)
	if !slices.Equal(bad, []int{1, 3}) {
		t.Fatalf("refused items %v, want [1 3] (error: %v)", bad, err)
	}
	if n := countJobs(t, c); n != 0 {
		t.Fatalf("a refused batch stored %d jobs", n)
	}

	// Store-side refusals alone are reported the same way.
	_, err = c.EnqueueMany(ctx, sendEmail.Item(email{}, nil), spool.RawItem("", nil, nil))
	var ie *store.ItemError
	if !errors.As(err, &ie) || ie.Index != 1 || !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("error %v does not name item 1 as invalid", err)
	}
	if n := countJobs(t, c); n != 0 {
		t.Fatalf("a refused batch stored %d jobs", n)
	}

	res, err := c.EnqueueMany(ctx,
		sendEmail.Item(email{To: "a"}, &spool.EnqueueOptions{UniqueKey: "k"}),
		spool.RawItem("raw.kind", []byte(`{"n":1}`), &spool.EnqueueOptions{Queue: "raw"}),
		sendEmail.Item(email{To: "b"}, &spool.EnqueueOptions{UniqueKey: "k"}),
	)
	if err != nil {
		t.Fatalf("EnqueueMany: %v", err)
	}
	if len(res) != 3 || res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[2].ID != res[0].ID || res[0].ID == res[1].ID {
		t.Fatalf("results = %+v; want two new jobs and a duplicate of the first", res)
	}
	if raw := mustGet(t, c, res[1].ID); raw.Kind != "raw.kind" || raw.Queue != "raw" || string(raw.Payload) != `{"n":1}` {
		t.Fatalf("raw job = %+v", raw)
	}

	if res, err := c.EnqueueMany(ctx); err != nil || len(res) != 0 {
		t.Fatalf("EnqueueMany() = %v, %v; want no results", res, err)
	}
}

func TestListAndStats(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	var ids []spool.ID
	for i := range 3 {
		res, err := sendEmail.Enqueue(ctx, c, email{To: strings.Repeat("x", i)}, &spool.EnqueueOptions{Queue: "mail"})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		ids = append(ids, res.ID)
	}
	page, err := c.List(ctx, spool.ListParams{Queue: "mail", Limit: 2})
	if err != nil || len(page.Jobs) != 2 || page.Next.IsZero() {
		t.Fatalf("first page = %+v, %v; want 2 jobs and a cursor", page, err)
	}
	rest, err := c.List(ctx, spool.ListParams{Queue: "mail", Limit: 2, After: page.Next})
	if err != nil || len(rest.Jobs) != 1 {
		t.Fatalf("second page = %+v, %v; want 1 job", rest, err)
	}
	got := []spool.ID{page.Jobs[0].ID, page.Jobs[1].ID, rest.Jobs[0].ID}
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want enqueue order %v", got, ids)
	}
	if _, err := c.List(ctx, spool.ListParams{Limit: -1}); !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("List with a bad limit: %v, want ErrInvalid", err)
	}

	stats, err := c.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	i := slices.IndexFunc(stats, func(s spool.QueueStats) bool { return s.Queue == "mail" })
	if i < 0 || stats[i].Counts[spool.StateAvailable] != 3 {
		t.Fatalf("stats = %+v; want 3 available in mail", stats)
	}
}

func TestGetUnknownJob(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	if _, err := c.Get(context.Background(), store.NewID()); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("Get of an unknown ID: %v, want ErrNotFound", err)
	}
}

func TestCancelAndRequeue(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	enqueue := func(opts *spool.EnqueueOptions) spool.ID {
		t.Helper()
		res, err := sendEmail.Enqueue(ctx, c, email{}, opts)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		return res.ID
	}
	a, b := enqueue(nil), enqueue(nil)
	unknown := store.NewID()

	if err := c.Cancel(ctx, a); err != nil {
		t.Fatalf("Cancel(a): %v", err)
	}
	if s := mustGet(t, c, a).State; s != spool.StateCancelled {
		t.Fatalf("a is %s after Cancel, want cancelled", s)
	}

	// One call, three outcomes: b is cancelled, a and unknown are refused.
	err := c.Cancel(ctx, a, b, unknown)
	if s := mustGet(t, c, b).State; s != spool.StateCancelled {
		t.Fatalf("b is %s; the refusals stopped its cancellation", s)
	}
	if !errors.Is(err, spool.ErrWrongState) || !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("Cancel error %v; want ErrWrongState and ErrNotFound", err)
	}
	refused := jobErrors(t, err)
	if len(refused) != 2 || !errors.Is(refused[a], spool.ErrWrongState) || !errors.Is(refused[unknown], spool.ErrNotFound) {
		t.Fatalf("refused = %v; want a: wrong state, unknown: not found", refused)
	}
	if !strings.Contains(err.Error(), unknown.String()) || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("error %q does not name both jobs", err)
	}

	// Requeue brings cancelled jobs back; live jobs and unknown IDs are refused.
	if err := c.Requeue(ctx, a, b); err != nil {
		t.Fatalf("Requeue(a, b): %v", err)
	}
	if s := mustGet(t, c, a).State; s != spool.StateAvailable {
		t.Fatalf("a is %s after Requeue, want available", s)
	}
	err = c.Requeue(ctx, a, unknown)
	refused = jobErrors(t, err)
	if len(refused) != 2 || !errors.Is(refused[a], spool.ErrWrongState) || !errors.Is(refused[unknown], spool.ErrNotFound) {
		t.Fatalf("Requeue refused = %v; want a: wrong state, unknown: not found", refused)
	}

	// A cancelled job whose unique key a live job now holds cannot come back.
	keyed := enqueue(&spool.EnqueueOptions{UniqueKey: "once"})
	if err := c.Cancel(ctx, keyed); err != nil {
		t.Fatalf("Cancel(keyed): %v", err)
	}
	enqueue(&spool.EnqueueOptions{UniqueKey: "once"})
	if err := c.Requeue(ctx, keyed); !errors.Is(err, spool.ErrDuplicate) {
		t.Fatalf("Requeue of a job whose key is taken: %v, want ErrDuplicate", err)
	}

	if err := c.Cancel(ctx); err != nil {
		t.Fatalf("Cancel(): %v", err)
	}
	if err := c.Requeue(ctx); err != nil {
		t.Fatalf("Requeue(): %v", err)
	}
}

// jobErrors maps each job named by a joined error of JobErrors to its reason.
func jobErrors(t *testing.T, err error) map[spool.ID]error {
	t.Helper()
	out := map[spool.ID]error{}
	j, ok := err.(interface{ Unwrap() []error }) //nolint:errorlint // Cancel's answer is a join at the top
	if !ok {
		t.Fatalf("error %v is not a joined error", err)
	}
	for _, e := range j.Unwrap() {
		var je *spool.JobError
		if !errors.As(e, &je) {
			t.Fatalf("joined error %v is not a JobError", e)
		}
		out[je.ID] = je.Err
	}
	return out
}
