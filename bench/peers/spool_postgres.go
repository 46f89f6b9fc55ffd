package peers

import (
	"context"
	"errors"

	"github.com/spoolrun/spool/store/postgres"
)

// SpoolPostgres is Spool on its PostgreSQL store, in a fresh database per
// workload.
type SpoolPostgres struct {
	// Source is what the Version column says, such as the working tree's
	// commit. Default: the module version from the build info.
	Source string

	pg *pgServer

	db    string // this workload's database, dropped by Close
	store *postgres.Store
	run   spoolRun
}

// NewSpoolPostgres returns Spool on the PostgreSQL server that adminURL
// (a URL to an existing database, such as postgres) points to.
func NewSpoolPostgres(adminURL string) *SpoolPostgres {
	return &SpoolPostgres{pg: &pgServer{adminURL: adminURL}}
}

func (s *SpoolPostgres) Name() string { return "Spool (PostgreSQL)" }

func (s *SpoolPostgres) Info() Info {
	durable, text, caveat := s.pg.durability()
	return Info{
		Version:    spoolVersion(s.Source),
		Server:     s.pg.serverName(),
		Durable:    durable,
		Durability: text,
		Caveat:     caveat,
		Settings:   spoolSettings + "; pgxpool default size",
		Completion: spoolCompletion,
	}
}

func (s *SpoolPostgres) Probe(ctx context.Context) error { return s.pg.probe(ctx) }

func (s *SpoolPostgres) Open(ctx context.Context, workers int) error {
	name, url, err := s.pg.createDB(ctx, "spool_bench")
	if err != nil {
		return err
	}
	st, err := postgres.Open(ctx, url, postgres.Config{})
	if err != nil {
		return errors.Join(err, s.pg.dropDB(context.WithoutCancel(ctx), name))
	}
	if err := s.run.attach(st, workers); err != nil {
		return errors.Join(err, st.Close(), s.pg.dropDB(context.WithoutCancel(ctx), name))
	}
	s.db, s.store = name, st
	return nil
}

func (s *SpoolPostgres) Enqueue(ctx context.Context, payloads [][]byte) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.enqueue(ctx, payloads)
}

func (s *SpoolPostgres) Start(ctx context.Context, w Work) error { return s.run.start(ctx, w) }
func (s *SpoolPostgres) Stop(ctx context.Context) error          { return s.run.stop(ctx) }

func (s *SpoolPostgres) Remaining(ctx context.Context) (int, error) { return s.run.remaining(ctx) }

func (s *SpoolPostgres) Close(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	err := errors.Join(s.run.stop(ctx), s.store.Close(), s.pg.dropDB(ctx, s.db))
	s.store, s.db = nil, ""
	return err
}
