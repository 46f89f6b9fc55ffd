package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestEnqueueRoundTrip(t *testing.T) {
	t.Parallel()
	in := []store.EnqueueParams{
		{ID: jobID, Queue: "mail", Kind: "welcome", Payload: []byte(`{"to": "ada"}`), Priority: -3, RunAt: t0,
			Tenant: "acme", UniqueKey: "u", UniqueFor: 5*time.Minute + 250*time.Millisecond, OrderingKey: "o", MaxAttempts: 5, MaxDeliveries: 6},
		{Kind: "raw", Payload: []byte{0, 1, 0xff}, Delay: 90 * time.Second},
		{Kind: "empty"},
		// Carried history: work that failed elsewhere continues here.
		{Kind: "carried", OrderingKey: "o", HoldKeyWhenDead: true, Attempts: 2, MaxAttempts: 5,
			Errors: []store.AttemptError{{At: t0.UTC(), Attempt: 1, Message: "boom", Stack: "x.go:1"}, {At: t0.UTC(), Attempt: 2, Message: "bang"}}},
	}
	b, err := json.Marshal(wire.EnqueueRequestOf(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := wire.DecodeEnqueue(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("DecodeEnqueue(%s): %v", b, err)
	}
	if !out[0].RunAt.Equal(t0) {
		t.Fatalf("run_at %v came back as %v", t0, out[0].RunAt)
	}
	out[0].RunAt = t0
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("enqueue params changed on the wire:\n in %+v\nout %+v", in, out)
	}

	// People write payloads as JSON; the bytes are kept as written.
	out, err = wire.DecodeEnqueue(strings.NewReader(`{"jobs": [{"kind": "k", "payload": {"a" :  [1, 2]}, "delay": "1h30m", "run_at": ""}]}`))
	if err != nil || string(out[0].Payload) != `{"a" :  [1, 2]}` || out[0].Delay != 90*time.Minute {
		t.Fatalf("JSON payload: %+v, %v", out, err)
	}
	if out, err := wire.DecodeEnqueue(strings.NewReader(`{"jobs": [{"kind": "k", "payload": null}]}`)); err != nil || out[0].Payload != nil {
		t.Fatalf("null payload: %+v, %v", out, err)
	}
	if out, err := wire.DecodeEnqueue(strings.NewReader(`{"jobs": [{"kind": "k", "unique_key": "u", "unique_for": "10m"}]}`)); err != nil || out[0].UniqueFor != 10*time.Minute {
		t.Fatalf("unique_for: %+v, %v", out, err)
	}
}

func TestClaimRenewSettleRoundTrip(t *testing.T) {
	t.Parallel()
	cp := store.ClaimParams{Queue: "q", Limit: 10, LockFor: 1500 * time.Millisecond, Worker: "w-1"}
	b, _ := json.Marshal(wire.ClaimParamsOf(cp, 20*time.Second))
	if got, wait, err := wire.DecodeClaim(bytes.NewReader(b), "q"); err != nil || got != cp || wait != 20*time.Second {
		t.Fatalf("claim %s came back as %+v, %v, %v", b, got, wait, err)
	}
	if string(b) != `{"limit":10,"lock_seconds":1.5,"wait_seconds":20,"worker":"w-1"}` {
		t.Errorf("claim JSON = %s", b)
	}
	if got, wait, err := wire.DecodeClaim(strings.NewReader(`{}`), "q"); err != nil || got.LockFor != 30*time.Second || wait != 0 {
		t.Errorf("an empty claim: %+v, %v, %v; want a 30s lock and no wait", got, wait, err)
	}

	rs := []store.Renewal{{ID: jobID, Token: store.LockToken(-1), LockFor: time.Minute}}
	b, _ = json.Marshal(wire.RenewRequestOf(rs))
	if got, err := wire.DecodeRenew(bytes.NewReader(b)); err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("renewals %s came back as %+v, %v", b, got, err)
	}
	if !strings.Contains(string(b), `"lock_token":"ffffffffffffffff"`) {
		t.Errorf("a lock token must travel as a string: %s", b)
	}

	vs := []store.Verdict{
		{ID: jobID, Token: 7, Outcome: store.Complete, Result: []byte(`{"rows": 3}`)},
		{ID: jobID, Token: 8, Outcome: store.Fail, Error: &store.AttemptError{Message: "boom", Stack: "x.go:1"}, RetryAt: t0.UTC()},
		{ID: jobID, Token: 9, Outcome: store.Snooze, Delay: time.Minute},
		{ID: jobID, Token: 10, Outcome: store.DeadLetter},
		{ID: jobID, Token: 11, Outcome: store.Cancel},
		{ID: jobID, Token: 12, Outcome: store.Release},
	}
	b, _ = json.Marshal(wire.SettleRequestOf(vs))
	got, err := wire.DecodeSettle(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(got, vs) {
		t.Fatalf("verdicts %s came back as %+v, %v", b, got, err)
	}
	for _, o := range []string{`"complete"`, `"fail"`, `"snooze"`, `"dead_letter"`, `"cancel"`, `"release"`} {
		if !strings.Contains(string(b), `"outcome":`+o) {
			t.Errorf("outcome %s missing from %s", o, b)
		}
	}
}

// Unknown fields, bad values and oversized batches are refused with errors
// matching ErrInvalid that say what is wrong.
func TestDecodersRefuseBadInput(t *testing.T) {
	t.Parallel()
	id := jobID.String()
	for _, tc := range []struct {
		decode func(string) error
		body   string
		want   string // in the error
	}{
		{decEnqueue, ``, "invalid request body: is empty"},
		{decEnqueue, `{"jobs": [{"kind": "k", "colour": "red"}]}`, `unknown field "colour"`},
		{decEnqueue, `{"jobs": [{"kind": 7}]}`, "must be a string"},
		{decEnqueue, `{"jobs": [{"kind": "k"}]} {}`, "has more after"},
		{decEnqueue, `{"jobs": [{"kind": "k"`, "ends too soon"},
		{decEnqueue, `{"jobs": [{"kind": "k"}]`, "ends too soon"},
		{decEnqueue, `{}`, "jobs: is required"},
		{decEnqueue, `{"jobs": [{"kind": "k", "payload": {}, "payload_base64": "AA=="}]}`, "given twice"},
		{decEnqueue, `{"jobs": [{"kind": "k", "payload_base64": "%%%"}]}`, "not standard base64"},
		{decEnqueue, `{"jobs": [{"kind": "k", "delay": "soon"}]}`, "not a duration"},
		{decEnqueue, `{"jobs": [{"kind": "k"}, {"kind": "k", "run_at": "tomorrow"}]}`, "item 1: "},
		{decEnqueue, `{"jobs": [{"kind": "k", "id": "7"}]}`, "not a job id"},
		{decEnqueue, `{"jobs": [{"kind": "k", "payload": {"a": }}]}`, "not valid JSON"},
		{decClaim, `{"lock_seconds": "30"}`, "must be a number"},
		{decClaim, `{"lock_seconds": -1}`, "may not be negative"},
		{decClaim, `{"wait_seconds": 31}`, "outside 0..30"},
		{decClaim, `{"queue": "q"}`, `unknown field "queue"`},
		{decRenew, `{"renewals": [{"id": "` + id + `", "lock_token": "zz", "lock_seconds": 60}]}`, "not a lock token"},
		{decRenew, `{"renewals": [{"id": "` + id + `", "lock_seconds": 60}]}`, "lock_token: is required"},
		{decRenew, `{"renewals": [{"id": "` + id + `", "lock_token": 12, "lock_seconds": 60}]}`, "must be a string"},
		{decSettle, `{"verdicts": [{"id": "` + id + `", "lock_token": "1", "outcome": "done"}]}`, `"done" is not one of complete, fail, dead_letter, cancel, snooze, release`},
		{decSettle, `{"verdicts": [{"id": "` + id + `", "lock_token": "1", "outcome": "fail", "error": {"message": "x", "at": "now"}}]}`, `unknown field "at"`},
		{decSettle, `{"verdicts": [{"id": "` + id + `", "lock_token": "1", "outcome": 1}]}`, "must be a string"},
		{decSettle, `{"verdicts": [{"id": "` + id + `", "lock_token": "1", "outcome": "complete", "result": {}, "result_base64": "AA=="}]}`, "given twice"},
		{decSettle, `{"verdicts": null}`, "verdicts: is required"},
	} {
		err := tc.decode(tc.body)
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decoding %s: %v; want ErrInvalid saying %q", tc.body, err, tc.want)
		}
	}
	// A bad item is named by its index.
	err := decEnqueue(`{"jobs": [{"kind": "k"}, {"kind": "k", "delay": "x"}, {"kind": "k", "id": "y"}]}`)
	var ie *store.ItemError
	if !errors.As(err, &ie) || ie.Index != 1 || !strings.Contains(err.Error(), "item 2: ") {
		t.Errorf("bad items: %v; want *store.ItemError for items 1 and 2", err)
	}
	// More than a batch is a *store.LimitError.
	many := `{"jobs": [` + strings.Repeat(`{"kind": "k"},`, store.MaxBatch) + `{"kind": "k"}]}`
	var le *store.LimitError
	if err := decEnqueue(many); !errors.As(err, &le) || le.Got != store.MaxBatch+1 {
		t.Errorf("%d jobs: %v; want a *store.LimitError", store.MaxBatch+1, err)
	}
}

func decEnqueue(s string) error { _, err := wire.DecodeEnqueue(strings.NewReader(s)); return err }
func decClaim(s string) error   { _, _, err := wire.DecodeClaim(strings.NewReader(s), "q"); return err }
func decRenew(s string) error   { _, err := wire.DecodeRenew(strings.NewReader(s)); return err }
func decSettle(s string) error  { _, err := wire.DecodeSettle(strings.NewReader(s)); return err }

func TestOutcomeText(t *testing.T) {
	t.Parallel()
	for _, o := range []store.Outcome{store.Complete, store.Fail, store.DeadLetter, store.Cancel, store.Snooze, store.Release} {
		got, err := wire.ParseOutcome(wire.OutcomeText(o))
		if err != nil || got != o {
			t.Errorf("outcome %v came back as %v, %v", o, got, err)
		}
	}
	if _, err := wire.ParseOutcome(""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf(`ParseOutcome("") = %v`, err)
	}
}

func TestItemErrors(t *testing.T) {
	t.Parallel()
	errs := []error{nil, store.JobNotFound(jobID), &store.StateError{ID: jobID, State: store.StateCompleted, Op: "cancel"}}
	b, _ := json.Marshal(wire.Items(errs))
	got, err := wire.DecodeItems(bytes.NewReader(b), 3)
	var se *store.StateError
	if err != nil || got[0] != nil || !errors.Is(got[1], store.ErrNotFound) || !errors.As(got[2], &se) || se.ID != jobID {
		t.Fatalf("items %s came back as %v, %v", b, got, err)
	}
	for _, tc := range []struct {
		body string
		n    int
	}{
		{`[{"index": 0, "ok": true}]`, 2},                              // an answer missing
		{`[{"index": 0, "ok": true}, {"index": 0, "ok": true}]`, 2},    // twice
		{`[{"index": 0, "ok": true}, {"index": 2, "ok": true}]`, 2},    // out of range
		{`[{"index": 0}]`, 1},                                          // neither
		{`[{"index": 0, "ok": true, "error": {"code": "closed"}}]`, 1}, // both
		{`[{"index": 0, "error": {"code": ""}}]`, 1},                   // no code
		{`null`, 0},
		{`{}`, 0},
	} {
		if got, err := wire.DecodeItems(strings.NewReader(tc.body), tc.n); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeItems(%s, %d) = %v, %v; want ErrInvalid", tc.body, tc.n, got, err)
		}
	}
	if got, err := wire.DecodeItems(strings.NewReader(`[]`), 0); err != nil || len(got) != 0 {
		t.Errorf("no items: %v, %v", got, err)
	}
}
