package storetest

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var readTests = []test{
	{"GetUnknown", testGetUnknown},
	{"ListFilters", testListFilters},
	{"ListStates", testListStates},
	{"ListPages", testListPages},
	{"ListLastFullPage", testListLastFullPage},
	{"ListDefaultLimit", testListDefaultLimit},
	{"ListFilteredPages", testListFilteredPages},
	{"ListInvalid", testListInvalid},
	{"ListKeys", testListKeys},
	{"ListCreatedRange", testListCreatedRange},
	{"ListNewest", testListNewest},
	{"ListNewestFilteredPages", testListNewestFilteredPages},
}

func testGetUnknown(t *testing.T, h *harness) {
	h.add(store.EnqueueParams{})
	_, err := h.s.Get(h.ctx, store.NewID())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of an unknown ID = %v, want ErrNotFound", err)
	}
	if c := store.Code(err); c != "not_found" {
		t.Errorf("Code = %q, want not_found", c)
	}
}

// wantIDs fails the test unless jobs are exactly want, in order.
func wantIDs(t *testing.T, what string, jobs []*store.Job, want []store.ID) {
	t.Helper()
	got := make([]store.ID, len(jobs))
	for i, j := range jobs {
		got[i] = j.ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d jobs %v, want %d jobs %v", what, len(got), got, len(want), want)
	}
}

func testListFilters(t *testing.T, h *harness) {
	ps := []store.EnqueueParams{
		{Queue: "q1", Kind: "a", Tenant: "t1"},
		{Queue: "q2", Kind: "a", Tenant: "t1"},
		{Queue: "q1", Kind: "b", Tenant: "t2"},
		{Queue: "q2", Kind: "b"},
		{Queue: "q1", Kind: "a"},
		{Queue: "q1", Kind: "a", Tenant: "t2"},
	}
	ids := h.addN(len(ps), func(i int) store.EnqueueParams { return ps[i] })
	pick := func(is ...int) []store.ID {
		var out []store.ID
		for _, i := range is {
			out = append(out, ids[i])
		}
		return out
	}
	cases := []struct {
		name string
		p    store.ListParams
		want []store.ID
	}{
		{"no filter", store.ListParams{}, ids},
		{"queue", store.ListParams{Queue: "q1"}, pick(0, 2, 4, 5)},
		{"kind", store.ListParams{Kind: "b"}, pick(2, 3)},
		{"tenant", store.ListParams{Tenant: "t1"}, pick(0, 1)},
		{"queue and kind", store.ListParams{Queue: "q1", Kind: "a"}, pick(0, 4, 5)},
		{"queue, kind and tenant", store.ListParams{Queue: "q1", Kind: "a", Tenant: "t2"}, pick(5)},
		{"no match", store.ListParams{Queue: "q3"}, nil},
	}
	for _, c := range cases {
		wantIDs(t, c.name, h.list(c.p), c.want)
	}
}

func testListStates(t *testing.T, h *harness) {
	byState := map[store.State]store.ID{
		store.StateCompleted: h.finish(store.EnqueueParams{}, store.StateCompleted),
		store.StateCancelled: h.finish(store.EnqueueParams{}, store.StateCancelled),
		store.StateDead:      h.finish(store.EnqueueParams{}, store.StateDead),
	}
	byState[store.StateRunning] = h.add(store.EnqueueParams{})
	h.claimID(store.DefaultQueue, byState[store.StateRunning])
	byState[store.StateAvailable] = h.add(store.EnqueueParams{})
	byState[store.StateScheduled] = h.add(store.EnqueueParams{RunAt: h.now().Add(time.Hour)})

	for _, st := range store.States {
		wantIDs(t, "state "+string(st), h.list(store.ListParams{States: []store.State{st}}), []store.ID{byState[st]})
	}
	got := h.list(store.ListParams{States: []store.State{store.StateDead, store.StateCompleted}})
	wantIDs(t, "dead or completed", got, []store.ID{byState[store.StateCompleted], byState[store.StateDead]})
	if n := len(h.list(store.ListParams{States: store.States})); n != 6 {
		t.Errorf("all states: %d jobs, want 6", n)
	}
}

func testListPages(t *testing.T, h *harness) {
	const n, limit = 250, 100
	ids := h.addN(n, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	var (
		got   []store.ID
		after store.ID
		sizes []int
	)
	for range 10 {
		page, err := h.s.List(h.ctx, store.ListParams{After: after, Limit: limit})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		sizes = append(sizes, len(page.Jobs))
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if page.Next.IsZero() {
			break
		}
		after = page.Next
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("page sizes %v, want [100 100 50] with Next zero on the last", sizes)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("pages listed %d jobs; want each of the %d exactly once, in ID order", len(got), n)
	}
}

func testListLastFullPage(t *testing.T, h *harness) {
	h.addN(200, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	first, err := h.s.List(h.ctx, store.ListParams{Limit: 100})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(first.Jobs) != 100 || first.Next.IsZero() {
		t.Fatalf("first page: %d jobs, Next %v; want 100 and a cursor", len(first.Jobs), first.Next)
	}
	second, err := h.s.List(h.ctx, store.ListParams{Limit: 100, After: first.Next})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(second.Jobs) != 100 || !second.Next.IsZero() {
		t.Errorf("last page: %d jobs, Next %v; want 100 and a zero Next (it is the last page)", len(second.Jobs), second.Next)
	}
}

func testListDefaultLimit(t *testing.T, h *harness) {
	h.addN(store.DefaultListLimit+20, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	page, err := h.s.List(h.ctx, store.ListParams{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Jobs) != store.DefaultListLimit || page.Next.IsZero() {
		t.Errorf("List without a limit: %d jobs, Next %v; want %d and a cursor", len(page.Jobs), page.Next, store.DefaultListLimit)
	}
}

func testListFilteredPages(t *testing.T, h *harness) {
	ids := h.addN(60, func(i int) store.EnqueueParams {
		return store.EnqueueParams{Queue: "q" + strconv.Itoa(i%2), Kind: "k" + strconv.Itoa(i%3)}
	})
	var want []store.ID
	for i, id := range ids {
		if i%2 == 1 && i%3 == 0 {
			want = append(want, id)
		}
	}
	wantIDs(t, "queue q1, kind k0, pages of 3", h.list(store.ListParams{Queue: "q1", Kind: "k0", Limit: 3}), want)
}

func testListInvalid(t *testing.T, h *harness) {
	h.add(store.EnqueueParams{})
	for _, p := range []store.ListParams{
		{Limit: -1},
		{Limit: store.MaxListLimit + 1},
		{States: []store.State{"bogus"}},
		{States: []store.State{store.StateDead, ""}},
		{CreatedAfter: h.now(), CreatedBefore: h.now().Add(-time.Nanosecond)},
		{UniqueKey: strings.Repeat("k", store.MaxKeyLen+1)},
		{OrderingKey: "a\x00b"},
	} {
		if _, err := h.s.List(h.ctx, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("List(%+v) = %v, want ErrInvalid", p, err)
		}
	}
}

func testListKeys(t *testing.T, h *harness) {
	ps := []store.EnqueueParams{
		{UniqueKey: "u1", OrderingKey: "o1"},
		{UniqueKey: "u2", OrderingKey: "o1"},
		{UniqueKey: "u1", Tenant: "t1", OrderingKey: "o2"},
		{OrderingKey: "o1", Queue: "q2"},
		{},
	}
	ids := h.addN(len(ps), func(i int) store.EnqueueParams { return ps[i] })
	pick := func(is ...int) []store.ID {
		var out []store.ID
		for _, i := range is {
			out = append(out, ids[i])
		}
		return out
	}
	for _, c := range []struct {
		name string
		p    store.ListParams
		want []store.ID
	}{
		{"unique key", store.ListParams{UniqueKey: "u1"}, pick(0, 2)},
		{"unique key and tenant", store.ListParams{UniqueKey: "u1", Tenant: "t1"}, pick(2)},
		{"ordering key", store.ListParams{OrderingKey: "o1"}, pick(0, 1, 3)},
		{"ordering key and queue", store.ListParams{OrderingKey: "o1", Queue: "q2"}, pick(3)},
		{"both keys", store.ListParams{UniqueKey: "u2", OrderingKey: "o1"}, pick(1)},
		{"unknown key", store.ListParams{UniqueKey: "o1"}, nil},
	} {
		wantIDs(t, c.name, h.list(c.p), c.want)
	}
}

func testListCreatedRange(t *testing.T, h *harness) {
	var ids []store.ID
	var at []time.Time
	for range 4 {
		at = append(at, h.now())
		ids = append(ids, h.add(store.EnqueueParams{}))
		h.clock.Advance(time.Second)
	}
	for _, c := range []struct {
		name string
		p    store.ListParams
		want []store.ID
	}{
		{"after, inclusive", store.ListParams{CreatedAfter: at[1]}, ids[1:]},
		{"before, exclusive", store.ListParams{CreatedBefore: at[2]}, ids[:2]},
		{"between", store.ListParams{CreatedAfter: at[1], CreatedBefore: at[3]}, ids[1:3]},
		{"after by a nanosecond", store.ListParams{CreatedAfter: at[1].Add(time.Nanosecond)}, ids[2:]},
		{"before by a nanosecond", store.ListParams{CreatedBefore: at[2].Add(time.Nanosecond)}, ids[:3]},
		{"empty range", store.ListParams{CreatedAfter: at[2], CreatedBefore: at[2]}, nil},
		{"in another zone", store.ListParams{CreatedAfter: at[3].In(time.FixedZone("x", -7*3600))}, ids[3:]},
		{"newest first, between", store.ListParams{CreatedAfter: at[1], CreatedBefore: at[3], Newest: true}, []store.ID{ids[2], ids[1]}},
	} {
		wantIDs(t, c.name, h.list(c.p), c.want)
	}
}

func testListNewest(t *testing.T, h *harness) {
	const n, limit = 250, 100
	ids := h.addN(n, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	slices.Reverse(ids)
	var (
		got   []store.ID
		sizes []int
		p     = store.ListParams{Newest: true, Limit: limit}
	)
	for range 10 {
		page, err := h.s.List(h.ctx, p)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		sizes = append(sizes, len(page.Jobs))
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if page.Next.IsZero() {
			break
		}
		p.After = page.Next
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("page sizes %v, want [100 100 50] with Next zero on the last", sizes)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("newest-first pages listed %d jobs; want each of the %d exactly once, newest first", len(got), n)
	}
	// The cursor means "older than": the page after a job starts below it.
	page, err := h.s.List(h.ctx, store.ListParams{Newest: true, After: ids[10], Limit: 3})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantIDs(t, "newest first after a cursor", page.Jobs, ids[11:14])
}

func testListNewestFilteredPages(t *testing.T, h *harness) {
	// The dashboard's list: one queue's jobs in some states, newest first,
	// a few at a time, among other queues and states.
	var want []store.ID
	for i := range 40 {
		q := "q" + strconv.Itoa(i%2)
		p := store.EnqueueParams{Queue: q}
		switch i % 8 {
		case 1, 5:
			p.Priority = -1 // claimed before the queue's older jobs
		case 7:
			p.RunAt = h.now().Add(time.Hour)
		}
		id := h.add(p)
		if i%4 == 1 {
			h.settleOK(verdict(h.claimID(q, id), store.Complete))
		}
		if i%2 == 1 && i%4 != 1 {
			want = append(want, id)
		}
	}
	slices.Reverse(want)
	got := h.list(store.ListParams{Queue: "q1", States: []store.State{store.StateAvailable, store.StateScheduled}, Newest: true, Limit: 3})
	wantIDs(t, "queue q1, available or scheduled, newest first, pages of 3", got, want)
}
