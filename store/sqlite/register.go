package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/spoolrun/spool/store"
)

// Importing the package registers the "sqlite" scheme with store.Open:
// "sqlite:PATH", "sqlite://PATH", and bare paths ending in .db, .sqlite or
// .sqlite3.
func init() {
	store.Register("sqlite", store.Backend{
		Name:           "sqlite",
		Open:           openURL,
		Migrator:       newMigrator,
		MigratesOnOpen: true,
		Suffixes:       []string{".db", ".sqlite", ".sqlite3"},
	})
}

// PathFromURL returns the file a store URL names: PATH in "sqlite:PATH" and
// "sqlite://PATH" (so "sqlite:///var/jobs.db" is the absolute path
// /var/jobs.db), or the URL itself when it has no scheme. The path is taken
// as written: no query parameters are read from it.
func PathFromURL(rawURL string) (string, error) {
	path := rawURL
	lower := strings.ToLower(rawURL)
	switch {
	case strings.HasPrefix(lower, "sqlite://"):
		path = rawURL[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite:"):
		path = rawURL[len("sqlite:"):]
	}
	if path == "" {
		return "", &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%q names no file: use sqlite:PATH", rawURL)}
	}
	return path, nil
}

func openURL(_ context.Context, rawURL string, opts store.OpenOptions) (store.Store, error) {
	path, err := PathFromURL(rawURL)
	if err != nil {
		return nil, err
	}
	st, err := Open(path, Config{Logger: opts.Logger}) //nolint:contextcheck // Open takes no context
	if err != nil {
		return nil, err
	}
	return st, nil
}

// migrator is the store.Migrator of one file.
type migrator struct{ path string }

func newMigrator(_ context.Context, rawURL string) (store.Migrator, error) {
	path, err := PathFromURL(rawURL)
	if err != nil {
		return nil, err
	}
	return migrator{path: path}, nil
}

func (m migrator) Latest() int { return LatestVersion() }

func (m migrator) Status(ctx context.Context) (*store.MigrationStatus, error) {
	st, err := MigrationStatus(ctx, m.path)
	if err != nil {
		return nil, err
	}
	out := &store.MigrationStatus{Backend: "sqlite", Where: "file " + st.Path, Path: st.Path,
		Current: st.Current, Latest: st.Latest, Applied: []store.MigrationInfo{}, Pending: []store.MigrationInfo{}}
	for _, a := range st.Applied {
		out.Applied = append(out.Applied, store.MigrationInfo{Version: a.Version, Name: a.Name, AppliedAt: a.AppliedAt})
	}
	for _, p := range st.Pending {
		out.Pending = append(out.Pending, store.MigrationInfo{Version: p.Version, Name: p.Name})
	}
	return out, nil
}

// Migrate accepts only the newest version: a SQLite file migrates itself
// up when opened and is never migrated down.
func (m migrator) Migrate(ctx context.Context, to int) ([]store.MigrationStep, error) {
	if latest := LatestVersion(); to != latest {
		return nil, &store.ValidationError{Field: "target version", Reason: fmt.Sprintf(
			"%d: a SQLite file always migrates to the newest version (%d) and is never migrated down; to start over, delete %s", to, latest, m.path)}
	}
	steps, err := Migrate(ctx, m.path, nil)
	if err != nil {
		return nil, err
	}
	out := make([]store.MigrationStep, len(steps))
	for i, s := range steps {
		out[i] = store.MigrationStep{Version: s.Version, Name: s.Name}
	}
	return out, nil
}

func (m migrator) Script(from, to int) (string, error) { return MigrationSQL(from, to) }

func (m migrator) Close() error { return nil }
