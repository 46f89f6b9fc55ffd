package crashtest

import (
	"os"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package a PostgreSQL database of its own for the tests
// that use one (see internal/pgtest), and fails the package if any test
// leaves a goroutine behind.
func TestMain(m *testing.M) { os.Exit(pgtest.MainLeakChecked(m)) }
