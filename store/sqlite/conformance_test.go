package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
