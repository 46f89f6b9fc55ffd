package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestKeysMigration: a file at version 4 (the down scripts of migration
// 0005 and later applied by hand) gets the api keys table back when it is opened, and
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
	downTo(t, path, 4)
	if st, err := sqlite.MigrationStatus(ctx, path); err != nil || st.Current != 4 || len(st.Pending) != knownAbove(4) {
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

// downTo takes the file at path down to schema version v by hand: the down
// scripts of every later migration, newest first, and their rows of
// spool_migrations, as an older build of spool left it.
func downTo(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all := sqlite.Migrations()
	for i := len(all) - 1; i >= 0 && all[i].Version > v; i-- {
		for _, q := range []string{all[i].Down, `DELETE FROM spool_migrations WHERE version = ` + strconv.Itoa(all[i].Version)} {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("migration %d down: %s: %v", all[i].Version, q, err)
			}
		}
	}
}
