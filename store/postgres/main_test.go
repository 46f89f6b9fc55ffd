package postgres_test

import (
	"os"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package a database of its own (see internal/pgtest)
// and fails it if a test leaves a goroutine behind.
func TestMain(m *testing.M) { os.Exit(pgtest.MainLeakChecked(m)) }
