package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// Spool's own parameters leave the URL before pgx sees it.
func TestParseURL(t *testing.T) {
	t.Parallel()
	type parsed struct {
		conn                  string
		schema                string
		pollOnly, skipMigrate bool
	}
	for raw, want := range map[string]parsed{
		"postgres://u@h/db":   {conn: "postgres://u@h/db"},
		"postgresql://u@h/db": {conn: "postgresql://u@h/db"},
		"postgres://u:pw@h:5433/db?sslmode=disable&schema=jobs&poll_only=1&skip_migrate=true": {
			conn: "postgres://u:pw@h:5433/db?sslmode=disable", schema: "jobs", pollOnly: true, skipMigrate: true},
		"postgres://h/db?poll_only&pool_max_conns=8&poll_only=false": {conn: "postgres://h/db?pool_max_conns=8"},
		"postgres://h/db?skip_migrate":                               {conn: "postgres://h/db", skipMigrate: true},
	} {
		conn, cfg, err := postgres.ParseURL(raw)
		got := parsed{conn: conn, schema: cfg.Schema, pollOnly: cfg.PollOnly, skipMigrate: cfg.SkipMigrate}
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"postgres://h/db?poll_only=maybe", "postgres://h/db?schema=", "postgres://u:secret@h:port/db"} {
		_, _, err := postgres.ParseURL(raw)
		if !errors.Is(err, store.ErrInvalid) || strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) = %v; want an error matching ErrInvalid, without the password", raw, err)
		}
	}
}

func TestRegisteredNamespaces(t *testing.T) {
	t.Parallel()
	b, err := store.Lookup("postgresql://h/db")
	if err != nil || b.Name != "postgres" || b.Namespaces == nil || b.MigratesOnOpen {
		t.Fatalf("Lookup = %+v, %v", b, err)
	}
	in := b.Namespaces.In
	got, ok, err := in("postgres://u@h/db?sslmode=disable&skip_migrate=1&poll_only=1", "scratch_1")
	q := mustQuery(t, got)
	if err != nil || !ok || q.Get("schema") != "scratch_1" || q.Has("skip_migrate") || q.Get("poll_only") != "1" {
		t.Fatalf("In: %q, %v, %v", got, ok, err)
	}
	if got, ok, err := in("postgres://h/db?schema=mine", "scratch_1"); err != nil || ok || got != "postgres://h/db?schema=mine" {
		t.Fatalf("In on a URL that names a schema: %q, %v, %v; want it left alone", got, ok, err)
	}
	if err := b.Namespaces.Drop(context.Background(), "postgres://h/db"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Drop without a schema = %v; want a refusal", err)
	}
}

// The registry opens, checks, migrates and drops a store in a schema.
func TestRegisteredBackend(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := pgtest.Schema(t)
	raw := pgtest.URL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(postgres.ParamSchema, schema)
	u.RawQuery = q.Encode()
	raw = u.String()
	b, err := store.Lookup(raw)
	if err != nil {
		t.Fatal(err)
	}

	// A schema without Spool's tables does not hold a store.
	var nf *store.NotFoundError
	if _, err := store.Open(ctx, raw, store.OpenOptions{MustExist: true}); !errors.As(err, &nf) ||
		!strings.Contains(nf.Name, "schema "+schema+" has no Spool tables") {
		t.Fatalf("MustExist on an empty schema: %v", err)
	}
	m, err := b.Migrator(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil || st.Backend != "postgres" || st.Schema != schema || st.Where != "schema "+schema ||
		st.Current != 0 || len(st.Pending) != knownAbove(t, 0) {
		t.Fatalf("Status of an empty schema = %+v, %v", st, err)
	}
	steps, err := m.Migrate(ctx, m.Latest())
	if err != nil || len(steps) != knownAbove(t, 0) || steps[0].Down {
		t.Fatalf("Migrate up = %+v, %v", steps, err)
	}
	s, err := store.Open(ctx, raw+"&"+postgres.ParamSkipMigrate+"=1", store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatalf("open the migrated schema: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if steps, err := m.Migrate(ctx, 0); err != nil || len(steps) != knownAbove(t, 0) || !steps[0].Down {
		t.Fatalf("Migrate down = %+v, %v", steps, err)
	}
	if script, err := m.Script(0, m.Latest()); err != nil || !strings.Contains(script, "CREATE TABLE "+schema+".jobs") {
		t.Fatalf("Script = %q, %v", script, err)
	}

	// Drop removes the schema itself.
	if err := b.Namespaces.Drop(ctx, raw); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background()) //nolint:errcheck // test cleanup
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema %s after Drop: %d (%v)", schema, n, err)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// ParseURL reads store URLs from flags and the environment: it must take
// anything, refuse with ErrInvalid, and leave none of Spool's parameters
// for pgx.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"postgres://u@h/db", "postgres://u:pw@h:5433/db?sslmode=disable&schema=jobs&poll_only=1&skip_migrate=true",
		"postgres://h/db?poll_only&pool_max_conns=8&poll_only=false", "postgres://h/db?schema=", "postgres://u:secret@h:port/db", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		conn, cfg, err := postgres.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("ParseURL(%q) = %v; want ErrInvalid", raw, err)
			}
			return
		}
		u, err := url.Parse(conn)
		if err != nil {
			t.Fatalf("ParseURL(%q) gave %q, which does not parse: %v", raw, conn, err)
		}
		for _, p := range []string{postgres.ParamSchema, postgres.ParamPollOnly, postgres.ParamSkipMigrate} {
			if u.Query().Has(p) {
				t.Fatalf("ParseURL(%q) left %s in %q", raw, p, conn)
			}
		}
		if q, _ := url.ParseQuery(mustURL(t, raw).RawQuery); q.Has(postgres.ParamSchema) && cfg.Schema == "" {
			t.Fatalf("ParseURL(%q) lost the schema", raw)
		}
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
