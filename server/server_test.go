package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// harness is a server over a fresh SQLite store with keys for two tenants
// (every role each), an operator's key, and a queue-limited key.
type harness struct {
	t     *testing.T
	clock *clock
	st    store.Store
	srv   *server.Server
	http  *httptest.Server
	keys  map[string]string // "acme/admin", "globex/worker", "*/admin", "acme/worker:mail" → token
}

// clock is the store's clock, moved by tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var roles = []string{store.RoleReader, store.RoleProducer, store.RoleWorker, store.RoleAdmin}

func newHarness(t *testing.T, cfg server.Config) *harness {
	t.Helper()
	clk := &clock{now: time.Now()}
	sq, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	h := &harness{t: t, clock: clk, st: withDashCaps(sq, clk.Now), keys: map[string]string{}}
	ctx := context.Background()
	add := func(tenant, role string, queues []string) {
		token, key, err := apikey.New(apikey.Params{Tenant: tenant, Role: role, Queues: queues}, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.st.Capabilities().Keys.CreateKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		name := tenant + "/" + role
		if queues != nil {
			name += ":" + strings.Join(queues, ",")
		}
		h.keys[name] = token
	}
	for _, tenant := range []string{"acme", "globex"} {
		for _, role := range roles {
			add(tenant, role, nil)
		}
	}
	add(store.AllTenants, store.RoleAdmin, nil)
	add("acme", store.RoleWorker, []string{"mail"})
	cfg.Store = h.st
	if h.srv, err = server.New(cfg); err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	return h
}

// do sends a request with the key named and returns the status and body.
func (h *harness) do(key, method, path, body string) (int, []byte) {
	h.t.Helper()
	return h.doHeader(key, method, path, body)
}

// doHeader is do with headers, given as name, value, name, value...
func (h *harness) doHeader(key, method, path, body string, header ...string) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.http.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		tok, ok := h.keys[key]
		if !ok {
			tok = key // a raw token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// must sends a request that must answer want, and decodes its body into out.
func (h *harness) must(want int, key, method, path, body string, out any) {
	h.t.Helper()
	status, b := h.do(key, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, key, status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

type jobView struct {
	ID        string `json:"id"`
	Queue     string `json:"queue"`
	Tenant    string `json:"tenant"`
	State     string `json:"state"`
	LockToken string `json:"lock_token"`
	Attempts  int    `json:"attempts"`
}

// globex is what tenant globex owns when the other tenant's keys probe
// it: a waiting job, a running one with its lock token, a dead one.
type globex struct {
	waiting, running, dead jobView
	// event is the ID of globex's event in its topic "orders", which has
	// a subscription "billing" (with the event's delivery).
	event string
	// keyID is globex's admin key's ID.
	keyID string
}

func (h *harness) seedGlobex() globex {
	h.t.Helper()
	var g globex
	var res struct {
		Results []jobView `json:"results"`
	}
	h.must(201, "globex/admin", "POST", "/v1/jobs",
		`{"jobs": [{"kind": "secret", "queue": "mail", "payload": {"globex": "secret"}, "unique_key": "globex-order-1", "unique_for": "1h"}, {"kind": "held", "queue": "work"}, {"kind": "doomed", "queue": "dlq", "max_attempts": 1}]}`, &res)
	g.waiting = res.Results[0]
	var claimed struct{ Jobs []jobView }
	h.must(200, "globex/worker", "POST", "/v1/queues/work/claim", `{"limit": 1}`, &claimed)
	g.running = claimed.Jobs[0]
	h.must(200, "globex/worker", "POST", "/v1/queues/dlq/claim", `{"limit": 1}`, &claimed)
	d := claimed.Jobs[0]
	h.must(200, "globex/worker", "POST", "/v1/settle",
		fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "fail", "error": {"message": "boom"}}]}`, d.ID, d.LockToken), nil)
	h.must(200, "globex/reader", "GET", "/v1/jobs/"+d.ID, "", &g.dead)
	if g.dead.State != "dead" {
		h.t.Fatalf("seed: dead job is %s", g.dead.State)
	}
	h.must(201, "globex/admin", "PUT", "/v1/topics/orders/subscriptions/billing", `{}`, nil)
	var ev struct{ ID string }
	h.must(201, "globex/producer", "POST", "/v1/topics/orders/events", `{"kind": "secret", "key": "o-1", "payload": {"globex": "secret"}}`, &ev)
	g.event = ev.ID
	h.must(201, "globex/admin", "POST", "/v1/schedules", `{"id": "nightly", "spec": "@daily", "kind": "secret", "queue": "mail"}`, nil)
	h.must(200, "globex/worker", "POST", "/v1/workers/heartbeat", `{"id": "secret-worker", "ttl_seconds": 3600, "queues": ["mail"], "busy": 1, "slots": 2}`, nil)
	g.keyID, _, _ = apikey.Parse(h.keys["globex/admin"])
	return g
}

// snapshot is every job and queue of the store but those of tenant skip,
// as stored, for before/after checks.
func (h *harness) snapshot(skip string) string {
	h.t.Helper()
	page, err := h.st.List(context.Background(), store.ListParams{Limit: store.MaxListLimit})
	if err != nil {
		h.t.Fatal(err)
	}
	var b bytes.Buffer
	for _, j := range page.Jobs {
		if j.Tenant == skip {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s %s %d %d %v|", j.ID, j.Queue, j.Tenant, j.State, j.Attempts, j.LockToken, j.LockedUntil)
	}
	mine := func(name string) bool {
		return skip != "" && (strings.HasPrefix(name, skip+"/") || strings.HasPrefix(name, store.SubscriptionQueuePrefix+skip+"/"))
	}
	stats, _ := h.st.Stats(context.Background())
	for _, q := range stats {
		if !mine(q.Queue) {
			fmt.Fprintf(&b, "%s paused=%v|", q.Queue, q.Paused)
		}
	}
	if ss := h.st.Capabilities().Schedules; ss != nil {
		for _, tenant := range []string{"globex", "acme", ""} {
			page, _ := ss.ListSchedules(context.Background(), store.ScheduleListParams{Tenant: tenant})
			for _, sc := range page.Schedules {
				if tenant != skip {
					fmt.Fprintf(&b, "schedule %s/%s v%d paused=%v next=%v|", sc.Tenant, sc.ID, sc.Version, sc.Paused, sc.NextRunAt)
				}
			}
		}
	}
	if es := h.st.Capabilities().Events; es != nil {
		topics, _ := es.Topics(context.Background())
		for _, t := range topics {
			if !mine(t.Name) {
				fmt.Fprintf(&b, "topic %s head=%d retention=%v|", t.Name, t.Head, t.Retention)
			}
		}
		subs, _ := es.ListSubscriptions(context.Background(), "")
		for _, s := range subs {
			if !mine(s.Topic) {
				fmt.Fprintf(&b, "subscription %s cursor=%d paused=%v kinds=%v|", s.Ref(), s.Cursor, s.Paused, s.Kinds)
			}
		}
	}
	return b.String()
}

// probes are the requests a key of tenant acme makes at each route, aimed
// at globex's jobs (with globex's own lock tokens): a route missing here
// fails TestEveryRouteEveryRole, so none can be added unchecked.
func probes(g globex) map[string]struct{ path, body string } {
	settle := fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "complete"}]}`, g.running.ID, g.running.LockToken)
	return map[string]struct{ path, body string }{
		"GET /v1/openapi.json":            {"/v1/openapi.json", ""},
		"GET /livez":                      {"/livez", ""},
		"GET /readyz":                     {"/readyz", ""},
		"GET /metrics":                    {"/metrics", ""},
		"GET /v1/queues/{queue}/wake":     {"/v1/queues/mail/wake?timeout=0s", ""},
		"GET /v1/schedules":               {"/v1/schedules?tenant=globex", ""},
		"POST /v1/schedules":              {"/v1/schedules", `{"id": "nightly", "tenant": "globex", "spec": "@hourly", "kind": "k"}`},
		"GET /v1/schedules/{id}":          {"/v1/schedules/nightly?tenant=globex", ""},
		"DELETE /v1/schedules/{id}":       {"/v1/schedules/nightly?tenant=globex", ""},
		"POST /v1/schedules/{id}/pause":   {"/v1/schedules/nightly/pause?tenant=globex", ""},
		"POST /v1/schedules/{id}/resume":  {"/v1/schedules/nightly/resume?tenant=globex", ""},
		"POST /v1/schedules/{id}/trigger": {"/v1/schedules/nightly/trigger?tenant=globex", ""},
		"POST /v1/schedules/pause":        {"/v1/schedules/pause", `{"refs": [{"tenant": "globex", "id": "nightly"}]}`},
		"POST /v1/schedules/resume":       {"/v1/schedules/resume", `{"refs": [{"tenant": "globex", "id": "nightly"}]}`},
		"POST /v1/schedules/delete":       {"/v1/schedules/delete", `{"refs": [{"tenant": "globex", "id": "nightly"}]}`},
		"POST /v1/schedules/trigger":      {"/v1/schedules/trigger", `{"refs": [{"tenant": "globex", "id": "nightly"}]}`},
		"POST /v1/schedules/fire":         {"/v1/schedules/fire", `{"limit": 10}`},
		"POST /v1/jobs":                   {"/v1/jobs", `{"kind": "k", "tenant": "globex", "queue": "mail"}`},
		"GET /v1/jobs":                    {"/v1/jobs?tenant=globex", ""},
		"GET /v1/jobs/{id}":               {"/v1/jobs/" + g.waiting.ID, ""},
		"GET /v1/jobs/by-unique-key":      {"/v1/jobs/by-unique-key?key=globex-order-1", ""},
		"GET /v1/jobs/{id}/wait":          {"/v1/jobs/" + g.waiting.ID + "/wait?timeout=0s", ""},
		"POST /v1/jobs/{id}/cancel":       {"/v1/jobs/" + g.waiting.ID + "/cancel", ""},
		"POST /v1/jobs/{id}/requeue":      {"/v1/jobs/" + g.dead.ID + "/requeue", ""},
		"POST /v1/jobs/cancel":            {"/v1/jobs/cancel", fmt.Sprintf(`{"ids": [%q, %q]}`, g.waiting.ID, g.running.ID)},
		"POST /v1/jobs/requeue":           {"/v1/jobs/requeue", fmt.Sprintf(`{"ids": [%q]}`, g.dead.ID)},
		"POST /v1/queues/{queue}/claim":   {"/v1/queues/mail/claim", `{"limit": 10}`},
		"POST /v1/renew":                  {"/v1/renew", fmt.Sprintf(`{"renewals": [{"id": %q, "lock_token": %q, "lock_seconds": 600}]}`, g.running.ID, g.running.LockToken)},
		"POST /v1/settle":                 {"/v1/settle", settle},
		"POST /v1/maintenance/reap":       {"/v1/maintenance/reap", ""},
		"POST /v1/workers/heartbeat":      {"/v1/workers/heartbeat", `{"id": "acme-worker", "ttl_seconds": 60, "queues": ["mail"]}`},
		"GET /v1/workers":                 {"/v1/workers", ""},
		"DELETE /v1/workers/{id}":         {"/v1/workers/secret-worker", ""},
		"POST /v1/maintenance/prune":      {"/v1/maintenance/prune", `{"dead_before": "2100-01-01T00:00:00Z"}`},
		"GET /v1/stats":                   {"/v1/stats", ""},
		"GET /v1/queues":                  {"/v1/queues", ""},
		"POST /v1/queues/{queue}/pause":   {"/v1/queues/mail/pause", ""},
		"POST /v1/queues/{queue}/resume":  {"/v1/queues/mail/resume", ""},
		"GET /v1/dlq":                     {"/v1/dlq", ""},
		"POST /v1/dlq/requeue":            {"/v1/dlq/requeue", fmt.Sprintf(`{"ids": [%q]}`, g.dead.ID)},
		"POST /v1/dlq/purge":              {"/v1/dlq/purge", fmt.Sprintf(`{"ids": [%q]}`, g.dead.ID)},
		"GET /v1/jobs/count":              {"/v1/jobs/count?tenant=globex", ""},
		"POST /v1/jobs/bulk":              {"/v1/jobs/bulk", `{"action": "cancel", "filter": {"tenant": "globex"}}`},
		"GET /v1/activity":                {"/v1/activity?since=1h", ""},
		"GET /v1/audit":                   {"/v1/audit", ""},
		"GET /v1/keys":                    {"/v1/keys", ""},
		"POST /v1/keys":                   {"/v1/keys", `{"tenant": "globex", "role": "admin"}`},
		"POST /v1/keys/{id}/revoke":       {"/v1/keys/" + g.keyID + "/revoke", ""},

		// Events: acme's "orders" is not globex's.
		"GET /v1/topics":                                      {"/v1/topics", ""},
		"PUT /v1/topics/{topic}/retention":                    {"/v1/topics/orders/retention", `{"retention": "1h"}`},
		"POST /v1/topics/{topic}/events":                      {"/v1/topics/orders/events", `{"kind": "k", "tenant": "globex"}`},
		"GET /v1/topics/{topic}/events":                       {"/v1/topics/orders/events", ""},
		"GET /v1/topics/{topic}/events/{id}":                  {"/v1/topics/orders/events/" + g.event, ""},
		"GET /v1/events/{id}":                                 {"/v1/events/" + g.event, ""},
		"POST /v1/topics/{topic}/streams/{key}/events":        {"/v1/topics/orders/streams/o-1/events", `{"expected_version": 0, "events": [{"kind": "k"}]}`},
		"GET /v1/topics/{topic}/streams/{key}/events":         {"/v1/topics/orders/streams/o-1/events", ""},
		"GET /v1/subscriptions":                               {"/v1/subscriptions", ""},
		"GET /v1/topics/{topic}/subscriptions":                {"/v1/topics/orders/subscriptions", ""},
		"PUT /v1/topics/{topic}/subscriptions/{name}":         {"/v1/topics/orders/subscriptions/billing", `{"kinds": ["k"]}`},
		"GET /v1/topics/{topic}/subscriptions/{name}":         {"/v1/topics/orders/subscriptions/billing", ""},
		"DELETE /v1/topics/{topic}/subscriptions/{name}":      {"/v1/topics/orders/subscriptions/billing", ""},
		"POST /v1/topics/{topic}/subscriptions/{name}/pause":  {"/v1/topics/orders/subscriptions/billing/pause", ""},
		"POST /v1/topics/{topic}/subscriptions/{name}/resume": {"/v1/topics/orders/subscriptions/billing/resume", ""},
		"POST /v1/topics/{topic}/subscriptions/{name}/rewind": {"/v1/topics/orders/subscriptions/billing/rewind", `{"to": "start"}`},
	}
}

// Every route, for every role of tenant acme: a role without the route's
// permission is refused with 403; a role with it gets an answer, but
// never sees nor changes anything of tenant globex, even holding globex's
// job IDs and lock tokens.
func TestEveryRouteEveryRole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	g := h.seedGlobex()
	ps := probes(g)
	secrets := []string{g.waiting.ID, g.running.ID, g.dead.ID, "globex", "secret", g.running.LockToken, g.keyID}
	for _, rt := range h.srv.Routes() {
		name := rt.Method + " " + rt.Path
		p, ok := ps[name]
		if !ok {
			t.Errorf("%s: no probe; add one to probes so the route's access is tested", name)
			continue
		}
		for _, role := range append(roles, "worker:mail") {
			key := "acme/" + role
			before := h.snapshot("acme")
			status, body := h.do(key, rt.Method, p.path, p.body)
			after := h.snapshot("acme")
			if before != after {
				t.Errorf("%s as %s changed globex's jobs: %d %s\nbefore %s\nafter  %s", name, key, status, body, before, after)
			}
			allowed := rt.Permission == "public" || roleAllows(role, rt.Permission)
			switch {
			case !allowed && status != http.StatusForbidden:
				t.Errorf("%s as %s: %d %s, want 403", name, key, status, body)
			case allowed && status >= 500:
				t.Errorf("%s as %s: %d %s", name, key, status, body)
			}
			if rt.Path == "/v1/openapi.json" {
				continue
			}
			for _, s := range secrets {
				if rt.Path == "/v1/audit" && s != "globex" && s != "secret" {
					continue // acme's log repeats the IDs acme's own probes named
				}
				if bytes.Contains(body, []byte(s)) && !strings.Contains(p.body+p.path, s) {
					t.Errorf("%s as %s: the answer shows globex's %q: %s", name, key, s, body)
				}
			}
			if bytes.Contains(body, []byte(`"tenant":"globex"`)) || bytes.Contains(body, []byte(`"queue":"globex/`)) {
				t.Errorf("%s as %s: the answer shows globex: %s", name, key, body)
			}
		}
		// Without a key, or with a wrong one: 401, nothing changes.
		if rt.Permission != "public" {
			for _, key := range []string{"", "spool_k1_wrong", "Basic abc", strings.Replace(h.keys["acme/admin"], "_", "_x", 2)} {
				before := h.snapshot("")
				status, body := h.do(key, rt.Method, p.path, p.body)
				if status != http.StatusUnauthorized || h.snapshot("") != before {
					t.Errorf("%s with key %q: %d %s, want 401 and no change", name, key, status, body)
				}
			}
		}
	}
	// The operator's key sees globex's job, also by its unique key.
	var v jobView
	h.must(200, "*/admin", "GET", "/v1/jobs/"+g.waiting.ID, "", &v)
	if v.Queue != "globex/mail" || v.Tenant != "globex" {
		t.Errorf("operator sees %+v", v)
	}
	h.must(200, "*/admin", "GET", "/v1/jobs/by-unique-key?key=globex-order-1&tenant=globex", "", &v)
	if v.ID != g.waiting.ID {
		t.Errorf("operator sees by unique key %+v, want job %s", v, g.waiting.ID)
	}
	h.must(404, "*/admin", "GET", "/v1/jobs/by-unique-key?key=globex-order-1", "", nil)
	// Globex's worker is still online, under its tenant's prefix; no other
	// tenant's heartbeat or removal touched it.
	var ws struct{ Workers []struct{ ID, Tenant string } }
	h.must(200, "*/admin", "GET", "/v1/workers", "", &ws)
	if !slices.ContainsFunc(ws.Workers, func(w struct{ ID, Tenant string }) bool {
		return w.ID == "globex/secret-worker" && w.Tenant == "globex"
	}) {
		t.Errorf("operator sees workers %+v, want globex/secret-worker of tenant globex", ws.Workers)
	}
	h.must(200, "globex/reader", "GET", "/v1/workers", "", &ws)
	if len(ws.Workers) != 1 || ws.Workers[0].ID != "secret-worker" {
		t.Errorf("globex sees workers %+v, want its secret-worker alone", ws.Workers)
	}
}

func roleAllows(role, perm string) bool {
	role, _, _ = strings.Cut(role, ":")
	switch perm {
	case "read":
		return true
	case "metrics":
		return false // an operator's key only; the walk's keys are acme's
	case "produce":
		return role == store.RoleProducer || role == store.RoleAdmin
	case "work":
		return role == store.RoleWorker || role == store.RoleAdmin
	}
	return role == store.RoleAdmin
}

// Two tenants may both have a queue "mail": each enqueues, claims, settles
// and reads only its own, and the names never show the prefix.
func TestTenantsShareNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	for _, tenant := range []string{"acme", "globex"} {
		h.must(201, tenant+"/producer", "POST", "/v1/jobs", fmt.Sprintf(`{"kind": "k", "queue": "mail", "payload": {"for": %q}}`, tenant), nil)
	}
	for _, tenant := range []string{"acme", "globex"} {
		var claimed struct{ Jobs []jobView }
		h.must(200, tenant+"/worker", "POST", "/v1/queues/mail/claim", `{"limit": 10}`, &claimed)
		if len(claimed.Jobs) != 1 || claimed.Jobs[0].Tenant != tenant || claimed.Jobs[0].Queue != "mail" {
			t.Fatalf("%s claimed %+v", tenant, claimed.Jobs)
		}
		j := claimed.Jobs[0]
		var res struct{ Results []struct{ OK bool } }
		h.must(200, tenant+"/worker", "POST", "/v1/settle",
			fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "complete", "result": {"ok": true}}]}`, j.ID, j.LockToken), &res)
		if !res.Results[0].OK {
			t.Fatalf("%s settle: %+v", tenant, res)
		}
		var stats struct {
			Queues []struct {
				Queue  string
				Counts map[string]int
			}
		}
		h.must(200, tenant+"/reader", "GET", "/v1/stats", "", &stats)
		if len(stats.Queues) != 1 || stats.Queues[0].Queue != "mail" || stats.Queues[0].Counts["completed"] != 1 {
			t.Fatalf("%s stats %+v", tenant, stats)
		}
	}
	// The queue-limited key may not touch another queue.
	h.must(403, "acme/worker:mail", "POST", "/v1/queues/other/claim", `{}`, nil)
	h.must(200, "acme/worker:mail", "POST", "/v1/queues/mail/claim", `{}`, nil)
}

// A job list's filters and order come through the query string; a
// tenant's key lists its own tenant's jobs whatever tenant it names.
func TestListFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	var ids []string
	for i, tenant := range []string{"acme", "globex", "acme", "acme"} {
		var r struct{ ID string }
		h.must(201, tenant+"/producer", "POST", "/v1/jobs", fmt.Sprintf(`{"kind": "k", "queue": "mail", "unique_key": "u%d", "ordering_key": "o%d"}`, i, i%2), &r)
		ids = append(ids, r.ID)
		h.clock.Advance(time.Second)
	}
	list := func(key, query string) []string {
		t.Helper()
		var page struct{ Jobs []jobView }
		h.must(200, key, "GET", "/v1/jobs?"+query, "", &page)
		var out []string
		for _, j := range page.Jobs {
			out = append(out, j.ID)
		}
		return out
	}
	for _, c := range []struct {
		key, query string
		want       []string
	}{
		{"acme/reader", "order=newest", []string{ids[3], ids[2], ids[0]}},
		{"acme/reader", "ordering_key=o0", []string{ids[0], ids[2]}},
		{"acme/reader", "tenant=acme&unique_key=u3&ordering_key=o1", []string{ids[3]}},
		{"acme/reader", "unique_key=u1", nil},
		{"globex/reader", "ordering_key=o1", []string{ids[1]}},
		{"acme/reader", "order=newest&limit=1&after=" + ids[3], []string{ids[2]}},
		{"*/admin", "order=newest&queue=acme/mail&state=available&created_after=" + url.QueryEscape(h.clock.Now().Add(-2500*time.Millisecond).Format(time.RFC3339Nano)),
			[]string{ids[3], ids[2]}},
		{"*/admin", "created_before=" + url.QueryEscape(h.clock.Now().Add(-3500*time.Millisecond).Format(time.RFC3339Nano)), []string{ids[0]}},
	} {
		if got := list(c.key, c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s lists %s: %v, want %v", c.key, c.query, got, c.want)
		}
	}
	h.must(403, "globex/reader", "GET", "/v1/jobs?tenant=acme&unique_key=u0", "", nil)
}

// A stale lock token is refused per item with lock_lost and changes
// nothing; the current one settles.
func TestStaleTokenRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.must(201, "acme/producer", "POST", "/v1/jobs", `{"kind": "k"}`, nil)
	var first struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/default/claim", `{"lock_seconds": 1}`, &first)
	j := first.Jobs[0]
	// The lock expires and the job is reaped and claimed again.
	h.clock.Advance(2 * time.Second)
	h.must(200, "acme/worker", "POST", "/v1/maintenance/reap", "", nil)
	var second struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/default/claim", `{}`, &second)
	if len(second.Jobs) != 1 || second.Jobs[0].LockToken == j.LockToken {
		t.Fatalf("second claim %+v", second)
	}
	before := h.snapshot("")
	var res struct {
		Results []struct {
			OK    bool
			Error *struct{ Code string }
		}
	}
	h.must(200, "acme/worker", "POST", "/v1/settle",
		fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "complete"}]}`, j.ID, j.LockToken), &res)
	if res.Results[0].OK || res.Results[0].Error.Code != "lock_lost" || h.snapshot("") != before {
		t.Fatalf("stale settle: %+v", res)
	}
	h.must(200, "acme/worker", "POST", "/v1/settle",
		fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "complete"}]}`, j.ID, second.Jobs[0].LockToken), &res)
	if !res.Results[0].OK {
		t.Fatalf("current settle: %+v", res)
	}
}

// Bad input gets a typed error and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{MaxBodyBytes: 1024})
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/jobs", `{"kind": `, 400, "invalid"},
		{"POST", "/v1/jobs", `{"kind": "k", "colour": "red"}`, 400, "invalid"},
		{"POST", "/v1/jobs", `{"kind": "k"} {"kind": "k"}`, 400, "invalid"},
		{"POST", "/v1/jobs", `{"jobs": [{"kind": "k"}, {"kind": "k", "priority": 1000}]}`, 422, "invalid"},
		{"POST", "/v1/jobs", `{"kind": "k", "payload": "` + strings.Repeat("x", 2000) + `"}`, 413, "too_large"},
		{"POST", "/v1/queues/default/claim", `{"wait_seconds": 31}`, 400, "invalid"},
		{"GET", "/v1/jobs/not-an-id", "", 400, "invalid"},
		{"GET", "/v1/jobs?state=sleeping", "", 400, "invalid"},
		{"GET", "/v1/jobs?order=sideways", "", 400, "invalid"},
		{"GET", "/v1/jobs?created_after=yesterday", "", 400, "invalid"},
		{"GET", "/v1/jobs?created_after=2026-12-09T00:00:00Z&created_before=2026-12-08T00:00:00Z", "", 400, "invalid"},
		{"GET", "/v1/jobs/01a25248-1413-7035-b3b5-8590eb7f5e88", "", 404, "not_found"},
		{"GET", "/v1/nothing", "", 404, "not_found"},
	} {
		before := h.snapshot("")
		status, body := h.do("acme/admin", c.method, c.path, c.body)
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || status != c.status || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s %s %.40s: %d %s, want %d %s", c.method, c.path, c.body, status, body, c.status, c.code)
		}
		if h.snapshot("") != before {
			t.Errorf("%s %s changed the store", c.method, c.path)
		}
	}
}

// A revoked key is refused once the server's short cache of it lapses; an
// expired key is refused; a key over its rate limit gets 429 until its
// bucket refills.
func TestKeysRevokedExpiredRateLimited(t *testing.T) {
	t.Parallel()
	fake := clockwork.NewFakeClockAt(time.Now())
	h := newHarness(t, server.Config{Clock: fake, KeyCacheFor: time.Second, RateLimit: 1, RateBurst: 2})
	keys := h.st.Capabilities().Keys
	token, key, err := apikey.New(apikey.Params{Tenant: "acme", Role: store.RoleReader, ExpiresIn: time.Hour}, fake.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.CreateKey(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	h.must(200, token, "GET", "/v1/stats", "", nil)
	h.must(200, token, "GET", "/v1/stats", "", nil)
	h.must(429, token, "GET", "/v1/stats", "", nil) // the burst of 2 is spent
	fake.Advance(1100 * time.Millisecond)
	h.must(200, token, "GET", "/v1/stats", "", nil) // refilled at 1/s

	fake.Advance(2 * time.Hour) // past ExpiresAt, and past the cache
	h.must(401, token, "GET", "/v1/stats", "", nil)

	other := h.keys["acme/reader"]
	h.must(200, other, "GET", "/v1/stats", "", nil)
	id, _, _ := apikey.Parse(other)
	if err := keys.RevokeKey(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	fake.Advance(2 * time.Second)
	h.must(401, other, "GET", "/v1/stats", "", nil)
}
