package spool_test

import (
	"os"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
)

// TestMain gives the package's PostgreSQL tests a database of their own
// (see internal/pgtest; without a server they skip) and fails the package
// if any test leaves a goroutine behind: every Worker, Client and store
// goroutine must end with Stop or Close.
func TestMain(m *testing.M) { os.Exit(pgtest.MainLeakChecked(m)) }
