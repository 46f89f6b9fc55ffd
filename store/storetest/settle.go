package storetest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spoolrun/spool/store"
)

var settleTests = []test{
	{"Complete", testSettleComplete},
	{"CompleteMaxResult", testSettleMaxResult},
	{"FailRetries", testSettleFailRetries},
	{"FailLastAttempt", testSettleFailLast},
	{"DeadLetter", testSettleDeadLetter},
	{"Cancel", testSettleCancel},
	{"Snooze", testSettleSnooze},
	{"Release", testSettleRelease},
	{"StaleTokenChangesNothing", testSettleStale},
	{"UnknownJob", testSettleUnknown},
	{"NotRunning", testSettleNotRunning},
	{"Twice", testSettleTwice},
	{"TwiceInOneCall", testSettleTwiceOneCall},
	{"InvalidVerdict", testSettleInvalid},
	{"ErrorHistoryCapped", testSettleHistoryCap},
	{"ErrorTruncated", testSettleTruncate},
	{"FencingAfterReap", testFencingReap},
	{"FencingAfterRelease", testFencingRelease},
	{"BatchTooLarge", testSettleBatchTooLarge},
}

var renewTests = []test{
	{"Extends", testRenewExtends},
	{"StaleOrUnknown", testRenewStale},
	{"AfterSettle", testRenewAfterSettle},
	{"InvalidLockFor", testRenewInvalid},
	{"BatchTooLarge", testRenewBatchTooLarge},
}

// wantErrors fails the test unless each got[i] matches want[i] (nil for nil).
func wantErrors(t *testing.T, what string, got []error, want ...error) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d", what, len(got), len(want))
	}
	for i := range want {
		switch {
		case want[i] == nil && got[i] != nil:
			t.Errorf("%s item %d: %v, want success", what, i, got[i])
		case want[i] != nil && !errors.Is(got[i], want[i]):
			t.Errorf("%s item %d: %v, want %v", what, i, got[i], want[i])
		}
	}
}

func testSettleComplete(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{Payload: []byte("in")})
	j := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(2 * time.Second)
	v := verdict(j, store.Complete)
	v.Result = []byte(`{"ok":true}`)
	h.settleOK(v)
	got := h.wantState(id, store.StateCompleted)
	if !got.FinishedAt.Equal(h.now()) {
		t.Errorf("FinishedAt = %v, want %v", got.FinishedAt, h.now())
	}
	if string(got.Result) != `{"ok":true}` {
		t.Errorf("Result = %q", got.Result)
	}
	if got.LockToken != 0 {
		t.Errorf("LockToken = %v after completion, want zero", got.LockToken)
	}
	if got.Attempts != 0 || got.Deliveries != 1 || len(got.Errors) != 0 || got.DeadReason != "" {
		t.Errorf("completed job: attempts %d, deliveries %d, errors %d, dead reason %q", got.Attempts, got.Deliveries, len(got.Errors), got.DeadReason)
	}
	if string(got.Payload) != "in" {
		t.Errorf("Payload = %q after completion", got.Payload)
	}
	h.claimNone(store.DefaultQueue)
}

func testSettleMaxResult(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	v := verdict(h.claimID(store.DefaultQueue, id), store.Complete)
	v.Result = []byte(strings.Repeat("r", store.MaxResultBytes))
	h.settleOK(v)
	if got := h.get(id).Result; string(got) != string(v.Result) {
		t.Errorf("result of %d bytes came back as %d bytes", len(v.Result), len(got))
	}
}

func wantError(t *testing.T, e store.AttemptError, attempt int, at time.Time, msg string) {
	t.Helper()
	if e.Attempt != attempt || !e.At.Equal(at) || e.Message != msg {
		t.Errorf("error entry = {Attempt %d, At %v, Message %q}, want {Attempt %d, At %v, Message %q}", e.Attempt, e.At, e.Message, attempt, at, msg)
	}
}

func testSettleFailRetries(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{MaxAttempts: 4})

	// First failure: retry in a minute.
	j := h.claimID(store.DefaultQueue, id)
	t1 := h.clock.Advance(time.Second)
	h.settleOK(failed(j, "first", t1.Add(time.Minute)))
	got := h.wantState(id, store.StateScheduled)
	if !got.RunAt.Equal(t1.Add(time.Minute)) || got.Attempts != 1 || got.LockToken != 0 || !got.FinishedAt.IsZero() {
		t.Errorf("after first failure: run_at %v, attempts %d, token %v, finished %v", got.RunAt, got.Attempts, got.LockToken, got.FinishedAt)
	}
	if len(got.Errors) != 1 {
		t.Fatalf("after first failure: %d error entries, want 1", len(got.Errors))
	}
	wantError(t, got.Errors[0], 1, t1, "first")
	h.claimNone(store.DefaultQueue)

	// Second failure: zero RetryAt means now.
	h.clock.Advance(time.Minute)
	j = h.claimID(store.DefaultQueue, id)
	if j.Deliveries != 2 || j.Attempts != 1 {
		t.Errorf("second claim: deliveries %d, attempts %d", j.Deliveries, j.Attempts)
	}
	t2 := h.now()
	h.settleOK(failed(j, "second", time.Time{}))
	got = h.wantState(id, store.StateAvailable)
	if got.Attempts != 2 || len(got.Errors) != 2 {
		t.Fatalf("after second failure: attempts %d, %d error entries", got.Attempts, len(got.Errors))
	}
	wantError(t, got.Errors[0], 1, t1, "first")
	wantError(t, got.Errors[1], 2, t2, "second")

	// Third failure: a retry time in the past means now too.
	j = h.claimID(store.DefaultQueue, id)
	h.settleOK(failed(j, "third", h.now().Add(-time.Hour)))
	h.wantState(id, store.StateAvailable)

	// Fourth failure spends the last attempt.
	j = h.claimID(store.DefaultQueue, id)
	t4 := h.clock.Advance(time.Second)
	h.settleOK(failed(j, "fourth", t4.Add(time.Hour)))
	got = h.wantState(id, store.StateDead)
	if got.DeadReason != store.DeadMaxAttempts || got.Attempts != 4 || !got.FinishedAt.Equal(t4) || len(got.Errors) != 4 {
		t.Errorf("after last failure: reason %q, attempts %d, finished %v, %d errors", got.DeadReason, got.Attempts, got.FinishedAt, len(got.Errors))
	}
	if len(got.Errors) == 4 {
		wantError(t, got.Errors[3], 4, t4, "fourth")
	}
	h.clock.Advance(2 * time.Hour)
	h.claimNone(store.DefaultQueue)
}

func testSettleFailLast(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{MaxAttempts: 1})
	j := h.claimID(store.DefaultQueue, id)
	h.settleOK(failed(j, "only", time.Time{}))
	got := h.wantState(id, store.StateDead)
	if got.DeadReason != store.DeadMaxAttempts || got.Attempts != 1 || !got.FinishedAt.Equal(h.now()) || got.LockToken != 0 {
		t.Errorf("dead job: reason %q, attempts %d, finished %v, token %v", got.DeadReason, got.Attempts, got.FinishedAt, got.LockToken)
	}
	if len(got.Errors) != 1 {
		t.Fatalf("%d error entries, want 1", len(got.Errors))
	}
	wantError(t, got.Errors[0], 1, h.now(), "only")
	h.claimNone(store.DefaultQueue)
}

func testSettleDeadLetter(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(time.Second)
	v := verdict(j, store.DeadLetter)
	v.Error = &store.AttemptError{Message: "poison", Stack: "goroutine 1 [running]:"}
	h.settleOK(v)
	got := h.wantState(id, store.StateDead)
	if got.DeadReason != store.DeadByHandler || !got.FinishedAt.Equal(h.now()) || got.LockToken != 0 {
		t.Errorf("dead-lettered job: reason %q, finished %v, token %v", got.DeadReason, got.FinishedAt, got.LockToken)
	}
	if len(got.Errors) != 1 || got.Errors[0].Message != "poison" || got.Errors[0].Stack != "goroutine 1 [running]:" || !got.Errors[0].At.Equal(h.now()) {
		t.Errorf("error history = %+v, want the dead-letter error", got.Errors)
	}
	h.clock.Advance(time.Hour)
	h.claimNone(store.DefaultQueue)
}

func testSettleCancel(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	v := verdict(j, store.Cancel)
	v.Error = &store.AttemptError{Message: "not needed any more"}
	h.settleOK(v)
	got := h.wantState(id, store.StateCancelled)
	if !got.FinishedAt.Equal(h.now()) || got.LockToken != 0 || got.DeadReason != "" {
		t.Errorf("cancelled job: finished %v, token %v, dead reason %q", got.FinishedAt, got.LockToken, got.DeadReason)
	}
	if len(got.Errors) != 1 || got.Errors[0].Message != "not needed any more" {
		t.Errorf("error history = %+v, want the cancel reason", got.Errors)
	}
	h.claimNone(store.DefaultQueue)
}

func testSettleSnooze(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{MaxAttempts: 1})
	j := h.claimID(store.DefaultQueue, id)
	v := verdict(j, store.Snooze)
	v.RetryAt = h.now().Add(5 * time.Minute)
	h.settleOK(v)
	got := h.wantState(id, store.StateScheduled)
	if !got.RunAt.Equal(v.RetryAt) || got.Attempts != 0 || got.LockToken != 0 || !got.FinishedAt.IsZero() {
		t.Errorf("snoozed job: run_at %v (want %v), attempts %d, token %v, finished %v", got.RunAt, v.RetryAt, got.Attempts, got.LockToken, got.FinishedAt)
	}
	h.claimNone(store.DefaultQueue)
	h.clock.Advance(5 * time.Minute)
	j = h.claimID(store.DefaultQueue, id)

	// Zero RetryAt: available again at once.
	h.settleOK(verdict(j, store.Snooze))
	got = h.wantState(id, store.StateAvailable)
	if got.Attempts != 0 {
		t.Errorf("snoozed job spent an attempt: attempts %d", got.Attempts)
	}
	h.claimID(store.DefaultQueue, id)
}

func testSettleRelease(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.settleOK(verdict(j, store.Release))
	got := h.wantState(id, store.StateAvailable)
	if got.Attempts != 0 || got.Deliveries != 0 || got.LockToken != 0 || !got.FinishedAt.IsZero() {
		t.Errorf("released job: attempts %d, deliveries %d (want 0: given back), token %v, finished %v", got.Attempts, got.Deliveries, got.LockToken, got.FinishedAt)
	}
	again := h.claimID(store.DefaultQueue, id)
	if again.Deliveries != 1 {
		t.Errorf("claim after release: deliveries %d, want 1", again.Deliveries)
	}
	if again.LockToken == j.LockToken {
		t.Error("a new delivery reused the previous lock token")
	}
}

func testSettleStale(t *testing.T, h *harness) {
	outcomes := []store.Outcome{store.Complete, store.Fail, store.DeadLetter, store.Cancel, store.Snooze, store.Release}
	for k, o := range outcomes {
		h.addN(2, func(int) store.EnqueueParams { return store.EnqueueParams{Queue: "q-" + o.String()} })
		jobs := h.claim("q-"+o.String(), 2)
		if len(jobs) != 2 {
			t.Fatalf("claimed %d jobs, want 2", len(jobs))
		}
		stale, fresh := jobs[0], jobs[1]
		before := h.get(stale.ID)
		bad := verdict(stale, o)
		bad.Token = stale.LockToken + 1
		bad.Error = &store.AttemptError{Message: "stale"}
		bad.RetryAt = h.now().Add(time.Minute)
		if k%2 == 0 {
			bad.Result = []byte("stale result")
		}
		withResult := verdict(fresh, store.Complete)
		withResult.Result = []byte("r")
		errs := h.settle(bad, withResult)
		wantErrors(t, o.String()+" with a stale token", errs, store.ErrLockLost, nil)
		if le := store.Code(errs[0]); le != "lock_lost" {
			t.Errorf("Code(%v) = %q, want lock_lost", errs[0], le)
		}
		h.unchanged(before)
		h.wantState(fresh.ID, store.StateCompleted)
	}
}

func testSettleUnknown(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	errs := h.settle(store.Verdict{ID: store.NewID(), Token: j.LockToken, Outcome: store.Complete}, verdict(j, store.Complete))
	wantErrors(t, "settle of an unknown job", errs, store.ErrNotFound, nil)
}

func testSettleNotRunning(t *testing.T, h *harness) {
	avail := h.add(store.EnqueueParams{})
	sched := h.add(store.EnqueueParams{RunAt: h.now().Add(time.Hour)})
	other := h.add(store.EnqueueParams{Queue: "other"})
	held := h.claimID("other", other)
	a, s := h.get(avail), h.get(sched)
	errs := h.settle(
		store.Verdict{ID: avail, Token: held.LockToken, Outcome: store.Complete},
		store.Verdict{ID: sched, Token: held.LockToken, Outcome: store.Cancel},
	)
	wantErrors(t, "settle of jobs nobody holds", errs, store.ErrLockLost, store.ErrLockLost)
	h.unchanged(a)
	h.unchanged(s)
	h.wantState(other, store.StateRunning)
}

func testSettleTwice(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.settleOK(verdict(j, store.Complete))
	done := h.get(id)
	for _, o := range []store.Outcome{store.Complete, store.Fail, store.Release, store.Cancel} {
		wantErrors(t, o.String()+" after Complete", h.settle(verdict(j, o)), store.ErrLockLost)
	}
	h.unchanged(done)
}

// testSettleTwiceOneCall: verdicts apply in input order, so of two verdicts
// for one delivery in the same call the first wins, whatever their outcomes.
func testSettleTwiceOneCall(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	errs := h.settle(verdict(j, store.Complete), failed(j, "late", time.Time{}))
	wantErrors(t, "complete then fail", errs, nil, store.ErrLockLost)
	got := h.wantState(id, store.StateCompleted)
	if got.Attempts != 0 || len(got.Errors) != 0 {
		t.Errorf("the refused second verdict left attempts %d, %d errors", got.Attempts, len(got.Errors))
	}

	id = h.add(store.EnqueueParams{})
	j = h.claimID(store.DefaultQueue, id)
	errs = h.settle(failed(j, "first", time.Time{}), verdict(j, store.Complete))
	wantErrors(t, "fail then complete", errs, nil, store.ErrLockLost)
	got = h.wantState(id, store.StateAvailable)
	if got.Attempts != 1 || len(got.Errors) != 1 {
		t.Errorf("after fail then complete: attempts %d, %d errors; want the failure applied", got.Attempts, len(got.Errors))
	}
}

func testSettleInvalid(t *testing.T, h *harness) {
	h.addN(5, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	jobs := h.claim(store.DefaultQueue, 5)
	if len(jobs) != 5 {
		t.Fatalf("claimed %d jobs, want 5", len(jobs))
	}
	var befores []*store.Job
	for _, j := range jobs[:4] {
		befores = append(befores, h.get(j.ID))
	}
	zeroToken := verdict(jobs[0], store.Complete)
	zeroToken.Token = 0
	noOutcome := verdict(jobs[1], 0)
	badOutcome := verdict(jobs[2], store.Outcome(99))
	bigResult := verdict(jobs[3], store.Complete)
	bigResult.Result = make([]byte, store.MaxResultBytes+1)
	errs := h.settle(zeroToken, noOutcome, badOutcome, bigResult, verdict(jobs[4], store.Complete))
	wantErrors(t, "invalid verdicts", errs, store.ErrInvalid, store.ErrInvalid, store.ErrInvalid, store.ErrInvalid, nil)
	for i := range 3 {
		if ve := (*store.ValidationError)(nil); !errors.As(errs[i], &ve) {
			t.Errorf("item %d: %v has no *store.ValidationError", i, errs[i])
		}
	}
	if !errors.Is(errs[3], store.ErrTooLarge) || store.Code(errs[3]) != "too_large" {
		t.Errorf("oversized result: %v, want ErrTooLarge (code too_large)", errs[3])
	}
	if le := (*store.LimitError)(nil); !errors.As(errs[3], &le) {
		t.Errorf("oversized result: %v has no *store.LimitError", errs[3])
	}
	for _, b := range befores {
		h.unchanged(b)
	}
	h.wantState(jobs[4].ID, store.StateCompleted)
}

func testSettleHistoryCap(t *testing.T, h *harness) {
	const failures = store.MaxErrorHistory + 5
	id := h.add(store.EnqueueParams{MaxAttempts: failures + 1})
	for i := 1; i <= failures; i++ {
		h.clock.Advance(time.Second)
		h.settleOK(failed(h.claimID(store.DefaultQueue, id), "fail "+strconv.Itoa(i), time.Time{}))
	}
	got := h.wantState(id, store.StateAvailable)
	if got.Attempts != failures {
		t.Errorf("attempts = %d, want %d", got.Attempts, failures)
	}
	if len(got.Errors) != store.MaxErrorHistory {
		t.Fatalf("%d error entries, want the newest %d", len(got.Errors), store.MaxErrorHistory)
	}
	for k, e := range got.Errors {
		n := failures - store.MaxErrorHistory + 1 + k // oldest kept first
		wantError(t, e, n, epoch.Add(time.Duration(n)*time.Second), "fail "+strconv.Itoa(n))
	}
}

func testSettleTruncate(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	msg := "x" + strings.Repeat("é", store.MaxErrorMessage) // the limit falls inside a rune
	stack := strings.Repeat("s", store.MaxErrorStack+100)
	v := verdict(j, store.Fail)
	v.Error = &store.AttemptError{Message: msg, Stack: stack}
	h.settleOK(v)
	got := h.get(id)
	if len(got.Errors) != 1 {
		t.Fatalf("%d error entries, want 1", len(got.Errors))
	}
	e := got.Errors[0]
	if len(e.Message) > store.MaxErrorMessage || len(e.Message) < store.MaxErrorMessage-utf8.UTFMax || !strings.HasPrefix(msg, e.Message) || !utf8.ValidString(e.Message) {
		t.Errorf("message of %d bytes stored as %d bytes (valid UTF-8 %v, prefix %v); want the head, at most %d bytes",
			len(msg), len(e.Message), utf8.ValidString(e.Message), strings.HasPrefix(msg, e.Message), store.MaxErrorMessage)
	}
	if e.Stack != stack[:store.MaxErrorStack] {
		t.Errorf("stack of %d bytes stored as %d bytes, want its first %d", len(stack), len(e.Stack), store.MaxErrorStack)
	}
}

func testFencingReap(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	a := h.claimID(store.DefaultQueue, id)
	h.clock.Advance(defaultLock + time.Second)
	if r, err := h.s.ReapExpired(h.ctx, 100); err != nil || r.Returned != 1 || r.DeadLettered != 0 {
		t.Fatalf("ReapExpired = %+v, %v; want one returned", r, err)
	}
	b := h.claimID(store.DefaultQueue, id)
	if b.LockToken == a.LockToken {
		t.Fatal("the second delivery got the first delivery's lock token")
	}
	if b.Deliveries != 2 {
		t.Errorf("second delivery: deliveries %d, want 2", b.Deliveries)
	}
	held := h.get(id)
	wantErrors(t, "stale holder's settles", h.settle(verdict(a, store.Complete), failed(a, "late", time.Time{}), verdict(a, store.Release)),
		store.ErrLockLost, store.ErrLockLost, store.ErrLockLost)
	errs, err := h.s.Renew(h.ctx, []store.Renewal{{ID: id, Token: a.LockToken, LockFor: time.Hour}})
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	wantErrors(t, "stale holder's renew", errs, store.ErrLockLost)
	h.unchanged(held)
	v := verdict(b, store.Complete)
	v.Result = []byte("b")
	h.settleOK(v)
	if got := h.wantState(id, store.StateCompleted); string(got.Result) != "b" {
		t.Errorf("result = %q, want the second holder's", got.Result)
	}
}

func testFencingRelease(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	a := h.claimID(store.DefaultQueue, id)
	h.settleOK(verdict(a, store.Release))
	b := h.claimID(store.DefaultQueue, id)
	held := h.get(id)
	wantErrors(t, "released holder's complete", h.settle(verdict(a, store.Complete)), store.ErrLockLost)
	h.unchanged(held)
	h.settleOK(verdict(b, store.Complete))
}

func testSettleBatchTooLarge(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	before := h.get(id)
	vs := make([]store.Verdict, store.MaxBatch+1)
	for i := range vs {
		vs[i] = verdict(j, store.Complete)
	}
	if _, err := h.s.Settle(h.ctx, vs); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Settle of %d verdicts = %v, want ErrTooLarge", len(vs), err)
	}
	h.unchanged(before)
}

// renew extends locks and returns the per-item errors.
func (h *harness) renew(rs ...store.Renewal) []error {
	h.t.Helper()
	errs, err := h.s.Renew(h.ctx, rs)
	if err != nil {
		h.t.Fatalf("Renew: %v", err)
	}
	if len(errs) != len(rs) {
		h.t.Fatalf("Renew of %d items returned %d results", len(rs), len(errs))
	}
	return errs
}

func testRenewExtends(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimFor(store.DefaultQueue, 1, 10*time.Second)[0]
	h.clock.Advance(5 * time.Second)
	wantErrors(t, "renew", h.renew(store.Renewal{ID: id, Token: j.LockToken, LockFor: 30 * time.Second}), nil)
	got := h.get(id)
	if want := h.now().Add(30 * time.Second); !got.LockedUntil.Equal(want) {
		t.Errorf("LockedUntil = %v, want %v", got.LockedUntil, want)
	}
	if got.LockToken != j.LockToken || got.State != store.StateRunning || got.Deliveries != 1 {
		t.Errorf("renewed job: token %v (want %v), state %s, deliveries %d", got.LockToken, j.LockToken, got.State, got.Deliveries)
	}
	// Past the original expiry, the renewed lock holds.
	h.clock.Advance(20 * time.Second)
	if r, err := h.s.ReapExpired(h.ctx, 100); err != nil || r != (store.ReapResult{}) {
		t.Fatalf("ReapExpired = %+v, %v; want nothing reaped", r, err)
	}
	h.settleOK(verdict(j, store.Complete))
}

func testRenewStale(t *testing.T, h *harness) {
	h.addN(2, func(int) store.EnqueueParams { return store.EnqueueParams{} })
	jobs := h.claim(store.DefaultQueue, 2)
	if len(jobs) != 2 {
		t.Fatalf("claimed %d jobs, want 2", len(jobs))
	}
	before := h.get(jobs[0].ID)
	h.clock.Advance(time.Second)
	errs := h.renew(
		store.Renewal{ID: jobs[0].ID, Token: jobs[0].LockToken + 1, LockFor: time.Hour},
		store.Renewal{ID: store.NewID(), Token: jobs[1].LockToken, LockFor: time.Hour},
		store.Renewal{ID: jobs[1].ID, Token: jobs[1].LockToken, LockFor: time.Hour},
	)
	wantErrors(t, "renewals", errs, store.ErrLockLost, store.ErrNotFound, nil)
	h.unchanged(before)
	if got := h.get(jobs[1].ID); !got.LockedUntil.Equal(h.now().Add(time.Hour)) {
		t.Errorf("good renewal in the same call: LockedUntil = %v", got.LockedUntil)
	}
}

func testRenewAfterSettle(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	h.settleOK(verdict(j, store.Complete))
	done := h.get(id)
	wantErrors(t, "renew after complete", h.renew(store.Renewal{ID: id, Token: j.LockToken, LockFor: time.Minute}), store.ErrLockLost)
	h.unchanged(done)
}

func testRenewInvalid(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	before := h.get(id)
	for _, d := range []time.Duration{0, store.MinLockDuration - 1, store.MaxLockDuration + time.Second} {
		// Whether the call or the item is refused is up to the backend; it must be ErrInvalid and change nothing.
		errs, err := h.s.Renew(h.ctx, []store.Renewal{{ID: id, Token: j.LockToken, LockFor: d}})
		if err == nil && len(errs) == 1 {
			err = errs[0]
		}
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Renew for %v = %v, want ErrInvalid", d, err)
		}
	}
	h.unchanged(before)
}

func testRenewBatchTooLarge(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	before := h.get(id)
	h.clock.Advance(time.Second)
	rs := make([]store.Renewal, store.MaxBatch+1)
	for i := range rs {
		rs[i] = store.Renewal{ID: id, Token: j.LockToken, LockFor: time.Hour}
	}
	if _, err := h.s.Renew(h.ctx, rs); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Renew of %d items = %v, want ErrTooLarge", len(rs), err)
	}
	h.unchanged(before)
}
