// Package storetest is the conformance suite every Spool store backend runs
// unchanged. A backend is done when it passes the suite, not when it compiles:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
//			s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: now})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// # What it checks
//
// The doc comments on store.Store and the types of package store are the
// specification; §3 of the design (the contract) adds the guarantees. The suite checks each
// clause that concerns jobs: enqueue defaults, validation and all-or-nothing
// writes; unique keys (including concurrent enqueues); claim order, limits,
// scheduled jobs, paused queues and concurrent claimers; ordering keys;
// every settle outcome with lock-token fencing; renewals; the reaper and
// poison-message protection; Get, List and its cursor; Cancel, Requeue,
// Purge, Stats and Prune; Close; and the stable error codes.
//
// # Time
//
// Every subtest gets its own store whose clock is a [Clock] that moves only
// when the test says so; nothing sleeps. Times are compared as instants
// (time.Time.Equal) and the suite only uses whole milliseconds, so a backend
// must keep at least millisecond precision.
package storetest
