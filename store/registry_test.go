package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/spoolrun/spool/store"
)

// fakeStore is the store a fake backend opens: only its URL matters.
type fakeStore struct {
	store.Store
	url string
}

// fakeMigrator reports a fixed version.
type fakeMigrator struct {
	current int
	closed  *bool
}

func (m fakeMigrator) Latest() int { return 2 }
func (m fakeMigrator) Status(context.Context) (*store.MigrationStatus, error) {
	return &store.MigrationStatus{Backend: "fake", Where: "box 7", Current: m.current, Latest: 2}, nil
}

func (m fakeMigrator) Migrate(context.Context, int) ([]store.MigrationStep, error) { return nil, nil }
func (m fakeMigrator) Script(int, int) (string, error)                             { return "", store.ErrUnsupported }
func (m fakeMigrator) Close() error                                                { *m.closed = true; return nil }

// register registers a fake backend under scheme (unique per test: the
// registry is global) whose stores are at version current.
func register(t *testing.T, scheme string, current int, suffixes ...string) *bool {
	t.Helper()
	closed := new(bool)
	store.Register(scheme, store.Backend{
		Name: "fake-" + scheme,
		Open: func(_ context.Context, raw string, _ store.OpenOptions) (store.Store, error) {
			return fakeStore{url: raw}, nil
		},
		Migrator: func(context.Context, string) (store.Migrator, error) {
			return fakeMigrator{current: current, closed: closed}, nil
		},
		Suffixes: suffixes,
	})
	return closed
}

func TestRegistryOpensByScheme(t *testing.T) {
	t.Parallel()
	register(t, "fake-a", 1, ".fakea")
	register(t, "Fake-B", 1)
	ctx := context.Background()
	for raw, backend := range map[string]string{
		"fake-a:x":         "fake-fake-a",
		"FAKE-A://h/x?y=1": "fake-fake-a",
		"fake-b:x":         "fake-Fake-B",
		"data/jobs.FakeA":  "fake-fake-a", // a bare path, by its ending
		"/abs/jobs.fakea":  "fake-fake-a",
		"C:/jobs.fakea":    "fake-fake-a", // a drive letter is not a scheme
	} {
		b, err := store.Lookup(raw)
		if err != nil || b.Name != backend {
			t.Errorf("Lookup(%q) = %q, %v; want %q", raw, b.Name, err, backend)
			continue
		}
		st, err := store.Open(ctx, raw, store.OpenOptions{})
		if fs, ok := st.(fakeStore); err != nil || !ok || fs.url != raw {
			t.Errorf("Open(%q) = %v, %v; want the backend given the whole URL", raw, st, err)
		}
	}
	schemes := store.Schemes()
	if !strings.Contains(strings.Join(schemes, ","), "fake-a,fake-b") {
		t.Errorf("Schemes() = %v; want fake-a and fake-b, lower case, sorted", schemes)
	}
}

func TestRegistryRefusesUnknownStores(t *testing.T) {
	t.Parallel()
	register(t, "fake-c", 1, ".fakec")
	for raw, scheme := range map[string]string{
		"nosuch://u:secret@h/db": "nosuch",
		"jobs.txt":               "", // a bare path whose ending no backend claims
		"x:jobs":                 "", // one letter is a drive, so this is a bare path too
		"":                       "",
	} {
		_, err := store.Open(context.Background(), raw, store.OpenOptions{})
		var ue *store.UnknownStoreError
		if !errors.As(err, &ue) || !errors.Is(err, store.ErrInvalid) || ue.Scheme != scheme {
			t.Errorf("Open(%q) = %v; want an *UnknownStoreError for scheme %q matching ErrInvalid", raw, err, scheme)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "secret") || !strings.Contains(msg, "fake-c") {
			t.Errorf("Open(%q): %q should list the registered schemes and hide the password", raw, msg)
		}
		if scheme == "" && !strings.Contains(msg, ".fakec") {
			t.Errorf("Open(%q): %q should list the endings of bare paths", raw, msg)
		}
	}
}

func TestRegistryMustExist(t *testing.T) {
	t.Parallel()
	closedNew := register(t, "fake-new", 0)
	closedOld := register(t, "fake-old", 1)
	ctx := context.Background()
	_, err := store.Open(ctx, "fake-new://u:pw@h/x", store.OpenOptions{MustExist: true})
	var nf *store.NotFoundError
	if !errors.As(err, &nf) || nf.Resource != "store" || !strings.Contains(nf.Name, "box 7 has no Spool tables") ||
		strings.Contains(err.Error(), "pw@") {
		t.Fatalf("MustExist on a store at version 0: %v", err)
	}
	if !*closedNew {
		t.Error("the migrator used for MustExist was not closed")
	}
	if _, err := store.Open(ctx, "fake-new:x", store.OpenOptions{}); err != nil {
		t.Fatalf("without MustExist the store is created: %v", err)
	}
	if _, err := store.Open(ctx, "fake-old:x", store.OpenOptions{MustExist: true}); err != nil || !*closedOld {
		t.Fatalf("MustExist on an existing store: %v (migrator closed: %v)", err, *closedOld)
	}
}

func TestRegisterPanicsOnMistakes(t *testing.T) {
	t.Parallel()
	register(t, "fake-dup", 1)
	ok := store.Backend{Name: "x", Open: func(context.Context, string, store.OpenOptions) (store.Store, error) { return nil, nil }}
	for name, f := range map[string]func(){
		"twice":      func() { store.Register("FAKE-DUP", ok) },
		"no scheme":  func() { store.Register("", ok) },
		"bad scheme": func() { store.Register("1x", ok) },
		"no name":    func() { store.Register("fake-noname", store.Backend{Open: ok.Open}) },
		"no open":    func() { store.Register("fake-noopen", store.Backend{Name: "x"}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"postgres://u:secret@h/db?schema=x": "postgres://u:xxxxx@h/db?schema=x",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"sqlite:./spool.db":                 "sqlite:./spool.db",
		"data/jobs.db":                      "data/jobs.db",
		"postgres://u:sec%zzret@h/db":       "postgres://…", // unparsable, and it may hold a password
	} {
		if got := store.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Store URLs come from flags and the environment: Lookup and RedactURL
// must take anything, and a password must never survive RedactURL.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"postgres://u:secret@h/db?schema=x", "sqlite:./x.db", "data/jobs.db", "C:/x.db",
		"postgres://u:sec%zzret@h/db", "x://:pw@", "", "postgresql://u:p@[::1]:5432/db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := store.RedactURL(raw)
		if u, err := url.Parse(got); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "xxxxx" {
				t.Fatalf("RedactURL(%q) = %q keeps a password", raw, got)
			}
		}
		if _, err := store.Lookup(raw); err != nil && !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("Lookup(%q) = %v; want nil or ErrInvalid", raw, err)
		}
	})
}
