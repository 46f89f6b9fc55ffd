package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// keyTests check a store's store.KeyStore. They run when the backend
// declares Features.Keys.
var keyTests = []test{
	{"CreateAndGet", testKeyCreateGet},
	{"DuplicateRefused", testKeyDuplicate},
	{"InvalidRefused", testKeyInvalid},
	{"ListInIDOrder", testKeyList},
	{"Revoke", testKeyRevoke},
	{"UnknownNotFound", testKeyUnknown},
	{"Usable", testKeyUsable},
	{"Closed", testKeyClosed},
}

func (h *harness) keys() store.KeyStore {
	h.t.Helper()
	ks := h.s.Capabilities().Keys
	if ks == nil {
		h.t.Fatal("the backend declares Features.Keys, but Capabilities().Keys is nil")
	}
	return ks
}

// newKey is a valid key with ID id and a hash made from it.
func newKey(id string) store.APIKey {
	sum := sha256.Sum256([]byte("secret of " + id))
	return store.APIKey{ID: id, Hash: sum[:], Tenant: "acme", Role: store.RoleWorker}
}

// createKey stores k and fails the test on any error.
func (h *harness) createKey(k store.APIKey) *store.APIKey {
	h.t.Helper()
	got, err := h.keys().CreateKey(h.ctx, k)
	if err != nil {
		h.t.Fatalf("CreateKey(%s): %v", k.ID, err)
	}
	if got == nil {
		h.t.Fatalf("CreateKey(%s) returned nil", k.ID)
	}
	return got
}

// getKey reads a key and fails the test if it cannot.
func (h *harness) getKey(id string) *store.APIKey {
	h.t.Helper()
	k, err := h.keys().GetKey(h.ctx, id)
	if err != nil {
		h.t.Fatalf("GetKey(%s): %v", id, err)
	}
	if k == nil || k.ID != id {
		h.t.Fatalf("GetKey(%s) returned %+v", id, k)
	}
	return k
}

// listKeys lists the keys and fails the test if it cannot.
func (h *harness) listKeys() []*store.APIKey {
	h.t.Helper()
	keys, err := h.keys().ListKeys(h.ctx)
	if err != nil {
		h.t.Fatalf("ListKeys: %v", err)
	}
	return keys
}

// diffKeys describes how two keys differ; empty when equal. Times are
// compared as instants.
func diffKeys(a, b *store.APIKey) []string {
	var d []string
	add := func(field string, x, y any) { d = append(d, fmt.Sprintf("%s: %v -> %v", field, x, y)) }
	if a.ID != b.ID {
		add("ID", a.ID, b.ID)
	}
	if !bytes.Equal(a.Hash, b.Hash) {
		add("Hash", a.Hash, b.Hash)
	}
	if a.Tenant != b.Tenant {
		add("Tenant", a.Tenant, b.Tenant)
	}
	if a.Role != b.Role {
		add("Role", a.Role, b.Role)
	}
	if !slices.Equal(a.Queues, b.Queues) {
		add("Queues", a.Queues, b.Queues)
	}
	if a.Name != b.Name {
		add("Name", a.Name, b.Name)
	}
	if a.SQSSecret != b.SQSSecret {
		add("SQSSecret", a.SQSSecret, b.SQSSecret)
	}
	for _, tm := range []struct {
		name string
		x, y time.Time
	}{{"CreatedAt", a.CreatedAt, b.CreatedAt}, {"ExpiresAt", a.ExpiresAt, b.ExpiresAt}, {"RevokedAt", a.RevokedAt, b.RevokedAt}} {
		if !tm.x.Equal(tm.y) {
			add(tm.name, tm.x, tm.y)
		}
	}
	return d
}

// wantKey fails the test unless got is want.
func wantKey(t *testing.T, what string, got, want *store.APIKey) {
	t.Helper()
	if d := diffKeys(want, got); len(d) != 0 {
		t.Fatalf("%s: %v", what, d)
	}
}

func testKeyCreateGet(t *testing.T, h *harness) {
	// Every field; the store sets CreatedAt from its clock.
	k := newKey("kworker1")
	k.Queues = []string{"mail", "billing"}
	k.Name = "billing workers"
	k.SQSSecret = "sqs-secret-of-kworker1"
	k.ExpiresAt = h.now().Add(90*24*time.Hour + 1500*time.Millisecond)
	want := k
	want.Hash, want.Queues, want.CreatedAt = slices.Clone(k.Hash), slices.Clone(k.Queues), h.now()
	got := h.createKey(k)
	wantKey(t, "CreateKey's answer", got, &want)
	wantKey(t, "GetKey after CreateKey", h.getKey("kworker1"), &want)
	for _, tm := range []time.Time{got.CreatedAt, got.ExpiresAt} {
		if tm.Location() != time.UTC {
			t.Errorf("CreateKey's answer has a time in %v, want UTC", tm.Location())
		}
	}
	// The answer is the caller's own: changing it changes nothing stored,
	// and neither does changing the key passed in.
	got.Hash[0]++
	got.Queues[0] = "other"
	k.Hash[1]++
	k.Queues[1] = "other"
	wantKey(t, "GetKey after the caller changed its copies", h.getKey("kworker1"), &want)

	// An operator's key: every tenant, every queue, no expiry, a
	// CreatedAt of the caller's, kept.
	h.clock.Advance(time.Minute)
	op := newKey("kop")
	op.Tenant, op.Role, op.CreatedAt = store.AllTenants, store.RoleAdmin, epoch.Add(-time.Hour)
	wantKey(t, "CreateKey of an operator's key", h.createKey(op), &op)
	if got := h.getKey("kop"); len(got.Queues) != 0 || !got.ExpiresAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Fatalf("an operator's key reads back as %+v", got)
	}
	wantKey(t, "GetKey of an operator's key", h.getKey("kop"), &op)

	// The default tenant, and every role.
	for i, role := range []string{store.RoleReader, store.RoleProducer, store.RoleWorker, store.RoleAdmin} {
		k := newKey(fmt.Sprintf("kdefault%d", i))
		k.Tenant, k.Role = "", role
		want := k
		want.CreatedAt = h.now()
		h.createKey(k)
		wantKey(t, "a key of the default tenant", h.getKey(k.ID), &want)
	}
}

func testKeyDuplicate(t *testing.T, h *harness) {
	first := newKey("kdup")
	first.Name = "first"
	want := first
	want.CreatedAt = h.now()
	h.createKey(first)

	h.clock.Advance(time.Second)
	second := newKey("kdup")
	second.Name, second.Role, second.Hash = "second", store.RoleAdmin, bytes.Repeat([]byte{7}, 32)
	got, err := h.keys().CreateKey(h.ctx, second)
	if !errors.Is(err, store.ErrDuplicate) || got != nil {
		t.Fatalf("CreateKey of a taken ID = %+v, %v; want ErrDuplicate", got, err)
	}
	if c := store.Code(err); c != "duplicate" {
		t.Errorf("Code of the duplicate = %q, want duplicate", c)
	}
	wantKey(t, "the first key after the duplicate", h.getKey("kdup"), &want)
	if n := len(h.listKeys()); n != 1 {
		t.Fatalf("%d keys after a refused duplicate, want 1", n)
	}
}

func testKeyInvalid(t *testing.T, h *harness) {
	bad := map[string]func(k *store.APIKey){
		"unknown role":    func(k *store.APIKey) { k.Role = "root" },
		"no role":         func(k *store.APIKey) { k.Role = "" },
		"no hash":         func(k *store.APIKey) { k.Hash = nil },
		"bad tenant":      func(k *store.APIKey) { k.Tenant = "bad tenant!" },
		"no id":           func(k *store.APIKey) { k.ID = "" },
		"bad id":          func(k *store.APIKey) { k.ID = "k 1" },
		"bad queue":       func(k *store.APIKey) { k.Queues = []string{"mail", "no queue"} },
		"long name":       func(k *store.APIKey) { k.Name = string(bytes.Repeat([]byte{'n'}, store.MaxNameLen+1)) },
		"long tenant":     func(k *store.APIKey) { k.Tenant = string(bytes.Repeat([]byte{'t'}, store.MaxNameLen+1)) },
		"tenant wildcard": func(k *store.APIKey) { k.Tenant = "acme*" },
		"long sqs secret": func(k *store.APIKey) { k.SQSSecret = string(bytes.Repeat([]byte{'s'}, store.MaxNameLen+1)) },
		"nul sqs secret":  func(k *store.APIKey) { k.SQSSecret = "a\x00b" },
	}
	for what, spoil := range bad {
		k := newKey("kbad")
		spoil(&k)
		got, err := h.keys().CreateKey(h.ctx, k)
		if !errors.Is(err, store.ErrInvalid) || got != nil {
			t.Errorf("CreateKey with %s = %+v, %v; want ErrInvalid", what, got, err)
			continue
		}
		if c := store.Code(err); c != "invalid" && c != "too_large" {
			t.Errorf("Code of CreateKey with %s = %q, want invalid or too_large", what, c)
		}
	}
	if keys := h.listKeys(); len(keys) != 0 {
		t.Fatalf("refused keys were stored: %+v", keys[0])
	}
	if _, err := h.keys().GetKey(h.ctx, "kbad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey of a refused key = %v, want ErrNotFound", err)
	}
	// IDs that no key can have are refused by the other calls too.
	for _, id := range []string{"", "k 1"} {
		if _, err := h.keys().GetKey(h.ctx, id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetKey(%q) = %v, want ErrInvalid", id, err)
		}
		if err := h.keys().RevokeKey(h.ctx, id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("RevokeKey(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

func testKeyList(t *testing.T, h *harness) {
	if keys := h.listKeys(); len(keys) != 0 {
		t.Fatalf("ListKeys of an empty store: %d keys", len(keys))
	}
	want := map[string]store.APIKey{}
	// Byte order: upper case before lower, digits before both.
	for _, id := range []string{"kb", "ka", "kc", "kB", "k1"} {
		k := newKey(id)
		k.Name = "key " + id
		k.Queues = []string{"q-" + id}
		if id == "ka" {
			k.SQSSecret = "sqs secret of ka"
		}
		w := k
		w.CreatedAt = h.now()
		h.createKey(k)
		want[id] = w
		h.clock.Advance(time.Millisecond)
	}
	if err := h.keys().RevokeKey(h.ctx, "kb"); err != nil {
		t.Fatal(err)
	}
	w := want["kb"]
	w.RevokedAt = h.now()
	want["kb"] = w

	keys := h.listKeys()
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{"k1", "kB", "ka", "kb", "kc"}) {
		t.Fatalf("ListKeys IDs = %v, want [k1 kB ka kb kc] (the revoked one included, in byte order)", ids)
	}
	for _, k := range keys {
		if k.Hash != nil {
			t.Errorf("ListKeys returned key %s with its hash", k.ID)
		}
		w := want[k.ID]
		w.Hash = nil
		if w.SQSSecret != "" { // listed as set, never shown
			w.SQSSecret = store.SQSSecretHidden
		}
		wantKey(t, "listed key "+k.ID, k, &w)
	}
	if k := h.getKey("ka"); k.SQSSecret != "sqs secret of ka" {
		t.Errorf("GetKey(ka).SQSSecret = %q after a listing, want it as created", k.SQSSecret)
	}
	// The hashes are still stored.
	if k := h.getKey("kb"); !bytes.Equal(k.Hash, want["kb"].Hash) {
		t.Fatal("GetKey after ListKeys lost the hash")
	}
}

func testKeyRevoke(t *testing.T, h *harness) {
	h.createKey(newKey("krev"))
	h.createKey(newKey("kother"))
	h.clock.Advance(time.Minute)
	revokedAt := h.now()
	if err := h.keys().RevokeKey(h.ctx, "krev"); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	k := h.getKey("krev")
	if !k.RevokedAt.Equal(revokedAt) {
		t.Fatalf("RevokedAt = %v, want the store's clock %v", k.RevokedAt, revokedAt)
	}
	if k.Usable(h.now()) {
		t.Fatal("a revoked key is usable")
	}
	// Again, later: a no-op that keeps the first time.
	h.clock.Advance(time.Hour)
	if err := h.keys().RevokeKey(h.ctx, "krev"); err != nil {
		t.Fatalf("RevokeKey again: %v", err)
	}
	if k := h.getKey("krev"); !k.RevokedAt.Equal(revokedAt) {
		t.Fatalf("RevokedAt after a second revoke = %v, want the first %v", k.RevokedAt, revokedAt)
	}
	// Other keys are left alone.
	if k := h.getKey("kother"); !k.RevokedAt.IsZero() || !k.Usable(h.now()) {
		t.Fatalf("revoking one key touched another: %+v", k)
	}
}

func testKeyUnknown(t *testing.T, h *harness) {
	h.createKey(newKey("kthere"))
	var nf *store.NotFoundError
	if err := h.keys().RevokeKey(h.ctx, "knope"); !errors.Is(err, store.ErrNotFound) || !errors.As(err, &nf) || nf.Name != "knope" {
		t.Errorf("RevokeKey of an unknown key = %v, want a *store.NotFoundError naming it", err)
	}
	k, err := h.keys().GetKey(h.ctx, "knope")
	if !errors.Is(err, store.ErrNotFound) || k != nil || !errors.As(err, &nf) || nf.Name != "knope" {
		t.Errorf("GetKey of an unknown key = %+v, %v; want a *store.NotFoundError naming it", k, err)
	}
	if c := store.Code(err); c != "not_found" {
		t.Errorf("Code = %q, want not_found", c)
	}
	if keys := h.listKeys(); len(keys) != 1 {
		t.Fatalf("RevokeKey of an unknown key added one: %d keys", len(keys))
	}
}

func testKeyUsable(t *testing.T, h *harness) {
	k := newKey("kexp")
	k.ExpiresAt = h.now().Add(time.Hour)
	h.createKey(k)
	h.createKey(newKey("kforever"))
	if got := h.getKey("kexp"); !got.Usable(h.now()) || !got.Usable(h.now().Add(time.Hour-time.Millisecond)) {
		t.Fatalf("a key an hour before it expires is not usable: %+v", got)
	}
	h.clock.Advance(time.Hour)
	if got := h.getKey("kexp"); got.Usable(h.now()) {
		t.Fatalf("a key at its ExpiresAt is usable: %+v", got)
	}
	if got := h.getKey("kforever"); !got.Usable(h.now().Add(100 * 365 * 24 * time.Hour)) {
		t.Fatalf("a key without ExpiresAt stopped being usable: %+v", got)
	}
	if err := h.keys().RevokeKey(h.ctx, "kforever"); err != nil {
		t.Fatal(err)
	}
	if got := h.getKey("kforever"); got.Usable(h.now()) {
		t.Fatalf("a revoked key without ExpiresAt is usable: %+v", got)
	}
}

func testKeyClosed(t *testing.T, h *harness) {
	ks := h.keys()
	h.createKey(newKey("kclosed"))
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := h.ctx
	calls := map[string]func() error{
		"CreateKey": func() error { _, err := ks.CreateKey(ctx, newKey("knew")); return err },
		"GetKey":    func() error { _, err := ks.GetKey(ctx, "kclosed"); return err },
		"ListKeys":  func() error { _, err := ks.ListKeys(ctx); return err },
		"RevokeKey": func() error { return ks.RevokeKey(ctx, "kclosed") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
