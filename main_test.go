package spool_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package's PostgreSQL tests a database of their own
// (see internal/pgtest; without a server they skip) and fails the package
// if any test leaves a goroutine behind: every Worker, Client and store
// goroutine must end with Stop or Close.
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
