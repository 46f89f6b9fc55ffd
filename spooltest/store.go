package spooltest

import (
	"path/filepath"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// NewStore opens a SQLite store on a new file in tb's temporary directory
// and closes it when the test ends (before the directory is removed), so
// that no goroutine of the store outlives the test. cfg may be nil; set its
// Now to run the store on a fake clock. It fails the test if the store
// cannot be opened, or closed.
func NewStore(tb testing.TB, cfg *sqlite.Config) *sqlite.Store {
	tb.Helper()
	var c sqlite.Config
	if cfg != nil {
		c = *cfg
	}
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "spool.db"), c)
	if err != nil {
		tb.Fatalf("spooltest: open a SQLite store: %v", err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("spooltest: close the store: %v", err)
		}
	})
	return st
}

// NewClient returns a Client on st, failing the test if it cannot.
func NewClient(tb testing.TB, st store.Store) *spool.Client {
	tb.Helper()
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		tb.Fatalf("spooltest: %v", err)
	}
	return c
}
