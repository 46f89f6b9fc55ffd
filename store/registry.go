package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Backend is a storage backend's entry in the registry: how to open the
// store a URL names and how to run its schema migrations. A backend package
// registers itself in an init function (see Register), so importing it,
// even blank, makes its URL schemes work with Open.
type Backend struct {
	// Name names the backend in messages and migration status, such as
	// "sqlite" or "postgres". Required.
	Name string

	// Open opens the store rawURL names, creating it (and migrating it to
	// the newest version) when the backend does that on open. rawURL is the
	// whole URL, scheme included; errors never include its password.
	// Required.
	Open func(ctx context.Context, rawURL string, opts OpenOptions) (Store, error)

	// Migrator returns the migration operations of the store rawURL names,
	// without opening it as a store and, until a method needs it, without
	// connecting. The caller closes it. Nil when the backend keeps no schema
	// of its own.
	Migrator func(ctx context.Context, rawURL string) (Migrator, error)

	// MigratesOnOpen reports that the backend's stores bring themselves to
	// the newest version whenever they are opened and are never migrated
	// down (SQLite): their Migrator's Migrate accepts only the newest
	// version.
	MigratesOnOpen bool

	// Namespaces is set by backends that keep several stores apart in one
	// database (PostgreSQL schemas), so that tools can work in a store of
	// their own beside the user's. Nil otherwise.
	Namespaces *Namespaces

	// Suffixes lists file name endings, such as ".db", that make a bare path
	// (a store URL without a scheme) name a store of this backend. Matched
	// without regard to case.
	Suffixes []string
}

// Namespaces lets tools put a store in a namespace of its own inside the
// database a URL names: a PostgreSQL schema.
type Namespaces struct {
	// In returns rawURL changed to name the store in namespace name, and
	// true; or rawURL unchanged and false when it already names a namespace,
	// which tools then use as given. Options that would stop the store from
	// being created there (PostgreSQL's skip_migrate) are left out.
	In func(rawURL, name string) (string, bool, error)
	// Drop deletes the namespace rawURL names, with the store and every job
	// in it. It refuses a URL that names no namespace explicitly, so that a
	// default namespace, where real jobs live, is never dropped by accident.
	Drop func(ctx context.Context, rawURL string) error
}

// OpenOptions tunes Open. The zero value is ready to use.
type OpenOptions struct {
	// Logger receives the store's operational messages (a PostgreSQL
	// listener reconnecting, a migration applied). Default: discard.
	Logger *slog.Logger
	// MustExist refuses to create a store: when the URL names none yet (a
	// SQLite file that is not there, a PostgreSQL schema without Spool's
	// tables), Open fails with a *NotFoundError for Resource "store",
	// matching ErrNotFound, instead of creating an empty one. Open checks it
	// through the backend's Migrator, so it applies only to backends that
	// have one. Default: false.
	MustExist bool
}

// Migrator runs the schema migrations of the one store a URL names. Methods
// connect when they need to; Close releases the connection.
type Migrator interface {
	// Latest returns the newest schema version this build knows. It does
	// not connect.
	Latest() int
	// Status reads which migrations the store has and which it lacks,
	// changing nothing. A store that was never migrated is at version 0; a
	// backend whose stores are files reports a missing file as a
	// *NotFoundError (Resource "store") instead.
	Status(ctx context.Context) (*MigrationStatus, error)
	// Migrate moves the store to version to: up, applying the migrations
	// between its version and to, or down, undoing those above to. Version
	// 0 removes every table of the store. Versions outside 0..Latest are
	// refused with a *ValidationError; a store newer than this build knows
	// is refused with an error matching ErrSchema.
	Migrate(ctx context.Context, to int) ([]MigrationStep, error)
	// Script returns SQL that moves the store's schema from version from to
	// version to, for review or to run with the database's own tools. It
	// does not connect: from is what the caller says the store is at. A
	// backend without SQL returns an error matching ErrUnsupported.
	Script(from, to int) (string, error)
	// Close releases the Migrator's connection, if it made one.
	Close() error
}

// MigrationStatus describes a store's schema migrations.
type MigrationStatus struct {
	// Backend is the backend's name, such as "postgres".
	Backend string
	// Where names what holds the store, for people: "schema spool",
	// "file ./spool.db".
	Where string
	// Schema is the PostgreSQL schema the store lives in; empty for other
	// backends.
	Schema string
	// Path is the SQLite file the store lives in; empty for other backends.
	Path string
	// Current is the newest version applied; 0 when none.
	Current int
	// Latest is the newest version this build knows.
	Latest int
	// Applied lists the migrations applied, oldest first, with the time
	// each was applied.
	Applied []MigrationInfo
	// Pending lists the known migrations above Current, in order; their
	// AppliedAt is zero.
	Pending []MigrationInfo
}

// MigrationInfo names one schema migration.
type MigrationInfo struct {
	Version   int
	Name      string
	AppliedAt time.Time // zero when not applied
}

// MigrationStep is one migration Migrate applied or undid.
type MigrationStep struct {
	Version int
	Name    string
	Down    bool // true when the migration was undone
}

// UnknownStoreError refuses a store URL that no registered backend handles:
// its scheme is not registered, or it is a bare path whose ending no backend
// claims. It matches ErrInvalid.
type UnknownStoreError struct {
	URL      string   // the URL as given, without its password
	Scheme   string   // its scheme; empty for a bare path
	Schemes  []string // the registered schemes, sorted
	Suffixes []string // the endings that make a bare path a store, sorted
}

func (e *UnknownStoreError) Error() string {
	registered := "none: import a backend package, such as store/sqlite"
	if len(e.Schemes) > 0 {
		registered = strings.Join(e.Schemes, ", ")
	}
	if e.Scheme != "" {
		return fmt.Sprintf("spool: unknown store %q: no backend for scheme %q (registered: %s)", e.URL, e.Scheme, registered)
	}
	msg := fmt.Sprintf("spool: unknown store %q: give a scheme (registered: %s)", e.URL, registered)
	if len(e.Suffixes) > 0 {
		msg += " or a path ending in " + strings.Join(e.Suffixes, ", ")
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *UnknownStoreError) Unwrap() error { return ErrInvalid }

// registry holds the registered backends. mu guards backends.
var registry struct {
	mu       sync.RWMutex
	backends map[string]Backend // by lower-case scheme
}

// Register makes a backend open the store URLs of scheme (such as "sqlite"
// or "postgres", without the colon; matched without regard to case). Backend
// packages call it from an init function, in the manner of database/sql's
// Register. It panics when scheme is not a URL scheme, is registered
// already, or b lacks a Name or an Open function: those are programming
// errors.
func Register(scheme string, b Backend) {
	if !validScheme(scheme) {
		panic(fmt.Sprintf("spool: Register: %q is not a URL scheme", scheme))
	}
	if b.Name == "" || b.Open == nil {
		panic(fmt.Sprintf("spool: Register(%q): the backend needs a Name and an Open function", scheme))
	}
	scheme = strings.ToLower(scheme)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if _, dup := registry.backends[scheme]; dup {
		panic(fmt.Sprintf("spool: Register: scheme %q is registered twice", scheme))
	}
	if registry.backends == nil {
		registry.backends = map[string]Backend{}
	}
	registry.backends[scheme] = b
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return sortedKeys(registry.backends)
}

// Lookup returns the backend for a store URL: the one registered for its
// scheme, or for a bare path (no scheme) the one whose Suffixes it ends
// with. Anything else is an *UnknownStoreError, which lists what is
// registered.
func Lookup(rawURL string) (Backend, error) {
	scheme, ok := schemeOf(rawURL)
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	if ok {
		if b, found := registry.backends[scheme]; found {
			return b, nil
		}
	} else {
		lower := strings.ToLower(rawURL)
		for _, s := range sortedKeys(registry.backends) {
			b := registry.backends[s]
			for _, suf := range b.Suffixes {
				if strings.HasSuffix(lower, strings.ToLower(suf)) {
					return b, nil
				}
			}
		}
	}
	e := &UnknownStoreError{URL: RedactURL(rawURL), Scheme: scheme, Schemes: sortedKeys(registry.backends)}
	for _, b := range registry.backends {
		for _, suf := range b.Suffixes {
			if !slices.Contains(e.Suffixes, suf) {
				e.Suffixes = append(e.Suffixes, suf)
			}
		}
	}
	slices.Sort(e.Suffixes)
	return Backend{}, e
}

// Open opens the store rawURL names with the backend registered for it (see
// Lookup): "sqlite:PATH" or a path ending in ".db", "postgres://…", and any
// other scheme a registered backend handles. With opts.MustExist it refuses
// to create a store that is not there yet.
func Open(ctx context.Context, rawURL string, opts OpenOptions) (Store, error) {
	b, err := Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.MustExist && b.Migrator != nil {
		if err := mustExist(ctx, b, rawURL); err != nil {
			return nil, err
		}
	}
	return b.Open(ctx, rawURL, opts)
}

// mustExist refuses a store that was never migrated: it does not exist yet.
func mustExist(ctx context.Context, b Backend, rawURL string) error {
	m, err := b.Migrator(ctx, rawURL)
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if st.Current == 0 {
		return &NotFoundError{Resource: "store", Name: fmt.Sprintf("%s (%s has no Spool tables)", RedactURL(rawURL), st.Where)}
	}
	return nil
}

// RedactURL returns a store URL fit for logs and messages: with its
// password, if it has one, replaced by "xxxxx".
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		if strings.Contains(rawURL, "@") { // might hold a password: show only the scheme
			if scheme, ok := schemeOf(rawURL); ok {
				return scheme + "://…"
			}
			return "(a store URL)"
		}
		return rawURL
	}
	if u.User == nil {
		return rawURL
	}
	if _, has := u.User.Password(); !has {
		return rawURL
	}
	return u.Redacted()
}

// schemeOf returns the lower-case scheme of a URL, and false when it has
// none: a bare path. A single letter before the colon is a Windows drive,
// not a scheme.
func schemeOf(raw string) (string, bool) {
	i := strings.IndexByte(raw, ':')
	if i < 2 || !validScheme(raw[:i]) {
		return "", false
	}
	return strings.ToLower(raw[:i]), true
}

// validScheme reports whether s is a URL scheme (RFC 3986): a letter, then
// letters, digits, "+", "-" or ".".
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]Backend) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
