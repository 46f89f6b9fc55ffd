package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestKeysLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ks := f.st.Capabilities().Keys
	if ks == nil {
		t.Fatal("the SQLite store keeps no keys")
	}
	ctx := context.Background()

	// create prints the token alone on stdout, and says on stderr that it
	// cannot be shown again.
	r := f.run("keys", "create", "--tenant", "acme", "--role", "worker", "--queues", "mail,billing",
		"--name", "billing workers", "--expires", "90d")
	if r.code != 0 || !strings.Contains(r.stderr, "cannot be shown again") {
		t.Fatalf("keys create: %+v", r)
	}
	token := strings.TrimSpace(r.stdout)
	id, secret, err := apikey.Parse(token)
	if err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("keys create printed %q: %v", r.stdout, err)
	}
	k, err := ks.GetKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !apikey.Verify(k, secret) || apikey.Verify(k, strings.Repeat("A", 43)) {
		t.Fatal("the stored key does not verify the printed secret (or verifies another)")
	}
	if k.Tenant != "acme" || k.Role != store.RoleWorker || strings.Join(k.Queues, ",") != "mail,billing" ||
		k.Name != "billing workers" || !k.Usable(time.Now()) || !k.RevokedAt.IsZero() {
		t.Fatalf("stored key %+v", k)
	}
	if d := k.ExpiresAt.Sub(k.CreatedAt); d < 90*24*time.Hour-time.Minute || d > 90*24*time.Hour+time.Minute {
		t.Fatalf("key expires %v after it was created, want 90 days", d)
	}
	if strings.Contains(r.stderr, secret) {
		t.Fatal("the secret is on stderr too")
	}

	// --json: the view and the token; an operator's key.
	var created struct {
		Key   wire.APIKey `json:"key"`
		Token string      `json:"token"`
	}
	f.okJSON(&created, "keys", "create", "--tenant", "*", "--role", "admin")
	opID, opSecret, err := apikey.Parse(created.Token)
	if err != nil || created.Key.ID != opID || created.Key.Tenant != store.AllTenants || created.Key.Role != "admin" ||
		len(created.Key.Queues) != 0 || created.Key.ExpiresAt != nil || created.Key.CreatedAt.IsZero() {
		t.Fatalf("keys create --json = %+v (%v)", created, err)
	}
	if op, err := ks.GetKey(ctx, opID); err != nil || !apikey.Verify(op, opSecret) {
		t.Fatalf("the operator's key: %+v, %v", op, err)
	}

	// list: both, without hashes or secrets.
	var list struct {
		Keys []wire.APIKey `json:"keys"`
	}
	f.okJSON(&list, "keys", "list")
	if len(list.Keys) != 2 {
		t.Fatalf("keys list: %+v", list)
	}
	byID := map[string]wire.APIKey{}
	for _, k := range list.Keys {
		byID[k.ID] = k
	}
	if got := byID[id]; got.Tenant != "acme" || got.Role != "worker" || strings.Join(got.Queues, ",") != "mail,billing" ||
		got.Name != "billing workers" || got.ExpiresAt == nil || got.RevokedAt != nil {
		t.Fatalf("listed key %+v", got)
	}
	out := f.ok("keys", "list")
	for _, want := range []string{"STATUS", id, opID, "billing workers", "mail,billing", "* (all)", "active"} {
		if !strings.Contains(out, want) {
			t.Fatalf("keys list lacks %q:\n%s", want, out)
		}
	}
	raw := f.ok("keys", "list", "--json")
	if strings.Contains(raw, secret) || strings.Contains(raw, opSecret) || strings.Contains(raw, "hash") {
		t.Fatalf("keys list --json shows a secret or hash:\n%s", raw)
	}

	// revoke: the key is marked; listed as revoked; again is fine.
	if out := f.ok("keys", "revoke", id); out != "revoked API key "+id+"\n" {
		t.Fatalf("keys revoke printed %q", out)
	}
	if k, err := ks.GetKey(ctx, id); err != nil || k.RevokedAt.IsZero() || k.Usable(time.Now()) {
		t.Fatalf("revoked key: %+v, %v", k, err)
	}
	f.ok("keys", "revoke", id)
	f.okJSON(&list, "keys", "list")
	for _, k := range list.Keys {
		if (k.RevokedAt != nil) != (k.ID == id) {
			t.Fatalf("after revoke: %+v", list.Keys)
		}
	}
	if out := f.ok("keys", "list"); !strings.Contains(out, "revoked") {
		t.Fatalf("keys list after revoke:\n%s", out)
	}

	// An unknown ID: the others are revoked, the command says which was
	// not found and exits 1.
	r = f.fails(exitFailed, "keys", "revoke", "knope", opID)
	if !strings.Contains(r.stderr, "api key knope not found") || !strings.Contains(r.stdout, "revoked API key "+opID) {
		t.Fatalf("revoke of an unknown key: %+v", r)
	}
	var per struct {
		Done    []string `json:"done"`
		Refused []struct {
			ID    string     `json:"id"`
			Error wire.Error `json:"error"`
		} `json:"refused"`
	}
	r = f.fails(exitFailed, "keys", "revoke", "knope", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &per); err != nil || len(per.Done) != 0 || len(per.Refused) != 1 ||
		per.Refused[0].ID != "knope" || per.Refused[0].Error.Code != "not_found" {
		t.Fatalf("revoke --json of an unknown key: %q (%v)", r.stdout, err)
	}
}

func TestKeysRefuseInvalidInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Invalid values exit 2 with the invalid error and store nothing.
	for _, c := range []struct {
		args  []string
		field string
	}{
		{[]string{"--tenant", "acme", "--role", "root"}, "role"},
		{[]string{"--tenant", "bad tenant!", "--role", "reader"}, "tenant"},
		{[]string{"--tenant", "acme", "--role", "reader", "--queues", "no queue"}, "queue"},
		{[]string{"--tenant", "acme", "--role", "reader", "--expires", "soon"}, "expires"},
		{[]string{"--tenant", "acme", "--role", "reader", "--expires", "-1d"}, "expires"},
	} {
		args := append([]string{"keys", "create"}, c.args...)
		r := f.fails(exitUsage, args...)
		if !strings.HasPrefix(r.stderr, "spool: invalid "+c.field) || r.stdout != "" {
			t.Errorf("spool %s: stderr %q, stdout %q", strings.Join(args, " "), r.stderr, r.stdout)
		}
		e := f.failsJSON(exitUsage, args...)
		if e.Error.Code != "invalid" || e.Error.Field != c.field {
			t.Errorf("spool %s --json: %+v", strings.Join(args, " "), e)
		}
	}
	// Missing flags are usage errors.
	for _, args := range [][]string{
		{"keys", "create", "--role", "admin"},
		{"keys", "create", "--tenant", "acme"},
		{"keys", "create", "--tenant", "acme", "--role", "admin", "extra"},
		{"keys", "revoke"},
	} {
		r := f.fails(exitUsage, args...)
		if !strings.Contains(r.stderr, "--help") {
			t.Errorf("spool %s: stderr %q", strings.Join(args, " "), r.stderr)
		}
	}
	if r := f.fails(exitUsage, "keys", "create", "--role", "admin"); !strings.Contains(r.stderr, `"tenant" not set`) {
		t.Errorf("create without --tenant: %q", r.stderr)
	}
	f.fails(exitUsage, "keys", "revoke", "bad id")
	if keys, err := f.st.Capabilities().Keys.ListKeys(context.Background()); err != nil || len(keys) != 0 {
		t.Fatalf("refused creates stored keys: %+v, %v", keys, err)
	}

	// Refused input creates no store; list and revoke want one that exists.
	path := filepath.Join(t.TempDir(), "spool.db")
	other := &fixture{t: t, url: "sqlite:" + path}
	other.fails(exitUsage, "keys", "create", "--tenant", "acme", "--role", "root")
	other.fails(exitFailed, "keys", "list")
	other.fails(exitFailed, "keys", "revoke", "k1")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused commands created the store: %v", err)
	}
	// An empty store lists no keys.
	if r := f.run("keys", "list"); r.code != 0 || !strings.Contains(r.stderr, "no API keys") || r.stdout != "" {
		t.Fatalf("keys list of no keys: %+v", r)
	}
}
