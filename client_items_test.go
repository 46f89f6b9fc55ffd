package spool_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// shortStore answers Cancel with one result too few, as a broken or remote
// store might.
type shortStore struct{ store.Store }

func (s shortStore) Cancel(ctx context.Context, ids []store.ID) ([]error, error) {
	res, err := s.Store.Cancel(ctx, ids)
	if err != nil || len(res) == 0 {
		return res, err
	}
	return res[:len(res)-1], nil
}

func TestCancelEachAndRequeueEach(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()
	enqueue := func() spool.ID {
		t.Helper()
		res, err := sendEmail.Enqueue(ctx, c, email{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	a, b := enqueue(), enqueue()
	unknown := store.NewID()

	// One answer per ID, in order: the reasons themselves, not a join.
	errs, err := c.CancelEach(ctx, a, unknown, b, a)
	if err != nil || len(errs) != 4 {
		t.Fatalf("CancelEach = %v, %v; want 4 answers", errs, err)
	}
	var se *store.StateError
	if errs[0] != nil || !errors.Is(errs[1], spool.ErrNotFound) || errs[2] != nil ||
		!errors.As(errs[3], &se) || se.ID != a || se.State != spool.StateCancelled {
		t.Fatalf("CancelEach answers = %v; want nil, not found, nil, a already cancelled", errs)
	}
	var je *spool.JobError
	if errors.As(errs[1], &je) {
		t.Errorf("per-item answer %v is wrapped in a JobError; the index names the job", errs[1])
	}

	errs, err = c.RequeueEach(ctx, a, unknown)
	if err != nil || len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], spool.ErrNotFound) {
		t.Fatalf("RequeueEach = %v, %v", errs, err)
	}
	if s := mustGet(t, c, a).State; s != spool.StateAvailable {
		t.Fatalf("a is %s after RequeueEach, want available", s)
	}
	if errs, err := c.RequeueEach(ctx, a); err != nil || !errors.Is(errs[0], spool.ErrWrongState) {
		t.Fatalf("RequeueEach of a live job = %v, %v", errs, err)
	}

	// No IDs: no answers, no error.
	if errs, err := c.CancelEach(ctx); err != nil || errs == nil || len(errs) != 0 {
		t.Fatalf("CancelEach() = %#v, %v; want an empty slice", errs, err)
	}
	// A whole-call refusal changes nothing and gives no answers.
	many := make([]spool.ID, store.MaxBatch+1)
	for i := range many {
		many[i] = store.NewID()
	}
	many[0] = b
	if errs, err := c.CancelEach(ctx, many...); !errors.Is(err, spool.ErrInvalid) || errs != nil {
		t.Fatalf("CancelEach of %d IDs = %d answers, %v; want a whole-call ErrInvalid", len(many), len(errs), err)
	}
	// A store that gives too few answers is an error, never a short slice.
	short := newClient(t, shortStore{st})
	if errs, err := short.CancelEach(ctx, b); err == nil || errs != nil {
		t.Fatalf("CancelEach on a store that answers short = %v, %v; want an error", errs, err)
	}
}

func TestSchedulesEach(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := t.Context()
	x := c.Schedules()
	sc, err := x.Upsert(ctx, spool.Schedule{ID: "a", Tenant: "acme", Spec: "@daily", Kind: "k"})
	if err != nil {
		t.Fatal(err)
	}
	missing := spool.ScheduleRef{Tenant: "acme", ID: "nope"}

	for name, op := range map[string]func(context.Context, ...spool.ScheduleRef) ([]error, error){
		"PauseEach": x.PauseEach, "ResumeEach": x.ResumeEach,
	} {
		errs, err := op(ctx, missing, sc.Ref())
		var nf *store.NotFoundError
		if err != nil || len(errs) != 2 || !errors.As(errs[0], &nf) || nf.Resource != "schedule" || errs[1] != nil {
			t.Fatalf("%s = %v, %v; want not found, nil", name, errs, err)
		}
		got, err := x.Get(ctx, sc.Ref())
		if err != nil || got.Paused != (name == "PauseEach") {
			t.Fatalf("after %s: %+v, %v", name, got, err)
		}
	}
	errs, err := x.DeleteEach(ctx, sc.Ref(), sc.Ref())
	if err != nil || len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], spool.ErrNotFound) {
		t.Fatalf("DeleteEach of one schedule twice = %v, %v", errs, err)
	}
	if errs, err := x.PauseEach(ctx); err != nil || len(errs) != 0 {
		t.Fatalf("PauseEach() = %v, %v", errs, err)
	}

	// A store without schedules refuses the whole call.
	plain := newClient(t, plainStore{st}).Schedules()
	if errs, err := plain.DeleteEach(ctx, sc.Ref()); !errors.Is(err, spool.ErrSchedulesUnsupported) || errs != nil {
		t.Fatalf("DeleteEach without schedules = %v, %v", errs, err)
	}
}
