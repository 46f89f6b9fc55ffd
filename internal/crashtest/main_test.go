package crashtest

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package a PostgreSQL database of its own for the tests
// that use one (see internal/pgtest), and fails the package if any test
// leaves a goroutine behind.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutine leak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
