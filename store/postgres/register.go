package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/store"
)

// Importing the package registers the "postgres" and "postgresql" schemes
// with store.Open.
func init() {
	b := store.Backend{
		Name:       "postgres",
		Open:       openURL,
		Migrator:   newMigrator,
		Namespaces: &store.Namespaces{In: inSchema, Drop: dropSchema},
	}
	store.Register("postgres", b)
	store.Register("postgresql", b)
}

// The query parameters of a store URL that Spool reads itself. ParseURL
// takes them out before the URL reaches pgx; every other parameter is pgx's
// (sslmode, pool_max_conns, default_query_exec_mode, ...).
const (
	// ParamSchema names the schema the store lives in (Config.Schema).
	ParamSchema = "schema"
	// ParamPollOnly, 1 or true, turns LISTEN off (Config.PollOnly), for
	// PgBouncer in transaction mode. Given without a value it means true.
	ParamPollOnly = "poll_only"
	// ParamSkipMigrate, 1 or true, refuses an out-of-date schema instead of
	// migrating it (Config.SkipMigrate). Given without a value it means
	// true.
	ParamSkipMigrate = "skip_migrate"
)

// ParseURL splits a postgres:// or postgresql:// store URL into the
// connection string for pgx and the Config its Spool parameters (schema,
// poll_only, skip_migrate) set. Mistakes are *store.ValidationError, joined,
// and never show the URL's password.
func ParseURL(rawURL string) (connString string, cfg Config, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", Config{}, &store.ValidationError{Field: "store URL", Reason: redact(err.Error(), rawURL)}
	}
	q := u.Query()
	var errs []error
	if v, ok := q[ParamSchema]; ok {
		cfg.Schema = v[len(v)-1]
		if cfg.Schema == "" {
			errs = append(errs, &store.ValidationError{Field: "store URL", Reason: ParamSchema + "= names no schema"})
		}
	}
	for _, p := range []struct {
		name string
		dst  *bool
	}{{ParamPollOnly, &cfg.PollOnly}, {ParamSkipMigrate, &cfg.SkipMigrate}} {
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
			errs = append(errs, &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%s=%q: use 1, true, 0 or false", p.name, s)})
		}
		*p.dst = b
	}
	if err := errors.Join(errs...); err != nil {
		return "", Config{}, err
	}
	q.Del(ParamSchema)
	q.Del(ParamPollOnly)
	q.Del(ParamSkipMigrate)
	u.RawQuery = q.Encode()
	return u.String(), cfg, nil
}

func openURL(ctx context.Context, rawURL string, opts store.OpenOptions) (store.Store, error) {
	conn, cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Logger = opts.Logger
	st, err := Open(ctx, conn, cfg)
	if err != nil {
		return nil, redacted(err, conn)
	}
	return st, nil
}

// migrator is the store.Migrator of one schema. It connects on first use.
type migrator struct {
	connString string
	schema     string
	conn       *pgx.Conn // nil until a method needs the database
}

func newMigrator(_ context.Context, rawURL string) (store.Migrator, error) {
	conn, cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	m := &migrator{connString: conn, schema: cmp.Or(cfg.Schema, "spool")}
	if _, err := Migrations(m.schema); err != nil { // a bad name is refused before any connection
		return nil, err
	}
	return m, nil
}

func (m *migrator) connect(ctx context.Context) (*pgx.Conn, error) {
	if m.conn != nil {
		return m.conn, nil
	}
	conn, err := pgx.Connect(ctx, m.connString)
	if err != nil {
		return nil, fmt.Errorf("spool: connect to %s: %w", store.RedactURL(m.connString), redacted(err, m.connString))
	}
	m.conn = conn
	return conn, nil
}

func (m *migrator) Latest() int { return LatestVersion() }

func (m *migrator) Status(ctx context.Context) (*store.MigrationStatus, error) {
	conn, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	st, err := MigrationStatus(ctx, conn, m.schema)
	if err != nil {
		return nil, redacted(err, m.connString)
	}
	out := &store.MigrationStatus{Backend: "postgres", Where: "schema " + st.Schema, Schema: st.Schema,
		Current: st.Current, Latest: st.Latest, Applied: []store.MigrationInfo{}, Pending: []store.MigrationInfo{}}
	for _, a := range st.Applied {
		out.Applied = append(out.Applied, store.MigrationInfo{Version: a.Version, Name: a.Name, AppliedAt: a.AppliedAt.UTC()})
	}
	for _, p := range st.Pending {
		out.Pending = append(out.Pending, store.MigrationInfo{Version: p.Version, Name: p.Name})
	}
	return out, nil
}

func (m *migrator) Migrate(ctx context.Context, to int) ([]store.MigrationStep, error) {
	conn, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	steps, err := Migrate(ctx, conn, m.schema, to)
	if err != nil {
		return nil, redacted(err, m.connString)
	}
	out := make([]store.MigrationStep, len(steps))
	for i, s := range steps {
		out[i] = store.MigrationStep{Version: s.Version, Name: s.Name, Down: s.Down}
	}
	return out, nil
}

func (m *migrator) Script(from, to int) (string, error) { return MigrationSQL(m.schema, from, to) }

func (m *migrator) Close() error {
	if m.conn == nil {
		return nil
	}
	err := m.conn.Close(context.Background())
	m.conn = nil
	return err
}

// inSchema returns rawURL with ?schema=name, and without skip_migrate (the
// schema is to be created), unless it names a schema already.
func inSchema(rawURL, name string) (string, bool, error) {
	if _, cfg, err := ParseURL(rawURL); err != nil {
		return "", false, err
	} else if cfg.Schema != "" {
		return rawURL, false, nil
	}
	u, err := url.Parse(rawURL) // ParseURL parsed it
	if err != nil {
		return "", false, err
	}
	q := u.Query()
	q.Set(ParamSchema, name)
	q.Del(ParamSkipMigrate)
	u.RawQuery = q.Encode()
	return u.String(), true, nil
}

// dropSchema drops the schema rawURL names, with every table in it.
func dropSchema(ctx context.Context, rawURL string) error {
	connString, cfg, err := ParseURL(rawURL)
	if err != nil {
		return err
	}
	if cfg.Schema == "" {
		return &store.ValidationError{Field: "store URL", Reason: "names no schema (?schema=NAME): the default schema is never dropped this way"}
	}
	if _, err := Migrations(cfg.Schema); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("spool: connect to %s: %w", store.RedactURL(connString), redacted(err, connString))
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the drop's outcome is what matters
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{cfg.Schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("spool: drop schema %s: %w", cfg.Schema, err)
	}
	return nil
}

// redact replaces rawURL, which may hold a password, in msg.
func redact(msg, rawURL string) string {
	if rawURL == "" {
		return msg
	}
	if shown := store.RedactURL(rawURL); shown != rawURL {
		return strings.ReplaceAll(msg, rawURL, shown)
	}
	return msg
}

// redactedError is an error whose message had a URL's password taken out;
// errors.Is and errors.As still see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redacted returns err with connString's password kept out of its message.
func redacted(err error, connString string) error {
	if msg := redact(err.Error(), connString); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}
