package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// activityTests check a store's store.ActivityStore; they run when the
// backend declares Features.Activity. auditTests check its
// store.AuditStore (Features.Audit).
var (
	activityTests = []test{
		{"AddSums", testActivityAddSums},
		{"Minutes", testActivityMinutes},
		{"Tenant", testActivityTenant},
		{"Retention", testActivityRetention},
		{"Invalid", testActivityInvalid},
	}
	auditTests = []test{
		{"RecordAndPage", testAuditPage},
		{"Tenant", testAuditTenant},
		{"Invalid", testAuditInvalid},
	}
)

func (h *harness) activityStore() store.ActivityStore {
	h.t.Helper()
	as := h.s.Capabilities().Activity
	if as == nil {
		h.t.Fatal("the backend declares Features.Activity, but Capabilities().Activity is nil")
	}
	return as
}

// addActivity adds counts and fails the test on an error.
func (h *harness) addActivity(counts ...store.QueueActivity) {
	h.t.Helper()
	if err := h.activityStore().AddActivity(h.ctx, counts); err != nil {
		h.t.Fatalf("AddActivity: %v", err)
	}
}

// activity reads the activity of tenant since since and fails the test on
// an error, as "minute queue completed/failed/dead pickup" lines.
func (h *harness) activity(tenant string, since time.Time) []string {
	h.t.Helper()
	rows, err := h.activityStore().Activity(h.ctx, tenant, since)
	if err != nil {
		h.t.Fatalf("Activity(%q, %v): %v", tenant, since, err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s %s %d/%d/%d %v", r.Minute.Format("15:04"), r.Queue, r.Completed, r.Failed, r.Dead, r.Pickup)
		if r.Minute.Location() != time.UTC || r.Minute.Second() != 0 || r.Minute.Nanosecond() != 0 {
			h.t.Errorf("row minute %v is not a whole UTC minute", r.Minute)
		}
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// pickups returns a histogram with n[i] in bucket i.
func pickups(n ...int64) [store.NumPickupBuckets]int64 {
	var p [store.NumPickupBuckets]int64
	copy(p[:], n)
	return p
}

func testActivityAddSums(t *testing.T, h *harness) {
	h.clock.Set(epoch.Truncate(time.Minute).Add(10 * time.Second)) // 05:06:10
	h.addActivity(store.QueueActivity{Queue: "mail", Completed: 3, Failed: 1, Pickup: pickups(2, 1)},
		store.QueueActivity{Queue: "jobs", Dead: 1},
		store.QueueActivity{Queue: "mail", Completed: 1, Pickup: pickups(0, 0, 1)}, // the same queue twice in a call
		store.QueueActivity{Queue: "idle"})                                         // nothing to add
	h.clock.Advance(40 * time.Second) // 05:06:50: the same minute
	h.addActivity(store.QueueActivity{Queue: "mail", Completed: 10, Dead: 2, Pickup: pickups(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4)})
	wantLines(t, "one minute", h.activity(store.AllTenants, epoch.Add(-time.Hour)),
		"05:06 jobs 0/0/1 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:06 mail 14/1/2 [3 1 1 0 0 0 0 0 0 0 0 0 0 0 0 4]")
	h.addActivity() // nothing at all
}

func testActivityMinutes(t *testing.T, h *harness) {
	start := epoch.Truncate(time.Minute) // 05:06
	for i, q := range []string{"b", "a", "b"} {
		h.clock.Set(start.Add(time.Duration(i) * time.Minute).Add(59 * time.Second))
		h.addActivity(store.QueueActivity{Queue: q, Completed: int64(i + 1)}, store.QueueActivity{Queue: "c", Failed: 1})
	}
	all := []string{
		"05:06 b 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:06 c 0/1/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:07 a 2/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:07 c 0/1/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:08 b 3/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:08 c 0/1/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
	}
	wantLines(t, "every minute", h.activity(store.AllTenants, start), all...)
	wantLines(t, "since within a minute: that whole minute", h.activity(store.AllTenants, start.Add(90*time.Second)), all[2:]...)
	wantLines(t, "since in another zone", h.activity(store.AllTenants, start.Add(2*time.Minute).In(time.FixedZone("x", 5*3600))), all[4:]...)
	wantLines(t, "since after them", h.activity(store.AllTenants, start.Add(3*time.Minute)))
}

func testActivityTenant(t *testing.T, h *harness) {
	h.clock.Set(epoch.Truncate(time.Minute))
	var in []store.QueueActivity
	for i, q := range []string{"t1/mail", "sub/t1/orders/billing", "t10/mail", "t1", "mail", "sub/t10/x", "x/t1/y", "/mail"} {
		in = append(in, store.QueueActivity{Queue: q, Completed: int64(i + 1)})
	}
	h.addActivity(in...)
	wantLines(t, "tenant t1", h.activity("t1", epoch.Add(-time.Hour)),
		"05:06 sub/t1/orders/billing 2/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:06 t1/mail 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
	wantLines(t, "tenant t10", h.activity("t10", epoch.Add(-time.Hour)),
		"05:06 sub/t10/x 6/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:06 t10/mail 3/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
	wantLines(t, "the empty tenant", h.activity("", epoch.Add(-time.Hour)),
		"05:06 /mail 8/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
	if n := len(h.activity(store.AllTenants, epoch.Add(-time.Hour))); n != len(in) {
		t.Errorf("every tenant: %d rows, want %d", n, len(in))
	}
	for _, bad := range []string{"t%", "a b", strings.Repeat("t", store.MaxNameLen+1)} {
		if _, err := h.activityStore().Activity(h.ctx, bad, epoch); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Activity(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func testActivityRetention(t *testing.T, h *harness) {
	start := epoch.Truncate(time.Minute)
	h.clock.Set(start)
	h.addActivity(store.QueueActivity{Queue: "old", Completed: 1})
	h.clock.Set(start.Add(store.ActivityRetention - time.Minute))
	h.addActivity(store.QueueActivity{Queue: "kept", Completed: 1})
	// A day on, the first minute is past retention: it is not read, and
	// the next add (past the store's "now and then") deletes it.
	h.clock.Set(start.Add(store.ActivityRetention + 15*time.Minute))
	wantLines(t, "after a day", h.activity(store.AllTenants, start),
		"05:05 kept 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
	h.addActivity(store.QueueActivity{Queue: "new", Completed: 1})
	wantLines(t, "after a day and an add", h.activity(store.AllTenants, start),
		"05:05 kept 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:21 new 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
	// Adding to the minute of "old" again (a clock moved back) shows the
	// old row was deleted, not hidden: it starts from zero.
	h.clock.Set(start)
	h.addActivity(store.QueueActivity{Queue: "old", Completed: 5})
	wantLines(t, "the old minute again", h.activity(store.AllTenants, start),
		"05:06 old 5/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:05 kept 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]",
		"05:21 new 1/0/0 [0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]")
}

func testActivityInvalid(t *testing.T, h *harness) {
	h.clock.Set(epoch.Truncate(time.Minute))
	for _, counts := range [][]store.QueueActivity{
		{{Queue: "ok", Completed: 1}, {Queue: "", Completed: 1}},
		{{Queue: "ok", Completed: 1}, {Queue: "bad queue", Completed: 1}},
		{{Queue: "ok", Completed: 1}, {Queue: "neg", Failed: -1}},
		{{Queue: "ok", Completed: 1}, {Queue: "neg", Pickup: pickups(0, -2)}},
	} {
		if err := h.activityStore().AddActivity(h.ctx, counts); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddActivity(%+v) = %v, want ErrInvalid", counts, err)
		}
	}
	big := make([]store.QueueActivity, store.MaxBatch+1)
	for i := range big {
		big[i] = store.QueueActivity{Queue: "q", Completed: 1}
	}
	if err := h.activityStore().AddActivity(h.ctx, big); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("AddActivity of %d = %v, want ErrTooLarge", len(big), err)
	}
	wantLines(t, "after refused adds", h.activity(store.AllTenants, epoch.Add(-time.Hour)))
}

func (h *harness) auditStore() store.AuditStore {
	h.t.Helper()
	as := h.s.Capabilities().Audit
	if as == nil {
		h.t.Fatal("the backend declares Features.Audit, but Capabilities().Audit is nil")
	}
	return as
}

// record records an audit entry and fails the test on an error.
func (h *harness) record(e store.AuditEntry) *store.AuditEntry {
	h.t.Helper()
	got, err := h.auditStore().RecordAudit(h.ctx, e)
	if err != nil {
		h.t.Fatalf("RecordAudit(%+v): %v", e, err)
	}
	return got
}

// auditPage lists audit entries and fails the test on an error.
func (h *harness) auditPage(p store.AuditListParams) []*store.AuditEntry {
	h.t.Helper()
	out, err := h.auditStore().ListAudit(h.ctx, p)
	if err != nil {
		h.t.Fatalf("ListAudit(%+v): %v", p, err)
	}
	return out
}

func auditIDs(es []*store.AuditEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testAuditPage(t *testing.T, h *harness) {
	var made []*store.AuditEntry
	for i := range 7 {
		h.clock.Advance(time.Second)
		e := h.record(store.AuditEntry{KeyID: "k1", Action: "jobs.bulk_cancel", Target: "queue=mail", Count: i, Detail: "ok"})
		if !e.At.Equal(h.now()) || (i > 0 && e.ID <= made[i-1].ID) || e.Action != "jobs.bulk_cancel" || e.Count != i {
			t.Errorf("entry %d = %+v: want At %v and an ID above the last", i, e, h.now())
		}
		made = append(made, e)
	}
	page := h.auditPage(store.AuditListParams{Tenant: store.AllTenants, Limit: 3})
	if want := []int64{made[6].ID, made[5].ID, made[4].ID}; fmt.Sprint(auditIDs(page)) != fmt.Sprint(want) {
		t.Fatalf("first page %v, want %v", auditIDs(page), want)
	}
	if got := page[0]; got.KeyID != "k1" || got.Target != "queue=mail" || got.Detail != "ok" || got.Count != 6 || !got.At.Equal(made[6].At) {
		t.Errorf("listed entry %+v, want %+v", got, made[6])
	}
	page = h.auditPage(store.AuditListParams{Tenant: store.AllTenants, Limit: 3, Before: page[2].ID})
	if want := []int64{made[3].ID, made[2].ID, made[1].ID}; fmt.Sprint(auditIDs(page)) != fmt.Sprint(want) {
		t.Errorf("second page %v, want %v", auditIDs(page), want)
	}
	page = h.auditPage(store.AuditListParams{Tenant: store.AllTenants, Before: made[1].ID})
	if want := []int64{made[0].ID}; fmt.Sprint(auditIDs(page)) != fmt.Sprint(want) {
		t.Errorf("last page %v, want %v", auditIDs(page), want)
	}
}

func testAuditTenant(t *testing.T, h *harness) {
	var want []int64
	for _, tenant := range []string{"t1", "t10", "", "t1", "T1"} {
		e := h.record(store.AuditEntry{Tenant: tenant, Action: "queue.pause", Target: "mail"})
		if tenant == "t1" {
			want = append([]int64{e.ID}, want...)
		}
	}
	if got := auditIDs(h.auditPage(store.AuditListParams{Tenant: "t1"})); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tenant t1: %v, want %v", got, want)
	}
	if got := h.auditPage(store.AuditListParams{Tenant: ""}); len(got) != 1 || got[0].Tenant != "" {
		t.Errorf("the empty tenant: %+v, want its one entry", got)
	}
	if got := h.auditPage(store.AuditListParams{Tenant: store.AllTenants}); len(got) != 5 {
		t.Errorf("every tenant: %d entries, want 5", len(got))
	}
}

func testAuditInvalid(t *testing.T, h *harness) {
	for _, e := range []store.AuditEntry{
		{},
		{Action: "jobs cancel"},
		{Action: "a", Tenant: "*"},
		{Action: "a", Count: -1},
		{Action: "a", Target: strings.Repeat("x", store.MaxAuditText+1)},
		{Action: "a", Detail: "a\x00b"},
	} {
		if _, err := h.auditStore().RecordAudit(h.ctx, e); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("RecordAudit(%.60v) = %v, want ErrInvalid", e, err)
		}
	}
	if got := h.auditPage(store.AuditListParams{Tenant: store.AllTenants}); len(got) != 0 {
		t.Errorf("%d entries recorded by refused calls", len(got))
	}
	long := h.record(store.AuditEntry{Action: "a", Detail: strings.Repeat("é", store.MaxAuditText)})
	if len(long.Detail) > store.MaxAuditText || !strings.HasPrefix(strings.Repeat("é", store.MaxAuditText), long.Detail) {
		t.Errorf("a long detail kept %d bytes, want it cut to at most %d on a character boundary", len(long.Detail), store.MaxAuditText)
	}
	if got := h.auditPage(store.AuditListParams{Tenant: store.AllTenants}); len(got) != 1 || got[0].Detail != long.Detail {
		t.Errorf("stored detail differs from the one answered")
	}
	for _, p := range []store.AuditListParams{{Limit: -1}, {Limit: store.MaxListLimit + 1}, {Before: -1}, {Tenant: "a b"}} {
		if _, err := h.auditStore().ListAudit(h.ctx, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListAudit(%+v) = %v, want ErrInvalid", p, err)
		}
	}
}
