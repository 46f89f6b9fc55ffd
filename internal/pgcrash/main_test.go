package pgcrash

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package a database of its own (see internal/pgtest)
// and fails it if a test leaves a goroutine behind.
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
