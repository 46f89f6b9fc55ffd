package spooltest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// Lister is where the assertions look for jobs: a *spool.Client, or any
// store.Store.
type Lister interface {
	List(ctx context.Context, p spool.ListParams) (*spool.ListPage, error)
}

// Match selects jobs for the assertions. A job matches when every field
// that is set matches; the zero Match matches every job.
type Match struct {
	// Kind, Queue, Tenant and UniqueKey must equal the job's when set.
	Kind      string
	Queue     string
	Tenant    string
	UniqueKey string

	// States, when set, are the states the job may be in. Default: any
	// state, so a job that has already run still counts as enqueued.
	States []spool.State

	// Payload, when not nil, must equal the job's payload decoded into
	// Payload's type, field by field: a typed value such as
	// Welcome{To: "ada@example.com"} compares every field, zero ones
	// included. Fields the job's payload has and the type lacks are
	// ignored, as a handler's decoding ignores them. Values are compared
	// through their JSON encodings, so what JSON does not carry (unexported
	// fields, fields tagged "-") does not count. A json.RawMessage compares
	// the whole payload as JSON.
	Payload any

	// PayloadSubset, when not nil, must be contained in the job's payload as
	// JSON: each key of an object must be in the payload's object at the
	// same place, with a matching value; arrays match element by element
	// and must be as long; numbers compare by value. It is encoded with
	// encoding/json, except a json.RawMessage or []byte, which is taken as
	// JSON text. A map[string]any or a raw JSON object reads best:
	//
	//	PayloadSubset: map[string]any{"To": "ada@example.com"}
	PayloadSubset any
}

// RequireEnqueued fails the test unless exactly one job in src matches m,
// and returns it. When none does, the failure lists the jobs src holds that
// come nearest, each with how it differs from m, payload fields included;
// when several do, it lists them (count them with RequireEnqueuedN).
func RequireEnqueued(tb testing.TB, src Lister, m Match) *spool.Job {
	tb.Helper()
	jobs := requireN(tb, src, m, 1)
	if len(jobs) != 1 {
		return nil // tb.Fatalf returned: tb is not a *testing.T
	}
	return jobs[0]
}

// RequireEnqueuedN fails the test unless exactly n jobs in src match m,
// and returns them in enqueue order. Its failures read like
// RequireEnqueued's.
func RequireEnqueuedN(tb testing.TB, src Lister, m Match, n int) []*spool.Job {
	tb.Helper()
	return requireN(tb, src, m, n)
}

// RequireNotEnqueued fails the test if any job in src matches m, listing
// the jobs that do.
func RequireNotEnqueued(tb testing.TB, src Lister, m Match) {
	tb.Helper()
	requireN(tb, src, m, 0)
}

// maxShown is how many jobs a failure lists, and maxDiffs how many
// differences it shows for each.
const (
	maxShown = 5
	maxDiffs = 8
)

func requireN(tb testing.TB, src Lister, m Match, n int) []*spool.Job {
	tb.Helper()
	mt, err := newMatcher(m)
	if err != nil {
		tb.Fatalf("spooltest: %v", err)
		return nil
	}
	matched, err := find(tb.Context(), src, mt)
	if err != nil {
		tb.Fatalf("spooltest: list jobs: %v", err)
		return nil
	}
	if len(matched) == n {
		return matched
	}
	var b strings.Builder
	switch {
	case len(matched) == 0:
		fmt.Fprintf(&b, "spooltest: no job matches %s", mt)
	case n == 0:
		fmt.Fprintf(&b, "spooltest: %s %s, want none:", jobsMatch(len(matched)), mt)
	case n == 1:
		fmt.Fprintf(&b, "spooltest: %s %s, want exactly 1 (RequireEnqueuedN counts them):", jobsMatch(len(matched)), mt)
	default:
		fmt.Fprintf(&b, "spooltest: %s %s, want %d:", jobsMatch(len(matched)), mt, n)
	}
	for i, j := range matched {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more", len(matched)-maxShown)
			break
		}
		b.WriteString("\n  " + describe(j))
	}
	if len(matched) < n {
		if err := nearest(tb.Context(), &b, src, mt); err != nil {
			fmt.Fprintf(&b, "\n(listing the other jobs failed: %v)", err)
		}
	}
	tb.Fatalf("%s", b.String())
	return nil
}

func jobsMatch(n int) string {
	if n == 1 {
		return "1 job matches"
	}
	return fmt.Sprintf("%d jobs match", n)
}

// find returns every job of src that mt matches, in enqueue order. The
// store filters by kind, queue, tenant and state; mt checks the rest.
func find(ctx context.Context, src Lister, mt *matcher) ([]*spool.Job, error) {
	m := mt.m
	p := spool.ListParams{Kind: m.Kind, Queue: m.Queue, Tenant: m.Tenant, States: m.States, Limit: store.MaxListLimit}
	var out []*spool.Job
	for {
		page, err := src.List(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, j := range page.Jobs {
			if len(mt.diff(j)) == 0 {
				out = append(out, j)
			}
		}
		if page.Next.IsZero() {
			return out, nil
		}
		p.After = page.Next
	}
}

// nearest writes to b the jobs of src that mt does not match, those with
// the fewest differences first, each with its differences. It looks at the
// first store.MaxListLimit jobs only.
func nearest(ctx context.Context, b *strings.Builder, src Lister, mt *matcher) error {
	page, err := src.List(ctx, spool.ListParams{Limit: store.MaxListLimit})
	if err != nil {
		return err
	}
	type miss struct {
		job   *spool.Job
		diffs []string
	}
	var misses []miss
	for _, j := range page.Jobs {
		if d := mt.diff(j); len(d) > 0 {
			misses = append(misses, miss{j, d})
		}
	}
	if len(misses) == 0 {
		if len(page.Jobs) == 0 {
			b.WriteString("\nthe store holds no jobs")
		} else {
			b.WriteString("\nthe store holds no other jobs")
		}
		return nil
	}
	slices.SortStableFunc(misses, func(a, b miss) int { return cmp.Compare(len(a.diffs), len(b.diffs)) })
	more := ""
	if !page.Next.IsZero() {
		more = " (of the first " + fmt.Sprint(len(page.Jobs)) + ")"
	}
	switch {
	case len(misses) == 1:
		fmt.Fprintf(b, "\nthe store holds 1 job that does not match%s:", more)
	case len(misses) <= maxShown:
		fmt.Fprintf(b, "\nthe store holds %d jobs that do not match%s:", len(misses), more)
	default:
		fmt.Fprintf(b, "\nthe store holds %d jobs that do not match%s; the %d nearest:", len(misses), more, maxShown)
	}
	for _, ms := range misses[:min(len(misses), maxShown)] {
		b.WriteString("\n  " + describe(ms.job) + ":")
		for i, d := range ms.diffs {
			if i == maxDiffs {
				fmt.Fprintf(b, "\n    ... and %d more differences", len(ms.diffs)-maxDiffs)
				break
			}
			b.WriteString("\n    " + d)
		}
	}
	return nil
}

// describe names a job by what tests select it by; IDs and times change
// from run to run and would not help.
func describe(j *spool.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job of kind %q in queue %q, %s", j.Kind, j.Queue, j.State)
	if j.Tenant != "" {
		fmt.Fprintf(&b, ", tenant %q", j.Tenant)
	}
	if j.UniqueKey != "" {
		fmt.Fprintf(&b, ", unique key %q", j.UniqueKey)
	}
	if len(j.Payload) > 0 {
		b.WriteString(", payload " + rawText(j.Payload))
	}
	return b.String()
}

// matcher is a Match made ready: its payloads encoded once.
type matcher struct {
	m           Match
	payloadType reflect.Type // of m.Payload; nil when not set
	payload     any          // m.Payload as a JSON value
	payloadText string       // ... as encoded, fields in their order
	subset      any          // m.PayloadSubset as a JSON value
}

func newMatcher(m Match) (*matcher, error) {
	mt := &matcher{m: m}
	if m.Payload != nil {
		b, err := json.Marshal(m.Payload)
		if err != nil {
			return nil, fmt.Errorf("Match.Payload cannot be encoded as JSON: %w", err)
		}
		if mt.payload, err = decodeJSON(b); err != nil {
			return nil, fmt.Errorf("Match.Payload: %w", err)
		}
		mt.payloadText = rawText(b)
		mt.payloadType = reflect.TypeOf(m.Payload)
	}
	if m.PayloadSubset != nil {
		var b []byte
		switch v := m.PayloadSubset.(type) {
		case json.RawMessage:
			b = v
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				return nil, fmt.Errorf("Match.PayloadSubset cannot be encoded as JSON: %w", err)
			}
		}
		var err error
		if mt.subset, err = decodeJSON(b); err != nil {
			return nil, fmt.Errorf("Match.PayloadSubset is not JSON: %w", err)
		}
	}
	return mt, nil
}

// String describes the match in a failure message.
func (mt *matcher) String() string {
	m := mt.m
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", name, v))
		}
	}
	add("kind", m.Kind)
	add("queue", m.Queue)
	add("tenant", m.Tenant)
	add("unique key", m.UniqueKey)
	if len(m.States) > 0 {
		parts = append(parts, fmt.Sprintf("state in %v", m.States))
	}
	if mt.payloadType != nil {
		parts = append(parts, fmt.Sprintf("payload %s %s", mt.payloadType, mt.payloadText))
	}
	if mt.subset != nil {
		parts = append(parts, "payload containing "+render(mt.subset))
	}
	if len(parts) == 0 {
		return "{any job}"
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// diff returns how job differs from the match, one line each ("queue: got
// "a", want "b"", "payload.To: got ..."), or nil when it matches.
func (mt *matcher) diff(j *spool.Job) []string {
	m := mt.m
	var out []string
	field := func(name, got, want string) {
		if want != "" && got != want {
			out = append(out, fmt.Sprintf("%s: got %q, want %q", name, got, want))
		}
	}
	field("kind", j.Kind, m.Kind)
	field("queue", j.Queue, m.Queue)
	field("tenant", j.Tenant, m.Tenant)
	field("unique key", j.UniqueKey, m.UniqueKey)
	if len(m.States) > 0 && !slices.Contains(m.States, j.State) {
		out = append(out, fmt.Sprintf("state: got %s, want one of %v", j.State, m.States))
	}
	if mt.payloadType != nil {
		out = mt.diffTyped(out, j)
	}
	if mt.subset != nil {
		got, err := decodeJSON(j.Payload)
		if err != nil {
			out = append(out, fmt.Sprintf("payload: not JSON (%v): %s", err, rawText(j.Payload)))
		} else {
			out = diffJSON(out, "payload", got, mt.subset, true)
		}
	}
	return out
}

// diffTyped decodes j's payload into the type of Match.Payload, as a
// handler would, and compares it with Match.Payload.
func (mt *matcher) diffTyped(out []string, j *spool.Job) []string {
	v := reflect.New(mt.payloadType)
	if len(j.Payload) > 0 {
		if err := json.Unmarshal(j.Payload, v.Interface()); err != nil {
			return append(out, fmt.Sprintf("payload: does not decode into %s (%v): %s", mt.payloadType, err, rawText(j.Payload)))
		}
	}
	b, err := json.Marshal(v.Elem().Interface())
	if err != nil {
		return append(out, fmt.Sprintf("payload: decoded into %s, does not encode again: %v", mt.payloadType, err))
	}
	got, err := decodeJSON(b)
	if err != nil {
		return append(out, fmt.Sprintf("payload: %v", err))
	}
	return diffJSON(out, "payload", got, mt.payload, false)
}
