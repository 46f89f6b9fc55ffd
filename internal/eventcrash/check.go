package eventcrash

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/spoolrun/spool"
)

// Claim is one delivery of a job: its ID and its Deliveries at the claim.
// A claim has one holder.
type Claim struct {
	Job        string
	Deliveries int
}

// Outcome is what a run left behind, gathered by the test once every
// process is gone and the subscriptions are drained.
type Outcome struct {
	Handled   []Record // the subscribers' records, in file order
	Published []Record // the publishers' records
	Torn      int      // torn records in both logs
	// Events is the topic's committed log, in position order.
	Events []*spool.StoredEvent
	// Orders is the orders table; Effects the effects table's rows per
	// event, nil when the mailer had no inbox.
	Orders  map[string]bool
	Effects map[string]int
	// Killed names the processes that ended by SIGKILL. Held has, per
	// killed worker, every claim running in the store right after its
	// kill (when the store had finished what the process had sent): the
	// claims it held, whose verdicts it could not store.
	Killed map[string]bool
	Held   map[string]map[Claim]bool
	// Subs is the subscriptions after the drain.
	Subs []*spool.Subscription
}

// Stats counts what happened in a run.
type Stats struct {
	Committed, ViaTx             int // events in the log; those published in a transaction
	Intents, Acked               int // events publishers tried to publish; publishes they saw commit
	RolledBack                   int // events in transactions rolled back on purpose
	LostToKills                  int // events neither committed nor rolled back on purpose: their publisher was killed mid-publish
	Unacknowledged               int // committed events whose publisher was killed before it saw the commit
	Keyed                        int // events with a key, which Ledger handles in order
	Subs                         map[string]*SubStats
	CutByKills, RedoneAfterKills int // handlings a kill cut short; completed handlings redone because a kill lost the verdict
}

// SubStats counts one subscription's handlings.
type SubStats struct {
	Wanted      int // committed events its kind filter lets through
	Runs        int // handler calls
	Completed   int // calls that returned nil
	Failed      int // calls that returned an error
	Cut         int // calls a kill cut short
	Extra       int // completions beyond the first per event
	Redelivered int // calls on a delivery's second or later claim
	InboxSeen   int // Mailer: completions that found the inbox mark (the effect was done before)
}

// run is one handler call: its start and its outcome (nil: none).
type run struct {
	start   Record
	outcome *Record
}

func (r *run) claim() Claim { return Claim{Job: r.start.Job, Deliveries: r.start.Deliveries} }

// Check checks a run's outcome against the events contract and returns a
// description of each violation with the run's counts:
//
//   - Publishing: every committed event was published by a publisher of the
//     run; no event whose transaction was rolled back on purpose is in the
//     log; every publish a publisher saw succeed is in the log; an event
//     published in a transaction is in the log if and only if its orders
//     row is (the outbox); positions are 1..n without a gap.
//   - At least once: every committed event was handled to completion by
//     every subscription whose kind filter takes it, and the last handling
//     of each (subscription, event) completed.
//   - Nothing else: every handled event is committed (no rolled-back or
//     killed publish was ever delivered), and of a kind its subscription
//     takes; each record names the event's position, key and version.
//   - One holder at a time, duplicates only when due: per subscription and
//     event, each handling is on a later claim than the one before, starts
//     after the one before ended or was cut short by a kill, and every
//     handling but the last either failed (a retry is due) or was on a claim
//     its process held when it was killed (the verdict was lost with it).
//     A handling that never ended belongs to a killed process.
//   - Order: for Ledger (Ordered), the handlings of one key start in
//     version order, and a version's first handling starts after a
//     handling of the key's previous version completed.
//   - The inbox: Mailer's effects table has exactly one row per event
//     Mailer takes, however often it was handled.
//   - The end: every subscription's cursor is at the head, and it has
//     nothing pending and no dead letters.
func Check(o *Outcome) ([]string, Stats) {
	var problems []string
	counts := map[string]int{}
	problem := func(kind, format string, args ...any) {
		counts[kind]++
		if counts[kind] <= 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	st := Stats{Subs: map[string]*SubStats{Audit: {}, Ledger: {}, Mailer: {}}}
	events := make(map[string]*spool.StoredEvent, len(o.Events))
	for i, e := range o.Events {
		events[e.ID] = e
		if e.Position != int64(i+1) {
			problem("positions", "the event at index %d of the log has position %d", i, e.Position)
		}
	}
	st.Committed = len(o.Events)

	checkPublishing(o, events, &st, problem)
	runs := checkHandlings(o, events, &st, problem)

	// At least once, and the last handling completed.
	for _, e := range o.Events {
		for _, sub := range []string{Audit, Ledger, Mailer} {
			ss := st.Subs[sub]
			if !wants(sub, e.Kind) {
				continue
			}
			ss.Wanted++
			rs := runs[sub+"\x00"+e.ID]
			switch {
			case len(rs) == 0:
				problem("lost", "%s: committed event %s (position %d, %s) was never handled", sub, e.ID, e.Position, e.Kind)
			case rs[len(rs)-1].outcome == nil || rs[len(rs)-1].outcome.Tag != TagEnd:
				problem("unfinished", "%s: event %s: its last handling (%s, delivery %d) did not complete", sub, e.ID,
					rs[len(rs)-1].start.Proc, rs[len(rs)-1].start.Deliveries)
			}
		}
	}

	checkOrder(o, events, &st, problem)

	if o.Effects != nil {
		for _, e := range o.Events {
			if wants(Mailer, e.Kind) && o.Effects[e.ID] != 1 {
				problem("effects", "mailer: event %s has %d effects, want 1", e.ID, o.Effects[e.ID])
			}
		}
		for id := range o.Effects {
			if e := events[id]; e == nil || !wants(Mailer, e.Kind) {
				problem("effects", "mailer: an effect for event %s, which it does not take", id)
			}
		}
	}

	for _, s := range o.Subs {
		if s.Cursor != int64(len(o.Events)) || s.Lag.Behind != 0 || s.Lag.Dead != 0 {
			problem("drain", "subscription %s after the drain: cursor %d of %d events, %d behind, %d dead",
				s.Ref(), s.Cursor, len(o.Events), s.Lag.Behind, s.Lag.Dead)
		}
	}
	if len(o.Subs) != len(st.Subs) {
		problem("drain", "%d subscriptions after the drain, want %d", len(o.Subs), len(st.Subs))
	}

	for kind, n := range counts {
		if n > 10 {
			problems = append(problems, fmt.Sprintf("... and %d more problems of kind %q", n-10, kind))
		}
	}
	return problems, st
}

func checkPublishing(o *Outcome, events map[string]*spool.StoredEvent, st *Stats, problem func(kind, format string, args ...any)) {
	intents := map[string]string{} // event ID: path
	acked, rolledBack := map[string]bool{}, map[string]bool{}
	for _, r := range o.Published {
		switch r.Tag {
		case TagIntent:
			intents[r.ID] = r.Note
		case TagAck:
			acked[r.ID] = true
		case TagRollback:
			rolledBack[r.ID] = true
		}
	}
	st.Intents, st.Acked, st.RolledBack = len(intents), len(acked), len(rolledBack)
	for _, e := range events {
		path, ok := intents[e.ID]
		switch {
		case !ok:
			problem("stray", "event %s is in the log but no publisher meant to publish it", e.ID)
		case path == PathRollback:
			problem("rollback", "event %s was published in a transaction rolled back (on purpose or by a kill), yet it is in the log", e.ID)
		case path == PathTx:
			st.ViaTx++
			if !o.Orders[e.ID] {
				problem("outbox", "event %s was published in a transaction and committed, but its orders row was not", e.ID)
			}
		}
		if !acked[e.ID] {
			st.Unacknowledged++
		}
	}
	for id := range o.Orders {
		if events[id] == nil {
			problem("outbox", "the orders row of event %s committed, but the event did not", id)
		}
	}
	for id := range acked {
		if events[id] == nil {
			problem("acked", "the publish of event %s returned nil, but the event is not in the log", id)
		}
	}
	for id, path := range intents {
		if events[id] == nil && path != PathRollback {
			st.LostToKills++
		}
	}
}

// checkHandlings pairs the subscribers' records into handler calls, checks
// each against the log and the claims before it, and returns the calls per
// subscription and event.
func checkHandlings(o *Outcome, events map[string]*spool.StoredEvent, st *Stats, problem func(kind, format string, args ...any)) map[string][]*run {
	runs := map[string][]*run{}
	for i := range o.Handled {
		r := &o.Handled[i]
		ss := st.Subs[r.Sub]
		if ss == nil {
			problem("records", "a record of an unknown subscription: %+v", *r)
			continue
		}
		k := r.Sub + "\x00" + r.ID
		rs := runs[k]
		switch r.Tag {
		case TagStart:
			ss.Runs++
			if r.Deliveries > 1 {
				ss.Redelivered++
			}
			e := events[r.ID]
			switch {
			case e == nil:
				problem("uncommitted", "%s: %s handled event %s, which is not in the log (uncommitted or rolled back)", r.Sub, r.Proc, r.ID)
			case !wants(r.Sub, e.Kind):
				problem("filter", "%s: %s handled event %s of kind %s, which its filter drops", r.Sub, r.Proc, r.ID, e.Kind)
			case e.Position != r.Pos || e.Key != r.Key || e.Version != r.Version:
				problem("fields", "%s: event %s handed out as position %d, key %q, version %d; the log has %d, %q, %d",
					r.Sub, r.ID, r.Pos, r.Key, r.Version, e.Position, e.Key, e.Version)
			}
			if n := len(rs); n > 0 {
				prev := rs[n-1]
				// A handling on the same job must be on a later claim of it;
				// one on another job is a new delivery: the event left a
				// batch (after a failure, or a lost batch was split).
				if r.Job == prev.start.Job && r.Deliveries <= prev.start.Deliveries {
					problem("claims", "%s: event %s handled on claim %d by %s after claim %d by %s",
						r.Sub, r.ID, r.Deliveries, r.Proc, prev.start.Deliveries, prev.start.Proc)
				}
				if prev.outcome == nil && !o.Killed[prev.start.Proc] {
					problem("overlap", "%s: event %s: %s started it (claim %d) while %s, alive, still ran it (claim %d)",
						r.Sub, r.ID, r.Proc, r.Deliveries, prev.start.Proc, prev.start.Deliveries)
				}
			}
			runs[k] = append(rs, &run{start: *r})
		case TagEnd, TagFail:
			var cur *run
			if n := len(rs); n > 0 {
				cur = rs[n-1]
			}
			if cur == nil || cur.outcome != nil || cur.start.Proc != r.Proc || cur.claim() != (Claim{Job: r.Job, Deliveries: r.Deliveries}) {
				problem("overlap", "%s: event %s: %s ended claim %d, which is not the latest handling started", r.Sub, r.ID, r.Proc, r.Deliveries)
				continue
			}
			cur.outcome = r
			if r.Tag == TagEnd {
				ss.Completed++
				if r.Note == "seen" {
					ss.InboxSeen++
				}
			} else {
				ss.Failed++
			}
		default:
			problem("records", "a subscriber record with tag %c: %+v", r.Tag, *r)
		}
	}
	// Every handling but the last is explained by a failure or a kill.
	for k, rs := range runs {
		sub := k[:strings.IndexByte(k, 0)]
		ss := st.Subs[sub]
		completed := 0
		for i, r := range rs {
			held := o.Held[r.start.Proc][r.claim()]
			if r.outcome == nil {
				ss.Cut++
				st.CutByKills++
				if !o.Killed[r.start.Proc] {
					problem("hung", "%s: event %s: %s never ended its handling (claim %d), and it was not killed", sub, r.start.ID, r.start.Proc, r.start.Deliveries)
				} else if !held {
					problem("expired", "%s: event %s: %s was killed while handling it on claim %d, but did not hold that claim then: its lock had expired under a live worker",
						sub, r.start.ID, r.start.Proc, r.start.Deliveries)
				}
				continue
			}
			if r.outcome.Tag != TagEnd {
				continue
			}
			if completed++; completed > 1 {
				ss.Extra++
			}
			if i == len(rs)-1 {
				continue
			}
			if held {
				st.RedoneAfterKills++
				continue
			}
			next := rs[i+1].start
			problem("duplicate", "%s: event %s: %s completed it on claim %d, yet %s handled it again on claim %d, and no kill lost the first verdict",
				sub, r.start.ID, r.start.Proc, r.start.Deliveries, next.Proc, next.Deliveries)
		}
	}
	return runs
}

// checkOrder checks Ledger's handlings of each key against the streams.
func checkOrder(o *Outcome, events map[string]*spool.StoredEvent, st *Stats, problem func(kind, format string, args ...any)) {
	// prev[id] is the event before id in its key's stream.
	prev := map[string]string{}
	streams := map[string][]*spool.StoredEvent{}
	for _, e := range o.Events {
		if e.Key != "" {
			streams[e.Key] = append(streams[e.Key], e)
		}
	}
	for key, evs := range streams {
		slices.SortFunc(evs, func(a, b *spool.StoredEvent) int { return cmp.Compare(a.Version, b.Version) })
		for i, e := range evs {
			if e.Version != int64(i+1) {
				problem("versions", "stream %s: version %d at index %d", key, e.Version, i)
			}
			if i > 0 {
				prev[e.ID] = evs[i-1].ID
				if evs[i-1].Position >= e.Position {
					problem("versions", "stream %s: version %d at position %d, after version %d at position %d", key, e.Version, e.Position, evs[i-1].Version, evs[i-1].Position)
				}
			}
		}
		st.Keyed += len(evs)
	}
	completed := map[string]bool{}
	highest := map[string]int64{} // key: the highest version started
	for _, r := range o.Handled {
		if r.Sub != Ledger || events[r.ID] == nil || r.Key == "" {
			continue
		}
		switch r.Tag {
		case TagEnd:
			completed[r.ID] = true
		case TagStart:
			if r.Version < highest[r.Key] {
				problem("order", "ledger: key %s: %s started version %d (claim %d) after version %d had started",
					r.Key, r.Proc, r.Version, r.Deliveries, highest[r.Key])
			}
			highest[r.Key] = max(highest[r.Key], r.Version)
			if p, ok := prev[r.ID]; ok && !completed[p] {
				problem("order", "ledger: key %s: %s started version %d (claim %d) before any handling of version %d completed",
					r.Key, r.Proc, r.Version, r.Deliveries, r.Version-1)
			}
		}
	}
}

// Unexercised describes what a run failed to exercise, when it did: kills
// of publishers and of workers (kills counts them by role, "publisher" and
// "worker"), kills that cut handlings short, deliberate rollbacks, and the
// planned failures of each subscription. A run that passes Check without
// them proves little.
func (s Stats) Unexercised(kills map[string]int) []string {
	var out []string
	if s.Committed == 0 || s.ViaTx == 0 || s.RolledBack == 0 {
		out = append(out, fmt.Sprintf("%d events committed, %d of them in transactions, %d rolled back on purpose: the publishers hardly published",
			s.Committed, s.ViaTx, s.RolledBack))
	}
	if kills["publisher"] == 0 || kills["worker"] == 0 {
		out = append(out, fmt.Sprintf("kills: %v; want publishers and workers killed", kills))
	}
	if s.CutByKills == 0 {
		out = append(out, "no kill caught a handler running: the workload is too short for this machine")
	}
	for _, name := range []string{Audit, Ledger, Mailer} {
		if s.Subs[name].Failed == 0 {
			out = append(out, name+": no handling failed; its planned failures did not happen")
		}
	}
	return out
}

// Lines describes the counts, a line per topic, for the test's log.
func (s Stats) Lines() []string {
	out := []string{fmt.Sprintf("events: %d committed (%d in transactions, %d with a key); %d intended, %d acknowledged; %d rolled back on purpose, %d lost to publisher kills, %d committed but not acknowledged",
		s.Committed, s.ViaTx, s.Keyed, s.Intents, s.Acked, s.RolledBack, s.LostToKills, s.Unacknowledged)}
	for _, name := range []string{Audit, Ledger, Mailer} {
		ss := s.Subs[name]
		out = append(out, fmt.Sprintf("%s: %d events; %d handlings (%d on a redelivery): %d completed, %d failed, %d cut by kills; %d extra completions; %d found the inbox mark",
			name, ss.Wanted, ss.Runs, ss.Redelivered, ss.Completed, ss.Failed, ss.Cut, ss.Extra, ss.InboxSeen))
	}
	return append(out, fmt.Sprintf("handlings cut by kills: %d; completed handlings redone because a kill lost the verdict: %d",
		s.CutByKills, s.RedoneAfterKills))
}
