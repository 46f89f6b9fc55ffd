// Package loadstampede tests spool.Loader across processes: several
// processes, each with many goroutines, ask one store for one cold key at
// once, and exactly one load runs. The test binary is its own child: run
// with SPOOL_LOADER_CHILD set, TestMain plays one process.
package loadstampede

import (
	"os"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	os.Exit(pgtest.MainLeakChecked(m))
}
