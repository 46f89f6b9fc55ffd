package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/remote"
	"github.com/spoolrun/spool/store/sqlite"
)

// keyring is an in-memory store.KeyStore.
type keyring struct {
	mu   sync.Mutex
	keys map[string]*store.APIKey
}

func (k *keyring) CreateKey(_ context.Context, key store.APIKey) (*store.APIKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, dup := k.keys[key.ID]; dup {
		return nil, store.ErrDuplicate
	}
	k.keys[key.ID] = &key
	return &key, nil
}

func (k *keyring) GetKey(_ context.Context, id string) (*store.APIKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[id]; ok {
		c := *key
		return &c, nil
	}
	return nil, &store.NotFoundError{Resource: "key", Name: id}
}

func (k *keyring) ListKeys(context.Context) ([]*store.APIKey, error) { return nil, nil }
func (k *keyring) RevokeKey(context.Context, string) error           { return nil }

// keyed is a store with the keys of a keyring.
type keyed struct {
	store.Store
	keys *keyring
}

func (s keyed) Capabilities() store.Capabilities {
	c := s.Store.Capabilities()
	c.Keys = s.keys
	return c
}

// api is a server with keys over a SQLite store, for one test.
type api struct {
	t     *testing.T
	under store.Store // the served store, behind the API's back
	keys  *keyring
	url   string
}

func newAPI(t *testing.T) *api {
	t.Helper()
	under, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	keys := &keyring{keys: map[string]*store.APIKey{}}
	srv, err := server.New(server.Config{Store: keyed{Store: under, keys: keys}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Drain()
		hs.Close()
		under.Close()
	})
	return &api{t: t, under: under, keys: keys, url: hs.URL}
}

// key makes a key and returns its token.
func (a *api) key(id, tenant, role string, queues ...string) string {
	a.t.Helper()
	token, k, err := apikey.New(apikey.Params{Tenant: tenant, Role: role, Queues: queues, Name: id}, time.Now())
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.keys.CreateKey(a.t.Context(), k); err != nil {
		a.t.Fatal(err)
	}
	return token
}

// call sends a request with token and returns the status and the decoded
// JSON answer.
func (a *api) call(token, method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		a.t.Fatalf("%s %s: answer: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// code returns the error code of an answer, or of item i of its results.
func code(out map[string]any, item int) string {
	if item >= 0 {
		res, _ := out["results"].([]any)
		if item >= len(res) {
			return "no such item"
		}
		out, _ = res[item].(map[string]any)
	}
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestSchedulesTenantScope(t *testing.T) {
	a := newAPI(t)
	admin := a.key("acme-admin", "acme", store.RoleAdmin)
	reader := a.key("acme-reader", "acme", store.RoleReader)
	ctx := t.Context()

	// A tenant's schedule is stored in its tenant, its queue under the
	// tenant's prefix; the key sees its own names.
	status, out := a.call(admin, http.MethodPost, "/v1/schedules", map[string]any{"id": "nightly", "spec": "@hourly", "kind": "report", "queue": "mail"})
	if status != http.StatusCreated || out["queue"] != "mail" || out["tenant"] != "acme" || out["created"] != true {
		t.Fatalf("create: %d %v", status, out)
	}
	stored, err := a.under.Capabilities().Schedules.GetSchedule(ctx, store.ScheduleRef{Tenant: "acme", ID: "nightly"})
	if err != nil || stored.Queue != "acme/mail" {
		t.Fatalf("stored schedule: %+v, %v; want queue acme/mail in tenant acme", stored, err)
	}
	if status, out = a.call(reader, http.MethodGet, "/v1/schedules/nightly", nil); status != http.StatusOK || out["queue"] != "mail" {
		t.Fatalf("get: %d %v", status, out)
	}
	if status, out = a.call(reader, http.MethodGet, "/v1/schedules", nil); status != http.StatusOK {
		t.Fatalf("list: %d %v", status, out)
	} else if list, _ := out["schedules"].([]any); len(list) != 1 {
		t.Fatalf("list: %v, want the one schedule", out)
	}

	// Another tenant: named, forbidden; by ID alone, never found.
	if _, err := a.under.Capabilities().Schedules.UpsertSchedules(ctx, []store.Schedule{{Tenant: "beta", ID: "theirs", Spec: "@hourly", Kind: "k", Queue: "beta/q"}}); err != nil {
		t.Fatal(err)
	}
	if status, out = a.call(admin, http.MethodGet, "/v1/schedules/theirs?tenant=beta", nil); status != http.StatusForbidden {
		t.Errorf("get another tenant's schedule by tenant: %d %v, want 403", status, out)
	}
	if status, out = a.call(admin, http.MethodGet, "/v1/schedules/theirs", nil); status != http.StatusNotFound {
		t.Errorf("get another tenant's schedule by ID: %d %v, want 404", status, out)
	}
	status, out = a.call(admin, http.MethodPost, "/v1/schedules/pause", map[string]any{"refs": []map[string]string{
		{"id": "nightly"}, {"id": "theirs"}, {"id": "theirs", "tenant": "beta"}}})
	if status != http.StatusOK || code(out, 0) != "" || code(out, 1) != "not_found" || code(out, 2) != "forbidden" {
		t.Errorf("pause mine, theirs by ID, theirs by tenant: %d %v, want ok, not_found, forbidden", status, out)
	}
	status, out = a.call(admin, http.MethodPost, "/v1/schedules", map[string]any{"schedules": []map[string]any{
		{"id": "a", "spec": "@daily", "kind": "k"}, {"id": "b", "spec": "@daily", "kind": "k", "tenant": "beta"}}})
	if status != http.StatusOK || code(out, 0) != "" || code(out, 1) != "forbidden" {
		t.Errorf("upsert mine and one in another tenant: %d %v, want ok and forbidden", status, out)
	}

	// Reads need read, writes admin.
	if status, out = a.call(reader, http.MethodPost, "/v1/schedules/nightly/resume", nil); status != http.StatusForbidden {
		t.Errorf("resume with a reader's key: %d %v, want 403", status, out)
	}

	// Trigger and delete, one schedule at a time.
	if status, out = a.call(admin, http.MethodPost, "/v1/schedules/nightly/trigger", nil); status != http.StatusCreated || out["job_id"] == "" {
		t.Fatalf("trigger: %d %v", status, out)
	}
	jobID, _ := out["job_id"].(string)
	id, err := store.ParseID(jobID)
	if err != nil {
		t.Fatal(err)
	}
	job, err := a.under.Get(ctx, id)
	if err != nil || job.Queue != "acme/mail" || job.Tenant != "acme" {
		t.Fatalf("triggered run: %+v, %v; want it in acme/mail", job, err)
	}
	if status, out = a.call(admin, http.MethodDelete, "/v1/schedules/nightly", nil); status != http.StatusOK || out["deleted"] != true {
		t.Fatalf("delete: %d %v", status, out)
	}
	if status, _ = a.call(admin, http.MethodGet, "/v1/schedules/nightly", nil); status != http.StatusNotFound {
		t.Errorf("get after delete: %d, want 404", status)
	}
}

func TestSchedulesQueueLimitedKey(t *testing.T) {
	a := newAPI(t)
	ctx := t.Context()
	limited := a.key("mail-admin", "acme", store.RoleAdmin, "mail")
	// A schedule of the tenant's into a queue the key may not use: hidden,
	// and not to be replaced.
	if _, err := a.under.Capabilities().Schedules.UpsertSchedules(ctx, []store.Schedule{{Tenant: "acme", ID: "billing", Spec: "@hourly", Kind: "k", Queue: "acme/billing"}}); err != nil {
		t.Fatal(err)
	}
	if status, _ := a.call(limited, http.MethodGet, "/v1/schedules/billing", nil); status != http.StatusNotFound {
		t.Errorf("get a schedule into another queue: %d, want 404", status)
	}
	if status, out := a.call(limited, http.MethodPost, "/v1/schedules", map[string]any{"id": "billing", "spec": "@daily", "kind": "k", "queue": "mail"}); status != http.StatusForbidden {
		t.Errorf("replace a schedule into another queue: %d %v, want 403", status, out)
	}
	if status, out := a.call(limited, http.MethodPost, "/v1/schedules", map[string]any{"id": "x", "spec": "@daily", "kind": "k", "queue": "billing"}); status != http.StatusForbidden {
		t.Errorf("create a schedule into another queue: %d %v, want 403", status, out)
	}
	if status, out := a.call(limited, http.MethodPost, "/v1/schedules", map[string]any{"id": "x", "spec": "@daily", "kind": "k", "queue": "mail"}); status != http.StatusCreated {
		t.Errorf("create a schedule into its queue: %d %v, want 201", status, out)
	}
}

func TestFireNeedsAnOperator(t *testing.T) {
	a := newAPI(t)
	operator := a.key("ops", store.AllTenants, store.RoleWorker)
	tenantWorker := a.key("acme-worker", "acme", store.RoleWorker)
	if status, out := a.call(tenantWorker, http.MethodPost, "/v1/schedules/fire", map[string]any{}); status != http.StatusForbidden {
		t.Errorf("fire with a tenant's key: %d %v, want 403", status, out)
	}
	if status, out := a.call(operator, http.MethodPost, "/v1/schedules/fire", map[string]any{"limit": 10}); status != http.StatusOK || out["schedules"] != 0.0 {
		t.Errorf("fire with an operator's key: %d %v", status, out)
	}

	// A remote store on a tenant's key fires nothing, quietly: the server
	// fires every tenant's schedules itself.
	rs, err := remote.Open(strings.Replace(a.url, "http://", "http://:"+tenantWorker+"@", 1), remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for range 2 {
		res, err := rs.FireDue(t.Context(), store.FireParams{})
		if err != nil || res.Schedules != 0 || !res.NextDue.IsZero() {
			t.Errorf("FireDue over a tenant's key: %+v, %v; want nothing fired, no error", res, err)
		}
	}
	// The key works for what it may do: its tenant's queues.
	if _, err := rs.Enqueue(t.Context(), []store.EnqueueParams{{Kind: "k", Queue: "mail"}}); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("enqueue with a worker's key: %v, want forbidden", err)
	}
	if _, err := a.under.Enqueue(t.Context(), []store.EnqueueParams{{Kind: "k", Queue: "acme/mail", Tenant: "acme"}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := rs.Claim(t.Context(), store.ClaimParams{Queue: "mail", LockFor: store.MinLockDuration})
	if err != nil || len(jobs) != 1 || jobs[0].Queue != "mail" {
		t.Fatalf("claim the tenant's queue: %v, %v", jobs, err)
	}
}
