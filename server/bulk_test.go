package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
)

// Count and bulk act on every job the filter selects in the key's tenant,
// and nothing else; a bad action or filter changes nothing.
func TestBulkAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	g := h.seedGlobex()
	h.enqueue(6, "mail", "newsletter", "")
	h.enqueue(1, "mail", "receipt", `, "unique_key": "r"`)
	h.enqueue(1, "mail", "receipt", "")
	var n struct {
		Count  int
		Capped bool
	}
	h.must(200, "acme/reader", "GET", "/v1/jobs/count?queue=mail&kind=newsletter", "", &n)
	if n.Count != 6 || n.Capped {
		t.Errorf("count %+v, want 6", n)
	}
	h.must(200, "acme/reader", "GET", "/v1/jobs/count?queue=mail&limit=3", "", &n)
	if n.Count != 3 || !n.Capped {
		t.Errorf("capped count %+v, want 3 capped", n)
	}
	h.must(200, "acme/reader", "GET", "/v1/jobs/count?unique_key=r", "", &n)
	if n.Count != 1 {
		t.Errorf("count by unique key %+v, want 1", n)
	}
	before := h.snapshot("")
	for _, body := range []string{
		`{"action": "explode", "filter": {}}`,
		`{"action": "cancel"}`,
		`{"action": "cancel", "filter": {"state": "sleeping"}}`,
		`{"action": "cancel", "filter": {"created_after": "yesterday"}}`,
		`{"action": "cancel", "filter": {"tenant": "globex"}}`,
	} {
		status, b := h.do("acme/admin", "POST", "/v1/jobs/bulk", body)
		if status != 400 && status != 403 {
			t.Errorf("%s: %d %s, want 400 or 403", body, status, b)
		}
		if strings.Contains(string(b), "SELECT") || strings.Contains(string(b), "goroutine") {
			t.Errorf("%s: the answer shows internals: %s", body, b)
		}
	}
	h.must(403, "acme/reader", "POST", "/v1/jobs/bulk", `{"action": "cancel", "filter": {}}`, nil)
	if h.snapshot("") != before {
		t.Fatal("a refused bulk action changed the store")
	}
	var res struct {
		Action  string
		Changed int
	}
	h.must(200, "acme/admin", "POST", "/v1/jobs/bulk", `{"action": "cancel", "filter": {"kind": "newsletter"}}`, &res)
	if res.Changed != 6 {
		t.Errorf("bulk cancel changed %d, want 6", res.Changed)
	}
	// Every acme job, and none of globex's.
	globexBefore := h.snapshot("acme")
	h.must(200, "acme/admin", "POST", "/v1/jobs/bulk", `{"action": "cancel", "filter": {}}`, &res)
	if res.Changed != 2 {
		t.Errorf("bulk cancel of the rest changed %d, want 2", res.Changed)
	}
	if h.snapshot("acme") != globexBefore {
		t.Error("acme's bulk cancel of {} touched globex")
	}
	var j jobView
	h.must(200, "globex/reader", "GET", "/v1/jobs/"+g.waiting.ID, "", &j)
	if j.State != "available" {
		t.Errorf("globex's job is %s", j.State)
	}
	// The audit log has it, in acme's tenant only.
	var audit struct {
		Entries []store.AuditEntry
	}
	h.must(200, "acme/reader", "GET", "/v1/audit", "", &audit)
	if len(audit.Entries) < 2 || audit.Entries[0].Action != "jobs.bulk_cancel" || audit.Entries[0].Count != 2 || audit.Entries[1].Target != "kind=newsletter" {
		t.Errorf("acme's audit log: %+v", audit.Entries)
	}
	h.must(200, "globex/reader", "GET", "/v1/audit", "", &audit)
	for _, e := range audit.Entries {
		if e.Tenant != "globex" {
			t.Errorf("globex sees %+v", e)
		}
	}
}

// A tenant's admin manages its own tenant's keys only; a key it revokes
// stops working.
func TestKeysAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{KeyCacheFor: time.Nanosecond})
	var made struct {
		Key struct {
			ID, Tenant, Role string
		}
		Token string
	}
	h.must(201, "acme/admin", "POST", "/v1/keys", `{"role": "reader", "name": "ops", "expires": "90d"}`, &made)
	if made.Key.Tenant != "acme" || made.Key.Role != "reader" || !strings.HasPrefix(made.Token, "spool_"+made.Key.ID+"_") {
		t.Fatalf("made %+v", made)
	}
	h.must(200, made.Token, "GET", "/v1/stats", "", nil)
	h.must(403, "acme/admin", "POST", "/v1/keys", `{"tenant": "*", "role": "admin"}`, nil)
	h.must(403, "acme/admin", "POST", "/v1/keys", `{"tenant": "globex", "role": "admin"}`, nil)
	h.must(403, "acme/worker:mail", "GET", "/v1/keys", "", nil)
	h.must(400, "acme/admin", "POST", "/v1/keys", `{"role": "king"}`, nil)
	h.must(400, "acme/admin", "POST", "/v1/keys", `{"role": "reader", "expires": "-1d"}`, nil)
	var list struct{ Keys []struct{ ID, Tenant string } }
	h.must(200, "acme/admin", "GET", "/v1/keys", "", &list)
	for _, k := range list.Keys {
		if k.Tenant != "acme" {
			t.Errorf("acme lists %+v", k)
		}
	}
	globexKeys, err := h.st.Capabilities().Keys.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range globexKeys {
		if k.Tenant == "globex" {
			h.must(404, "acme/admin", "POST", "/v1/keys/"+k.ID+"/revoke", "", nil)
		}
	}
	h.must(200, "acme/admin", "POST", fmt.Sprintf("/v1/keys/%s/revoke", made.Key.ID), "", nil)
	h.must(401, made.Token, "GET", "/v1/stats", "", nil)
	var audit struct{ Entries []store.AuditEntry }
	h.must(200, "acme/admin", "GET", "/v1/audit?limit=2", "", &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != "key.revoke" || audit.Entries[0].Target != made.Key.ID {
		t.Errorf("audit %+v", audit.Entries)
	}
}

// The activity of a tenant's queues, named as the tenant knows them.
func TestActivityAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	ds, ok := h.st.(*dashStore)
	if !ok {
		t.Skip("the store keeps its own activity")
	}
	ds.addActivityAt(time.Now(), []store.QueueActivity{{Queue: "acme/mail", Completed: 7}, {Queue: "globex/mail", Completed: 9}})
	var a struct {
		Bounds  []float64 `json:"pickup_bounds_ms"`
		Minutes []struct {
			Queue     string
			Completed int
		}
	}
	h.must(200, "acme/reader", "GET", "/v1/activity?since=10m", "", &a)
	if len(a.Minutes) != 1 || a.Minutes[0].Queue != "mail" || a.Minutes[0].Completed != 7 || len(a.Bounds) != store.NumPickupBuckets-1 {
		t.Errorf("acme's activity %+v", a)
	}
	h.must(400, "acme/reader", "GET", "/v1/activity?since=soon", "", nil)
	// The queue's page and the overview chart acme's minutes, not globex's.
	b := h.login("acme/reader")
	if body := b.get("/jobs?queue=mail"); !strings.Contains(body, "<b>7</b> completed") {
		t.Errorf("the queue's page lacks its hour: %.1500s", body)
	}
	if body := b.get("/"); !strings.Contains(body, "<b>7</b> completed") || !strings.Contains(body, `<svg class="chart"`) {
		t.Errorf("the overview lacks acme's hour: %.3000s", body)
	}
}
