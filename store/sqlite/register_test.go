package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

func TestPathFromURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"sqlite:./spool.db":       "./spool.db",
		"SQLite:./spool.db":       "./spool.db",
		"sqlite:///var/x/jobs.db": "/var/x/jobs.db",
		"sqlite://rel/jobs":       "rel/jobs",
		"data/jobs.db":            "data/jobs.db",
		"/abs/jobs.sqlite3":       "/abs/jobs.sqlite3",
	} {
		got, err := sqlite.PathFromURL(raw)
		if err != nil || got != want {
			t.Errorf("PathFromURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"sqlite:", "sqlite://"} {
		if _, err := sqlite.PathFromURL(raw); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PathFromURL(%q) = %v; want an error matching ErrInvalid", raw, err)
		}
	}
}

// The registry opens sqlite: URLs and bare .db paths, and runs their
// migrations through the same Migrator the CLI uses.
func TestRegisteredBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	for _, raw := range []string{"sqlite:" + path, path, "sqlite://" + path} {
		b, err := store.Lookup(raw)
		if err != nil || b.Name != "sqlite" || !b.MigratesOnOpen || b.Namespaces != nil {
			t.Fatalf("Lookup(%q) = %+v, %v", raw, b, err)
		}
	}
	b, _ := store.Lookup(path)

	// A file that is not there: Open with MustExist and Status refuse it
	// without creating it.
	var nf *store.NotFoundError
	if _, err := store.Open(ctx, "sqlite:"+path, store.OpenOptions{MustExist: true}); !errors.As(err, &nf) || nf.Name != path {
		t.Fatalf("MustExist on a missing file: %v", err)
	}
	m, err := b.Migrator(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Status(ctx); !errors.As(err, &nf) || nf.Resource != "store" {
		t.Fatalf("Status of a missing file: %v", err)
	}
	if _, err := sqlite.MigrationStatus(ctx, path); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a status read created the file: %v", err)
	}

	// Migrate applies every migration, once; anything but the newest version is refused.
	if _, err := m.Migrate(ctx, 0); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "never migrated down") {
		t.Fatalf("Migrate(0) = %v; want a refusal", err)
	}
	steps, err := m.Migrate(ctx, m.Latest())
	if err != nil || len(steps) != knownAbove(0) || steps[0].Version != 1 || steps[0].Down {
		t.Fatalf("Migrate on a new file = %+v, %v", steps, err)
	}
	if steps, err := m.Migrate(ctx, m.Latest()); err != nil || len(steps) != 0 {
		t.Fatalf("second Migrate = %+v, %v; want nothing to do", steps, err)
	}
	st, err := m.Status(ctx)
	if err != nil || st.Backend != "sqlite" || st.Path != path || st.Where != "file "+path || st.Current != st.Latest ||
		len(st.Applied) != knownAbove(0) || len(st.Pending) != 0 || st.Applied[0].AppliedAt.IsZero() {
		t.Fatalf("Status after Migrate = %+v, %v", st, err)
	}

	// Now it exists: MustExist opens it.
	s, err := store.Open(ctx, path, store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	script, err := m.Script(0, m.Latest())
	if err != nil || !strings.Contains(script, "CREATE TABLE") || !strings.Contains(script, "0001_") {
		t.Fatalf("Script(0, latest) = %q, %v", script, err)
	}
	if down, err := m.Script(m.Latest(), 0); err != nil || !strings.Contains(down, "down") {
		t.Fatalf("Script(latest, 0) = %q, %v", down, err)
	}
	if _, err := m.Script(0, 99); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Script(0, 99) = %v; want ErrInvalid", err)
	}
}
