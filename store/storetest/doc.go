// Package storetest is the conformance suite every Spool store backend runs
// unchanged. A backend is done when it passes the suite, not when it compiles:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{
//			Open: func(t *testing.T, now func() time.Time) store.Store {
//				s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: now})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Features: storetest.Features{Schedules: true, Notify: true, SQLTx: true, MultiHandle: true},
//			Reopen:   ..., CorruptSchedule: ..., BeginTx: ...,
//		})
//	}
//
// # Capabilities
//
// A backend declares its Features. The suite fails when the store's
// Capabilities disagree with them (a wrapper that drops one is caught here),
// runs the cases of every declared capability, and fails — never skips — a
// case whose capability is missing. With MultiHandle it opens a second
// handle on the same database (Reopen) and runs the cases that involve two
// nodes: claims, fencing, reaping and schedule firing racing across
// handles, and wake-ups from one handle to the other.
//
// # What it checks
//
// The doc comments on store.Store and the types of package store are the
// specification; "The contract" in docs/ARCHITECTURE.md adds the guarantees. The suite checks each
// clause that concerns jobs: enqueue defaults, validation and all-or-nothing
// writes; unique keys (including concurrent enqueues); claim order, limits,
// scheduled jobs, paused queues and concurrent claimers; ordering keys;
// every settle outcome with lock-token fencing; renewals; the reaper and
// poison-message protection; Get, List and its cursor; Cancel, Requeue,
// Purge, Stats and Prune; Close; the stable error codes; schedules, with the
// rule for a schedule that cannot fire (CorruptSchedule edits one behind the
// store's back); enqueue in a caller's transaction; notifications; the
// API keys of spool serve; named leases (one holder at a time, also racing
// across handles); the readiness check; and the dashboard's capabilities:
// list filters and newest-first paging, capped counts and the bulk
// actions with the per-job calls' rules (fencing, unique keys and their
// windows, ordering keys, schedules' runs, exact tenants), per-minute
// activity (sums, tenants, retention) and the audit log.
//
// # Time
//
// Every subtest gets its own store whose clock is a [Clock] that moves only
// when the test says so; nothing sleeps. Times are compared as instants
// (time.Time.Equal) and the suite only uses whole milliseconds, so a backend
// must keep at least millisecond precision.
package storetest
