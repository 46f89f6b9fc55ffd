package remote_test

import (
	"os"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain runs the crash test's child worker when asked to, and otherwise
// the tests, with a PostgreSQL database of the package's own (see
// internal/pgtest), failing the package if a test leaves a goroutine
// behind: a remote store's long polls must end with Close.
func TestMain(m *testing.M) {
	if os.Getenv(envChildURL) != "" {
		os.Exit(runChild())
	}
	os.Exit(pgtest.MainLeakChecked(m))
}
