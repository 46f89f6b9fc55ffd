package sqlite_test

import "github.com/spoolrun/spool/store/sqlite"

// knownAbove counts the migrations this build knows above version v. Tests
// count steps with it, not by subtracting versions: versions may have gaps
// (a number kept for a change made on another branch).
func knownAbove(v int) int {
	n := 0
	for _, m := range sqlite.Migrations() {
		if m.Version > v {
			n++
		}
	}
	return n
}
