package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestKeysMigration: a file at version 4 (migration 0005's down script
// applied by hand) gets the api keys table back when it is opened, and
// keeps its jobs.
func TestKeysMigration(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var down string
	for _, m := range sqlite.Migrations() {
		if m.Version == 5 {
			down = m.Down
		}
	}
	if down == "" {
		t.Fatal("no migration 5")
	}
	db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{down, `DELETE FROM spool_migrations WHERE version = 5`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if st, err := sqlite.MigrationStatus(ctx, path); err != nil || st.Current != 4 || len(st.Pending) != sqlite.LatestVersion()-4 {
		t.Fatalf("status after the down script: %+v, %v", st, err)
	}

	s = open(t, path)
	if _, err := s.Get(ctx, res[0].ID); err != nil {
		t.Fatalf("the job after the migration: %v", err)
	}
	ks := s.Capabilities().Keys
	if ks == nil {
		t.Fatal("no Capabilities().Keys")
	}
	k := store.APIKey{ID: "k1", Hash: bytes.Repeat([]byte{1}, 32), Tenant: "acme", Role: store.RoleWorker}
	if _, err := ks.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey after the migration: %v", err)
	}
	if _, err := ks.CreateKey(ctx, k); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreateKey again = %v, want ErrDuplicate", err)
	}
}
