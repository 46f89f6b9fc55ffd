package peers

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/spoolrun/spool/store/sqlite"
)

// SpoolSQLite is Spool on its embedded SQLite store, a fresh file per
// workload in Dir, with the store's shipped durability (WAL,
// synchronous=FULL, group commit).
type SpoolSQLite struct {
	// Dir is where the database files go. Default: the system's temp dir.
	Dir string
	// Source is what the Version column says, such as the working tree's
	// commit. Default: the module version from the build info.
	Source string

	dir   string // this workload's directory, removed by Close
	store *sqlite.Store
	run   spoolRun
}

func (s *SpoolSQLite) Name() string { return "Spool (SQLite)" }

func (s *SpoolSQLite) Info() Info {
	return Info{
		Version:    spoolVersion(s.Source),
		Server:     "embedded SQLite (modernc.org/sqlite " + moduleVersion("modernc.org/sqlite") + ")",
		Durable:    true,
		Durability: "fsync per commit (WAL, synchronous=FULL; group commit)",
		Settings:   spoolSettings,
		Completion: spoolCompletion,
	}
}

func (s *SpoolSQLite) Probe(context.Context) error { return nil }

func (s *SpoolSQLite) Open(_ context.Context, workers int) error {
	dir, err := os.MkdirTemp(s.Dir, "spool-bench-*")
	if err != nil {
		return err
	}
	st, err := sqlite.Open(filepath.Join(dir, "spool.db"), sqlite.Config{})
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := s.run.attach(st, workers); err != nil {
		st.Close()
		os.RemoveAll(dir)
		return err
	}
	s.dir, s.store = dir, st
	return nil
}

func (s *SpoolSQLite) Enqueue(ctx context.Context, payloads [][]byte) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.enqueue(ctx, payloads)
}

func (s *SpoolSQLite) Start(ctx context.Context, w Work) error { return s.run.start(ctx, w) }
func (s *SpoolSQLite) Stop(ctx context.Context) error          { return s.run.stop(ctx) }

func (s *SpoolSQLite) Remaining(ctx context.Context) (int, error) { return s.run.remaining(ctx) }

func (s *SpoolSQLite) Close(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	err := errors.Join(s.run.stop(ctx), s.store.Close(), os.RemoveAll(s.dir))
	s.store, s.dir = nil, ""
	return err
}
