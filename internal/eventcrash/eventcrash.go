// Package eventcrash is the workload of the events crash tests
// (TestEventsSurviveSIGKILL in internal/crashtest, on SQLite, and
// TestEventsSurviveSIGKILLPostgres in internal/pgcrash): the subscriptions,
// the code their publisher and subscriber processes run, the log in which
// those processes record what they did, and the checks the tests make once
// the run is over. It has no use outside those tests.
//
// The workload is one topic, Topic, with three subscriptions:
//
//   - Audit takes every event, unordered; its handler fails the first two
//     attempts of about a quarter of the events.
//   - Ledger takes every event, Ordered: the events of one key are handled
//     one at a time in version order. Its handler fails the first attempt
//     of about one event in seven, so a key's next event must wait for a
//     retry.
//   - Mailer takes only KindPlaced and KindPaid (its kind filter drops
//     KindNoise). Its handler is an idempotent consumer (the inbox): in one
//     transaction it marks the event seen (Event.MarkSeen) and, the first
//     time only, inserts a row into the effects table; it then fails the
//     first attempt of about one event in five after that commit, so the
//     redelivery must find the mark.
//
// Which events fail is a function of the subscription and the event ID, and
// what publishers publish is a function of a seed and their name: a run is
// random only in when processes are killed.
//
// Publishers publish batches of one to three events: some with
// Client.Publish, some with Client.PublishTx in a transaction of their own
// that also inserts one row per event into the orders table, and of those a
// share is rolled back on purpose. Before a publish a publisher appends an
// intent record per event to its log ("I", with the path: pub, tx, or rb
// for a transaction it will roll back), after it returned (committed) an
// acknowledgement ("A"), and before a deliberate rollback an "R".
//
// A subscriber's handler appends "S" when it starts, and "E" just before it
// returns nil or "F" just before it returns an error, each with the
// subscription, the event (ID, position, key, version) and the delivery
// (the job's ID, Deliveries and Attempts). Every process of a run appends
// to the same file, opened with O_APPEND, one write(2) per fixed-length
// record: the file's order is the order in which the writes happened, on
// any process, and a record survives its process's SIGKILL (the kernel
// keeps what write returned for). Only an "E" can precede a completion, so
// the file holds every handling that could have completed a delivery.
//
// Check reads the records with the committed log, the application's
// tables and what the test saw at each kill; see Check for what it
// asserts.
package eventcrash

import (
	"hash/fnv"
	"time"

	"github.com/spoolrun/spool"
)

// Topic is the topic every event of the workload goes to.
const Topic = "orders"

// The subscriptions of Topic.
const (
	Audit  = "audit"
	Ledger = "ledger"
	Mailer = "mailer"
)

// The kinds of events publishers publish.
const (
	KindPlaced = "order.placed"
	KindPaid   = "order.paid"
	KindNoise  = "order.noise" // filtered out by Mailer
)

// Keys is how many ordering keys ("k0", "k1"...) publishers spread events
// over; a quarter of the events have no key.
const Keys = 12

// Subscriptions returns the definitions of the workload's subscriptions,
// with deliveries locked for lockFor. MaxDeliveries is far above what the
// kills can use up and MaxAttempts above the planned failures: no delivery
// may end dead.
func Subscriptions(lockFor time.Duration) []spool.SubscriptionParams {
	def := func(name string) spool.SubscriptionParams {
		return spool.SubscriptionParams{Topic: Topic, Name: name, From: spool.FromStart, LockFor: lockFor,
			MaxAttempts: 10, MaxDeliveries: 1000, RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
	}
	audit, ledger, mailer := def(Audit), def(Ledger), def(Mailer)
	ledger.Ordered = true
	mailer.Kinds = []string{KindPlaced, KindPaid}
	return []spool.SubscriptionParams{audit, ledger, mailer}
}

// wants reports whether subscription sub takes events of kind.
func wants(sub, kind string) bool { return sub != Mailer || kind != KindNoise }

// failures is how many first attempts sub's handler fails for event id.
func failures(sub, id string) int {
	h := hash(sub + "/" + id)
	switch {
	case sub == Audit && h%4 == 0:
		return 2
	case sub == Ledger && h%7 == 0:
		return 1
	case sub == Mailer && h%5 == 0:
		return 1
	}
	return 0
}

func hash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s)) // never fails
	return h.Sum32()
}
