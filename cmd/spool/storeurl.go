package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// defaultStoreURL is used when neither --store nor $SPOOL_STORE is given.
const defaultStoreURL = "sqlite:./spool.db"

// storeURL returns the store the command should use: --store when given,
// else $SPOOL_STORE, else the default.
func (a *app) storeURL(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("store"); f != nil && f.Changed {
		return a.storeFlag
	}
	if v := a.getenv("SPOOL_STORE"); v != "" {
		return v
	}
	return defaultStoreURL
}

// storeFlagGiven reports whether --store was given on the command line.
// Commands that make throwaway databases (bench, demo) use one only then.
func storeFlagGiven(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("store")
	return f != nil && f.Changed
}

// unsupportedStoreError is a store URL this build recognises but cannot
// open. It exits with code 2.
type unsupportedStoreError struct {
	scheme string
}

func (e *unsupportedStoreError) Error() string {
	return e.scheme + " store not available in this build yet"
}

// storeLocation is a parsed store URL.
type storeLocation struct {
	scheme string // "sqlite" (the only one this build opens) or "postgres"
	path   string // sqlite: the database file
}

// parseStoreURL understands sqlite:PATH, sqlite://PATH, a bare path ending
// in .db, .sqlite or .sqlite3, and postgres:// or postgresql:// URLs.
func parseStoreURL(raw string) (storeLocation, error) {
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return storeLocation{scheme: "postgres"}, nil
	case strings.HasPrefix(lower, "sqlite://"):
		return sqliteLocation(raw, raw[len("sqlite://"):])
	case strings.HasPrefix(lower, "sqlite:"):
		return sqliteLocation(raw, raw[len("sqlite:"):])
	case strings.HasSuffix(lower, ".db"), strings.HasSuffix(lower, ".sqlite"), strings.HasSuffix(lower, ".sqlite3"):
		return sqliteLocation(raw, raw)
	}
	return storeLocation{}, usagef("unknown store %q: use sqlite:PATH, a PATH ending in .db, or postgres://...", raw)
}

func sqliteLocation(raw, path string) (storeLocation, error) {
	if path == "" {
		return storeLocation{}, usagef("store %q names no file: use sqlite:PATH", raw)
	}
	return storeLocation{scheme: "sqlite", path: path}, nil
}

// openStore opens the store a URL names. Every command opens its store
// here, so a new backend is one more case.
func openStore(url string) (store.Store, error) {
	loc, err := parseStoreURL(url)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "sqlite":
		st, err := sqlite.Open(loc.path, sqlite.Config{})
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", url, err)
		}
		return st, nil
	default:
		return nil, &unsupportedStoreError{scheme: loc.scheme}
	}
}

// noStoreError says a command that only reads or changes existing jobs was
// pointed at a SQLite file that does not exist. It matches store.ErrNotFound.
type noStoreError struct{ path string }

func (e *noStoreError) Error() string {
	return fmt.Sprintf("no store at %s (use --store or $SPOOL_STORE to name one; spool enqueue creates it)", e.path)
}

func (e *noStoreError) Is(target error) bool { return target == store.ErrNotFound }

// openExisting opens the command's store, refusing a SQLite file that does
// not exist yet instead of creating an empty one: a mistyped path should
// not look like an empty store.
func (a *app) openExisting(cmd *cobra.Command) (store.Store, error) {
	url := a.storeURL(cmd)
	loc, err := parseStoreURL(url)
	if err != nil {
		return nil, err
	}
	if loc.scheme == "sqlite" {
		if _, err := os.Stat(loc.path); errors.Is(err, fs.ErrNotExist) {
			return nil, &noStoreError{path: loc.path}
		}
	}
	return openStore(url)
}

// openOrCreate opens the command's store, creating a SQLite file if needed.
func (a *app) openOrCreate(cmd *cobra.Command) (store.Store, error) {
	return openStore(a.storeURL(cmd))
}
