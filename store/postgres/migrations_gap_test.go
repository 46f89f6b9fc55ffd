package postgres_test

import (
	"testing"

	"github.com/spoolrun/spool/store/postgres"
)

// knownAbove counts the migrations this build knows above version v. Tests
// count steps with it, not by subtracting versions: versions may have gaps
// (a number kept for a change made on another branch).
func knownAbove(t *testing.T, v int) int {
	t.Helper()
	ms, err := postgres.Migrations("spool")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Version > v {
			n++
		}
	}
	return n
}
