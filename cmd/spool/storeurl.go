package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
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

// The query parameters of a postgres:// store URL that Spool reads itself
// and removes before the URL reaches pgx. Every other parameter is pgx's
// (sslmode, pool_max_conns, default_query_exec_mode, ...).
const (
	pgParamSchema      = "schema"       // the schema the store lives in; default "spool"
	pgParamPollOnly    = "poll_only"    // 1/true: no LISTEN, for PgBouncer in transaction mode
	pgParamSkipMigrate = "skip_migrate" // 1/true: refuse an out-of-date schema instead of migrating it
)

// storeLocation is a parsed store URL.
type storeLocation struct {
	scheme string // "sqlite" or "postgres"
	path   string // sqlite: the database file

	// postgres only.
	pgURL       string // the URL for pgx, without Spool's own parameters
	schema      string // Config.Schema; "" for the default
	pollOnly    bool
	skipMigrate bool
}

// parseStoreURL understands sqlite:PATH, sqlite://PATH, a bare path ending
// in .db, .sqlite or .sqlite3, and postgres:// or postgresql:// URLs.
func parseStoreURL(raw string) (storeLocation, error) {
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return postgresLocation(raw)
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

// postgresLocation takes Spool's parameters (schema, poll_only,
// skip_migrate) out of a postgres:// URL and leaves the rest for pgx.
func postgresLocation(raw string) (storeLocation, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return storeLocation{}, usagef("store URL: %v", redactErr(err, raw))
	}
	loc := storeLocation{scheme: "postgres"}
	q := u.Query()
	var errs []error
	if v, ok := q[pgParamSchema]; ok {
		loc.schema = v[len(v)-1]
		if loc.schema == "" {
			errs = append(errs, usagef("store URL: %s= names no schema", pgParamSchema))
		}
	}
	for _, p := range []struct {
		name string
		dst  *bool
	}{{pgParamPollOnly, &loc.pollOnly}, {pgParamSkipMigrate, &loc.skipMigrate}} {
		v, ok := q[p.name]
		if !ok {
			continue
		}
		s := v[len(v)-1]
		if s == "" { // ?poll_only alone means on
			*p.dst = true
			continue
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, usagef("store URL: %s=%q: use 1, true, 0 or false", p.name, s))
		}
		*p.dst = b
	}
	if err := errors.Join(errs...); err != nil {
		return storeLocation{}, err
	}
	q.Del(pgParamSchema)
	q.Del(pgParamPollOnly)
	q.Del(pgParamSkipMigrate)
	u.RawQuery = q.Encode()
	loc.pgURL = u.String()
	return loc, nil
}

// redactErr replaces raw (which may hold a password) in err's message.
func redactErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		return strings.ReplaceAll(msg, raw, u.Redacted())
	}
	return strings.ReplaceAll(msg, raw, "the URL")
}

// redactedError is an error whose message had a URL's password taken out;
// errors.Is and errors.As still see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redacted returns err with raw's password kept out of its message.
func redacted(err error, raw string) error {
	if msg := redactErr(err, raw); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// displayURL is a store URL fit for logs and messages: without a password.
func displayURL(raw string) string {
	lower := strings.ToLower(raw)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		if u, err := url.Parse(raw); err == nil {
			return u.Redacted()
		}
		return "postgres://..."
	}
	return raw
}

// openStore opens the store a URL names. Every command opens its store
// here, so a new backend is one more case. log receives the store's
// operational messages (a PostgreSQL listener reconnecting); nil discards
// them.
func openStore(ctx context.Context, raw string, log *slog.Logger) (store.Store, error) {
	loc, err := parseStoreURL(raw)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "sqlite":
		st, err := sqlite.Open(loc.path, sqlite.Config{Logger: log}) //nolint:contextcheck // sqlite.Open takes no context
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", raw, err)
		}
		return st, nil
	case "postgres":
		st, err := postgres.Open(ctx, loc.pgURL, postgres.Config{
			Schema:      loc.schema,
			PollOnly:    loc.pollOnly,
			SkipMigrate: loc.skipMigrate,
			Logger:      log,
		})
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", displayURL(raw), redacted(err, loc.pgURL))
		}
		return st, nil
	default:
		return nil, &unsupportedStoreError{scheme: loc.scheme}
	}
}

// noStoreError says a command that only reads or changes existing jobs was
// pointed at a store that does not exist: a SQLite file that is not there,
// or a PostgreSQL schema without Spool's tables. It matches store.ErrNotFound.
type noStoreError struct{ where string }

func (e *noStoreError) Error() string {
	return fmt.Sprintf("no store at %s (use --store or $SPOOL_STORE to name one; spool enqueue or spool migrate up creates it)", e.where)
}

func (e *noStoreError) Is(target error) bool { return target == store.ErrNotFound }

// openExisting opens the command's store, refusing a SQLite file or a
// PostgreSQL schema that does not exist yet instead of creating an empty
// one: a mistyped path or schema should not look like an empty store.
func (a *app) openExisting(cmd *cobra.Command) (store.Store, error) {
	raw := a.storeURL(cmd)
	loc, err := parseStoreURL(raw)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "sqlite":
		if _, err := os.Stat(loc.path); errors.Is(err, fs.ErrNotExist) {
			return nil, &noStoreError{where: loc.path}
		}
	case "postgres":
		st, err := pgStatus(cmd.Context(), loc)
		if err != nil {
			return nil, err
		}
		if st.Current == 0 {
			return nil, &noStoreError{where: fmt.Sprintf("%s (schema %q has no Spool tables)", displayURL(raw), st.Schema)}
		}
	}
	return openStore(cmd.Context(), raw, nil)
}

// openOrCreate opens the command's store, creating a SQLite file or a
// PostgreSQL schema if needed.
func (a *app) openOrCreate(cmd *cobra.Command) (store.Store, error) {
	return openStore(cmd.Context(), a.storeURL(cmd), nil)
}

// pgConnect opens one connection to a PostgreSQL store's database, for the
// commands that work on the schema rather than on jobs.
func pgConnect(ctx context.Context, loc storeLocation) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, loc.pgURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", displayURL(loc.pgURL), redacted(err, loc.pgURL))
	}
	return conn, nil
}

// pgSchema is the schema a PostgreSQL location names, or the default.
func pgSchema(loc storeLocation) string {
	if loc.schema != "" {
		return loc.schema
	}
	return "spool"
}

// pgStatus reads the migration status of a PostgreSQL store's schema.
func pgStatus(ctx context.Context, loc storeLocation) (*postgres.Status, error) {
	conn, err := pgConnect(ctx, loc)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	return postgres.MigrationStatus(ctx, conn, pgSchema(loc))
}
