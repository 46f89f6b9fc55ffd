package sqlite_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the child half of TestAcknowledgedEnqueuesSurviveSIGKILL when
// asked to, and otherwise the tests, failing the package if one leaves a
// goroutine behind: the writer, the syncers and the WAL watcher of every
// store must end with Close.
func TestMain(m *testing.M) {
	if path := os.Getenv("SPOOL_ENQUEUE_CHILD"); path != "" {
		enqueueUntilKilled(path)
		return
	}
	goleak.VerifyTestMain(m)
}
