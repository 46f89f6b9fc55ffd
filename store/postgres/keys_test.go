package postgres_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// TestKeysMigrationDownUp: migration 0005 comes off cleanly (the api_keys
// table goes, with its keys) and goes back on with an empty, working table.
func TestKeysMigrationDownUp(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{})
	ctx := t.Context()
	pool := s.Pool()
	ks := s.Capabilities().Keys
	if ks == nil {
		t.Fatal("no Capabilities().Keys")
	}
	hash := bytes.Repeat([]byte{1}, 32)
	if _, err := ks.CreateKey(ctx, store.APIKey{ID: "k1", Hash: hash, Tenant: "acme", Role: store.RoleReader, Queues: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	exists := func() (ok bool) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+".api_keys").Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !exists() {
		t.Fatal("no api_keys table after Open")
	}
	latest := postgres.LatestVersion()
	if steps, err := postgres.Migrate(ctx, pool, schema, 4); err != nil || len(steps) != knownAbove(t, 4) ||
		!steps[len(steps)-1].Down || steps[len(steps)-1].Version != 5 {
		t.Fatalf("Migrate down to 4: %+v, %v", steps, err)
	}
	if exists() {
		t.Fatal("the api_keys table is left after down")
	}
	if _, err := ks.GetKey(ctx, "k1"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey without the table = %v, want a database error", err)
	}
	if steps, err := postgres.Migrate(ctx, pool, schema, latest); err != nil || len(steps) != knownAbove(t, 4) || steps[0].Version != 5 {
		t.Fatalf("Migrate up again: %+v, %v", steps, err)
	}
	if _, err := ks.GetKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey after down and up = %v, want ErrNotFound", err)
	}
	if _, err := ks.CreateKey(ctx, store.APIKey{ID: "k1", Hash: hash, Tenant: store.AllTenants, Role: store.RoleAdmin}); err != nil {
		t.Fatalf("CreateKey after down and up: %v", err)
	}
}
