package eventcrash

import (
	"slices"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
)

// cleanOutcome is a small run that keeps every promise: three committed
// events (one published directly, two in transactions), one transaction
// rolled back on purpose, every subscription handling what it takes once.
func cleanOutcome() *Outcome {
	o := &Outcome{
		Events: []*spool.StoredEvent{
			{Topic: Topic, Position: 1, ID: "p1-1", Kind: KindPlaced, Key: "k0", Version: 1},
			{Topic: Topic, Position: 2, ID: "p1-2", Kind: KindNoise, Key: "k0", Version: 2},
			{Topic: Topic, Position: 3, ID: "p2-1", Kind: KindPaid},
		},
		Published: []Record{
			{Tag: TagIntent, Proc: "p1", ID: "p1-1", Note: PathPublish}, {Tag: TagAck, Proc: "p1", ID: "p1-1"},
			{Tag: TagIntent, Proc: "p1", ID: "p1-2", Note: PathTx}, {Tag: TagAck, Proc: "p1", ID: "p1-2"},
			{Tag: TagIntent, Proc: "p2", ID: "p2-1", Note: PathTx}, {Tag: TagAck, Proc: "p2", ID: "p2-1"},
			{Tag: TagIntent, Proc: "p2", ID: "p2-2", Note: PathRollback}, {Tag: TagRollback, Proc: "p2", ID: "p2-2"},
		},
		Orders:  map[string]bool{"p1-2": true, "p2-1": true},
		Effects: map[string]int{"p1-1": 1, "p2-1": 1},
		Killed:  map[string]bool{},
		Held:    map[string]map[Claim]bool{},
	}
	for _, sub := range []string{Audit, Ledger, Mailer} {
		for _, e := range o.Events {
			if wants(sub, e.Kind) {
				o.Handled = append(o.Handled, handling("w1", sub, e, 1, TagEnd)...)
			}
		}
		o.Subs = append(o.Subs, &spool.Subscription{Topic: Topic, Name: sub, Cursor: 3})
	}
	return o
}

// handling returns the records of one handling of e by proc on claim d,
// ending with outcome (0: cut short).
func handling(proc, sub string, e *spool.StoredEvent, d int, outcome byte) []Record {
	r := Record{Tag: TagStart, Proc: proc, Sub: sub, ID: e.ID, Pos: e.Position, Key: e.Key, Version: e.Version, Job: "job-" + sub + e.ID, Deliveries: d}
	out := []Record{r}
	if outcome != 0 {
		r.Tag = outcome
		out = append(out, r)
	}
	return out
}

// without returns recs without those of sub and event id.
func without(recs []Record, sub, id string) []Record {
	return slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return r.Sub == sub && r.ID == id })
}

func TestCheckPassesACleanRun(t *testing.T) {
	problems, st := Check(cleanOutcome())
	if len(problems) > 0 {
		t.Fatalf("a clean run has problems:\n%s", strings.Join(problems, "\n"))
	}
	if st.Committed != 3 || st.ViaTx != 2 || st.RolledBack != 1 || st.Subs[Mailer].Wanted != 2 || st.Subs[Audit].Completed != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestCheckFindsEachViolation breaks a clean run in each way Check looks
// for and expects it to say so.
func TestCheckFindsEachViolation(t *testing.T) {
	for _, c := range []struct {
		name  string
		want  string
		spoil func(o *Outcome)
	}{
		{"an event never handled", "audit: committed event p2-1 (position 3, order.paid) was never handled", func(o *Outcome) {
			o.Handled = without(o.Handled, Audit, "p2-1")
		}},
		{"the last handling failed", "its last handling (w1, delivery 1) did not complete", func(o *Outcome) {
			o.Handled = append(without(o.Handled, Audit, "p2-1"), handling("w1", Audit, o.Events[2], 1, TagFail)...)
		}},
		{"a rolled-back event delivered", "handled event p2-2, which is not in the log", func(o *Outcome) {
			o.Handled = append(o.Handled, handling("w1", Audit, &spool.StoredEvent{ID: "p2-2", Position: 4}, 1, TagEnd)...)
		}},
		{"a rolled-back event in the log", "event p2-2 was published in a transaction rolled back", func(o *Outcome) {
			o.Events = append(o.Events, &spool.StoredEvent{Topic: Topic, Position: 4, ID: "p2-2", Kind: KindPaid})
		}},
		{"an event without its outbox row", "event p1-2 was published in a transaction and committed, but its orders row was not", func(o *Outcome) {
			delete(o.Orders, "p1-2")
		}},
		{"an outbox row without its event", "the orders row of event p2-2 committed, but the event did not", func(o *Outcome) {
			o.Orders["p2-2"] = true
		}},
		{"an acknowledged publish lost", "the publish of event p3-1 returned nil", func(o *Outcome) {
			o.Published = append(o.Published, Record{Tag: TagIntent, ID: "p3-1", Note: PathPublish}, Record{Tag: TagAck, ID: "p3-1"})
		}},
		{"a gap in positions", "has position 5", func(o *Outcome) {
			o.Events[2].Position = 5
		}},
		{"the kind filter ignored", "mailer: w1 handled event p1-2 of kind order.noise", func(o *Outcome) {
			o.Handled = append(o.Handled, handling("w1", Mailer, o.Events[1], 1, TagEnd)...)
		}},
		{"a completed handling repeated", "w1 completed it on claim 1, yet w2 handled it again on claim 2", func(o *Outcome) {
			o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 2, TagEnd)...)
		}},
		{"a claim handled twice", "handled on claim 1 by w2 after claim 1 by w1", func(o *Outcome) {
			o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 1, TagEnd)...)
		}},
		{"two holders at once", "w2 started it (claim 2) while w1, alive, still ran it (claim 1)", func(o *Outcome) {
			o.Handled = without(o.Handled, Audit, "p1-1")
			first := handling("w1", Audit, o.Events[0], 1, TagEnd)
			o.Handled = append(o.Handled, first[0])
			o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 2, TagEnd)...)
			o.Handled = append(o.Handled, first[1])
		}},
		{"a handling cut short by no kill", "w1 never ended its handling (claim 1), and it was not killed", func(o *Outcome) {
			o.Handled = append(without(o.Handled, Audit, "p1-1"), handling("w1", Audit, o.Events[0], 1, 0)...)
			o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 2, TagEnd)...)
		}},
		{"a kill that did not hold the claim", "did not hold that claim then", func(o *Outcome) {
			o.Killed["w3"] = true
			o.Held["w3"] = map[Claim]bool{}
			o.Handled = append(o.Handled, handling("w3", Audit, o.Events[0], 2, 0)...)
			o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 3, TagEnd)...)
		}},
		{"order: a version before its predecessor completed", "started version 2 (claim 1) before any handling of version 1 completed", func(o *Outcome) {
			o.Handled = without(o.Handled, Ledger, "p1-1")
			o.Handled = append(o.Handled, handling("w1", Ledger, o.Events[0], 1, TagEnd)...)
		}},
		{"order: going back", "started version 1 (claim 2) after version 2 had started", func(o *Outcome) {
			o.Killed["w1"] = true
			o.Held["w1"] = map[Claim]bool{{Job: "job-" + Ledger + "p1-1", Deliveries: 1}: true}
			o.Handled = append(o.Handled, handling("w2", Ledger, o.Events[0], 2, TagEnd)...)
		}},
		{"an effect done twice", "mailer: event p1-1 has 2 effects, want 1", func(o *Outcome) {
			o.Effects["p1-1"] = 2
		}},
		{"an effect missing", "mailer: event p2-1 has 0 effects, want 1", func(o *Outcome) {
			delete(o.Effects, "p2-1")
		}},
		{"a subscription not drained", "subscription orders/ledger after the drain: cursor 2 of 3 events, 1 behind, 0 dead", func(o *Outcome) {
			o.Subs[1].Cursor, o.Subs[1].Lag.Behind = 2, 1
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := cleanOutcome()
			c.spoil(o)
			problems, _ := Check(o)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem with %q; got:\n%s", c.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestCheckExplainsRedoneWork: a completed handling repeated because a kill
// lost its verdict, and a retry after a failure, are no problem.
func TestCheckExplainsRedoneWork(t *testing.T) {
	o := cleanOutcome()
	o.Killed["w1"] = true
	o.Held["w1"] = map[Claim]bool{{Job: "job-" + Audit + "p1-1", Deliveries: 1}: true}
	o.Handled = append(o.Handled, handling("w2", Audit, o.Events[0], 2, TagEnd)...)
	o.Handled = append(without(o.Handled, Mailer, "p2-1"), handling("w1", Mailer, o.Events[2], 1, TagFail)...)
	o.Handled = append(o.Handled, handling("w2", Mailer, o.Events[2], 2, TagEnd)...)
	problems, st := Check(o)
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
	if st.RedoneAfterKills != 1 || st.Subs[Audit].Extra != 1 || st.Subs[Mailer].Failed != 1 || st.Subs[Mailer].Redelivered != 1 {
		t.Errorf("stats %+v, audit %+v, mailer %+v", st, *st.Subs[Audit], *st.Subs[Mailer])
	}
}

func TestLogRoundTripAndTornRecords(t *testing.T) {
	path := t.TempDir() + "/log"
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	a := Record{Tag: TagStart, Proc: "w1", Sub: Ledger, ID: "p1-1", Pos: 1, Key: "k0", Version: 1, Job: "0198", Deliveries: 2, Attempts: 1}
	b := Record{Tag: TagIntent, Proc: "p1", ID: "p1-2", Note: PathTx}
	if err := l.Write(a); err != nil {
		t.Fatal(err)
	}
	// A record cut short by a kill, then a whole one, then a cut one at the end.
	line, _ := b.line()
	if _, err := l.f.Write(line[:40]); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := l.f.Write(line[:10]); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs, torn, err := ReadLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs, []Record{a, b}) || torn != 2 {
		t.Errorf("read %+v with %d torn; want %+v, %+v with 2 torn", recs, torn, a, b)
	}
}
