package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// Every decoder of outside input is fuzzed: it must never panic, must
// refuse bad input with an error matching store.ErrInvalid, and what it
// accepts must survive being encoded and decoded again unchanged.

func FuzzDecodeError(f *testing.F) {
	for _, errs := range examples() {
		for _, err := range errs {
			b, _ := json.Marshal(wire.ErrorBody{Error: wire.DetailedErrorOf(err)})
			f.Add(b)
		}
	}
	b, _ := json.Marshal(wire.ErrorBody{Error: wire.ErrorOf(errors.Join(
		&store.ItemError{Index: 0, Err: errors.Join(&store.ValidationError{Field: "kind", Reason: "is required"}, store.ErrTooLarge)},
		&store.ItemError{Index: 4, Err: errors.New("secret")}))})
	f.Add(b)
	for _, s := range []string{
		`{"error": {"code": "quota_exceeded", "message": "over", "index": 3}}`,
		`{"error": {"code": "wrong_state", "message": "x", "state": "dead", "id": "nope"}}`,
		`{"error": {"code": "invalid", "message": "", "field": "spec", "value": ""}}`,
		`{"error": {"code": "conflict", "message": "m", "errors": [{"code": "not_found", "message": "n", "resource": "job"}]}}`,
		`{"error": {"code": "not_found", "message": "item 2: spool: not found", "index": 2}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := wire.DecodeError(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("refusal %v does not match ErrInvalid", err)
			}
			return
		}
		got := e.Err()
		if wire.Code(got) != e.Code || got.Error() != e.Message {
			t.Fatalf("decoded %q (%q), want %q (%q)", got, wire.Code(got), e.Message, e.Code)
		}
		// Encoding the decoded error and decoding it again changes nothing.
		once := wire.DetailedErrorOf(got)
		b1, _ := json.Marshal(wire.ErrorBody{Error: once})
		e2, err := wire.DecodeError(bytes.NewReader(b1))
		if err != nil {
			t.Fatalf("re-encoded error %s is refused: %v", b1, err)
		}
		b2, _ := json.Marshal(wire.ErrorBody{Error: wire.DetailedErrorOf(e2.Err())})
		if !bytes.Equal(b1, b2) {
			t.Fatalf("not stable:\n%s\n%s", b1, b2)
		}
		if once.Code != e.Code || once.Message != e.Message {
			t.Fatalf("re-encoded as %q %q, want %q %q", once.Code, once.Message, e.Code, e.Message)
		}
		// The safe encoding never fails and keeps the code.
		if safe := wire.ErrorOf(got); safe.Code != e.Code {
			t.Fatalf("ErrorOf changed the code to %q from %q", safe.Code, e.Code)
		}
	})
}

func FuzzDecodeItems(f *testing.F) {
	b, _ := json.Marshal(wire.Items([]error{nil, store.JobNotFound(jobID), store.ErrClosed}))
	f.Add(b, uint8(3))
	f.Add([]byte(`[{"index": 0, "ok": true}]`), uint8(1))
	f.Add([]byte(`[]`), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		errs, err := wire.DecodeItems(bytes.NewReader(data), int(n))
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("refusal %v does not match ErrInvalid", err)
			}
			return
		}
		if len(errs) != int(n) {
			t.Fatalf("%d answers for %d items", len(errs), n)
		}
		again, err := json.Marshal(wire.Items(errs))
		if err != nil {
			t.Fatal(err)
		}
		back, err := wire.DecodeItems(bytes.NewReader(again), int(n))
		if err != nil {
			t.Fatalf("re-encoded items %s are refused: %v", again, err)
		}
		for i := range back {
			if (back[i] == nil) != (errs[i] == nil) || wire.Code(back[i]) != wire.Code(errs[i]) {
				t.Fatalf("item %d: %v became %v", i, errs[i], back[i])
			}
		}
	})
}

// fuzzRequest checks a request decoder: accepted input, encoded with the
// package's encoder and decoded again, is stable.
func fuzzRequest[P any](f *testing.F, seeds []string, decode func(*bytes.Reader) (P, error), encode func(P) any) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("refusal %v does not match ErrInvalid", err)
			}
			return
		}
		b1, err := json.Marshal(encode(p))
		if err != nil {
			t.Fatal(err)
		}
		p2, err := decode(bytes.NewReader(b1))
		if err != nil {
			t.Fatalf("re-encoded request %s is refused: %v", b1, err)
		}
		b2, _ := json.Marshal(encode(p2))
		if !bytes.Equal(b1, b2) {
			t.Fatalf("not stable:\n%s\n%s", b1, b2)
		}
	})
}

func FuzzDecodeEnqueue(f *testing.F) {
	b, _ := json.Marshal(wire.EnqueueRequestOf([]store.EnqueueParams{
		{ID: jobID, Queue: "q", Kind: "k", Payload: []byte{0, 1}, Priority: 3, RunAt: t0, Tenant: "t", UniqueKey: "u", OrderingKey: "o", MaxAttempts: 2, MaxDeliveries: 3},
		{Kind: "k", Delay: 5e9}}))
	fuzzRequest(f, []string{
		string(b),
		`{"jobs": [{"kind": "k", "payload": {"a": [1, "x", null]}}]}`,
		`{"jobs": [{"kind": "k", "payload": null, "run_at": "2030-01-02T03:04:05.123+02:00"}]}`,
		`{"jobs": []}`,
		`{"jobs": [{"kind": "k", "delay": "-1h"}]}`,
		`{"jobs": [{"kind": "k", "attempts": 2, "errors": [{"at": "2030-01-02T03:04:05+01:00", "attempt": 1, "message": "m"}, {"message": "n"}], "hold_key_when_dead": true}]}`,
	}, func(r *bytes.Reader) ([]store.EnqueueParams, error) { return wire.DecodeEnqueue(r) },
		func(p []store.EnqueueParams) any { return wire.EnqueueRequestOf(p) })
}

// claimAndWait is a decoded claim with its wait.
type claimAndWait struct {
	p    store.ClaimParams
	wait time.Duration
}

func FuzzDecodeClaim(f *testing.F) {
	fuzzRequest(f, []string{
		`{"limit": 10, "lock_seconds": 30, "wait_seconds": 5, "worker": "w"}`,
		`{"lock_seconds": 3723.5}`,
		`{}`,
	}, func(r *bytes.Reader) (claimAndWait, error) {
		p, wait, err := wire.DecodeClaim(r, "q")
		return claimAndWait{p, wait}, err
	}, func(c claimAndWait) any { return wire.ClaimParamsOf(c.p, c.wait) })
}

func FuzzDecodeRenew(f *testing.F) {
	id := jobID.String()
	fuzzRequest(f, []string{
		`{"renewals": [{"id": "` + id + `", "lock_token": "ffffffffffffffff", "lock_seconds": 60}]}`,
		`{"renewals": [{"id": "` + strings.ToUpper(id) + `", "lock_token": "00001", "lock_seconds": 0.1}]}`,
		`{"renewals": []}`,
	}, func(r *bytes.Reader) ([]store.Renewal, error) { return wire.DecodeRenew(r) },
		func(p []store.Renewal) any { return wire.RenewRequestOf(p) })
}

func FuzzDecodeSettle(f *testing.F) {
	id := jobID.String()
	fuzzRequest(f, []string{
		`{"verdicts": [{"id": "` + id + `", "lock_token": "7", "outcome": "complete", "result": {"rows": 3}}]}`,
		`{"verdicts": [{"id": "` + id + `", "lock_token": "8", "outcome": "fail", "error": {"message": "boom", "stack": "x"}, "retry_at": "2030-01-02T03:04:05Z"}]}`,
		`{"verdicts": [{"id": "` + id + `", "lock_token": "9", "outcome": "snooze", "delay": "1m"}, {"id": "` + id + `", "lock_token": "a", "outcome": "release"}]}`,
		`{"verdicts": [{"id": "` + id + `", "lock_token": "b", "outcome": "dead_letter", "result_base64": "AAE="}]}`,
	}, func(r *bytes.Reader) ([]store.Verdict, error) { return wire.DecodeSettle(r) },
		func(p []store.Verdict) any { return wire.SettleRequestOf(p) })
}
