package spool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// Worker, Client and store goroutine must end with Stop or Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
