package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/store"
	_ "github.com/spoolrun/spool/store/postgres" // registers postgres:// and postgresql://
	_ "github.com/spoolrun/spool/store/remote"   // registers http:// and https:// (spool serve)
	_ "github.com/spoolrun/spool/store/sqlite"   // registers sqlite: and paths ending in .db
)

// defaultStoreURL is used when neither --store nor $SPOOL_STORE is given.
const defaultStoreURL = "sqlite:./spool.db"

// storeURL returns the store the command should use: --store when given,
// else $SPOOL_STORE, else the default.
func (a *app) storeURL(cmd *cobra.Command) string {
	if storeFlagGiven(cmd) {
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

// displayURL is a store URL fit for logs and messages: without a password.
func displayURL(raw string) string { return store.RedactURL(raw) }

// openStore opens the store a URL names, with the backend registered for
// its scheme (see store.Register): every command opens its store here, and
// a new backend is one more blank import above. opts.Logger receives the
// store's operational messages (a PostgreSQL listener reconnecting); with
// opts.MustExist a store that does not exist yet is a *noStoreError.
func openStore(ctx context.Context, raw string, opts store.OpenOptions) (store.Store, error) {
	st, err := store.Open(ctx, raw, opts)
	var nf *store.NotFoundError
	var unknown *store.UnknownStoreError
	switch {
	case err == nil:
		return st, nil
	case errors.As(err, &nf) && nf.Resource == "store":
		return nil, &noStoreError{where: nf.Name, err: err}
	case errors.As(err, &unknown):
		return nil, err // it names the URL already
	}
	return nil, fmt.Errorf("open store %s: %w", displayURL(raw), err)
}

// noStoreError says a command that only reads or changes existing jobs was
// pointed at a store that does not exist: a SQLite file that is not there,
// or a PostgreSQL schema without Spool's tables. It matches store.ErrNotFound.
type noStoreError struct {
	where string
	err   error // the store's *store.NotFoundError
}

func (e *noStoreError) Error() string {
	return fmt.Sprintf("no store at %s (use --store or $SPOOL_STORE to name one; spool enqueue or spool migrate up creates it)", e.where)
}

func (e *noStoreError) Unwrap() error { return e.err }

// openExisting opens the command's store, refusing a SQLite file or a
// PostgreSQL schema that does not exist yet instead of creating an empty
// one: a mistyped path or schema should not look like an empty store.
func (a *app) openExisting(cmd *cobra.Command) (store.Store, error) {
	return openStore(cmd.Context(), a.storeURL(cmd), store.OpenOptions{MustExist: true})
}

// openOrCreate opens the command's store, creating a SQLite file or a
// PostgreSQL schema if needed.
func (a *app) openOrCreate(cmd *cobra.Command) (store.Store, error) {
	return openStore(cmd.Context(), a.storeURL(cmd), store.OpenOptions{})
}
