package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

var lifecycleTests = []test{
	{"Close", testClose},
	{"CancelledContext", testCancelledContext},
	{"ErrorCodes", testErrorCodes},
}

var notifyTests = []test{
	{"Available", testNotifyAvailable},
	{"Finished", testNotifyFinished},
}

func testClose(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{})
	j := h.claimID(store.DefaultQueue, id)
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := h.ctx
	calls := map[string]func() error{
		"Enqueue": func() error {
			_, err := h.s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}})
			return err
		},
		"Claim": func() error {
			_, err := h.s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, LockFor: defaultLock})
			return err
		},
		"Renew": func() error {
			_, err := h.s.Renew(ctx, []store.Renewal{{ID: id, Token: j.LockToken, LockFor: defaultLock}})
			return err
		},
		"Settle": func() error {
			_, err := h.s.Settle(ctx, []store.Verdict{verdict(j, store.Complete)})
			return err
		},
		"ReapExpired": func() error { _, err := h.s.ReapExpired(ctx, 10); return err },
		"Get":         func() error { _, err := h.s.Get(ctx, id); return err },
		"List":        func() error { _, err := h.s.List(ctx, store.ListParams{}); return err },
		"Cancel":      func() error { _, err := h.s.Cancel(ctx, []store.ID{id}); return err },
		"Requeue":     func() error { _, err := h.s.Requeue(ctx, []store.ID{id}); return err },
		"Purge":       func() error { _, err := h.s.Purge(ctx, store.PurgeParams{}); return err },
		"PauseQueue":  func() error { return h.s.PauseQueue(ctx, "q") },
		"ResumeQueue": func() error { return h.s.ResumeQueue(ctx, "q") },
		"Stats":       func() error { _, err := h.s.Stats(ctx); return err },
		"Prune": func() error {
			_, err := h.s.Prune(ctx, store.PruneParams{CompletedBefore: h.now()})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		} else if c := store.Code(err); c != "closed" {
			t.Errorf("%s after Close: Code = %q, want closed", name, c)
		}
	}
}

// testCancelledContext: a call whose context is already cancelled fails as a
// whole and writes nothing.
func testCancelledContext(t *testing.T, h *harness) {
	id := h.add(store.EnqueueParams{Queue: "held"})
	j := h.claimID("held", id)
	held := h.get(id)
	waiting := h.get(h.add(store.EnqueueParams{}))

	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if _, err := h.s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "new"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := h.s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, LockFor: defaultLock}); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := h.s.Settle(ctx, []store.Verdict{verdict(j, store.Complete)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Settle with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := h.s.Cancel(ctx, []store.ID{waiting.ID}); !errors.Is(err, context.Canceled) {
		t.Errorf("Cancel with a cancelled context = %v, want context.Canceled", err)
	}
	h.unchanged(held)
	h.unchanged(waiting)
	if jobs := h.list(store.ListParams{Queue: "new"}); len(jobs) != 0 {
		t.Errorf("Enqueue with a cancelled context wrote %d jobs", len(jobs))
	}
}

// testErrorCodes: the errors a backend returns map to the documented codes.
func testErrorCodes(t *testing.T, h *harness) {
	codes := map[string]error{}
	_, codes["not_found"] = h.s.Get(h.ctx, store.NewID())
	_, codes["invalid"] = h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: ""}})
	_, codes["too_large"] = h.s.Enqueue(h.ctx, []store.EnqueueParams{{Kind: "k", Payload: make([]byte, store.MaxPayloadBytes+1)}})

	id := h.add(store.EnqueueParams{UniqueKey: "k"})
	j := h.claimID(store.DefaultQueue, id)
	errs := h.settle(store.Verdict{ID: id, Token: j.LockToken + 1, Outcome: store.Complete})
	codes["lock_lost"] = errs[0]
	h.settleOK(verdict(j, store.Complete))
	codes["wrong_state"] = h.cancel(id)[0]
	dead := h.finish(store.EnqueueParams{UniqueKey: "d"}, store.StateDead)
	h.add(store.EnqueueParams{UniqueKey: "d"})
	codes["duplicate"] = h.requeue(dead)[0]

	for want, err := range codes {
		if got := store.Code(err); got != want {
			t.Errorf("Code(%v) = %q, want %q", err, got, want)
		}
	}
	if got := store.Code(nil); got != "" {
		t.Errorf("Code(nil) = %q, want empty", got)
	}
}

// notifier returns the store's Notifier capability; the backend declared
// it, so a missing one fails the test.
func (h *harness) notifier() store.Notifier {
	h.t.Helper()
	n := h.s.Capabilities().Notifier
	if n == nil {
		h.t.Fatal("the backend declares Features.Notify, but Capabilities().Notifier is nil")
	}
	return n
}

// notifyWait bounds how long a notification may take; it is a failure
// deadline, not a synchronisation delay.
const notifyWait = 10 * time.Second

func (h *harness) wantClosed(what string, ch <-chan struct{}) {
	h.t.Helper()
	select {
	case <-ch:
	case <-time.After(notifyWait):
		h.t.Fatalf("%s: no notification within %v", what, notifyWait)
	}
}

func testNotifyAvailable(_ *testing.T, h *harness) {
	n := h.notifier()
	ch := n.Available("q")
	h.add(store.EnqueueParams{Queue: "q"})
	h.wantClosed("Available after Enqueue", ch)

	j := h.claimOne("q")
	ch = n.Available("q")
	h.settleOK(verdict(j, store.Release))
	h.wantClosed("Available after Release", ch)

	h.claimOne("q")
	ch = n.Available("q")
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(10, store.ReapResult{Returned: 1})
	h.wantClosed("Available after ReapExpired", ch)
}

func testNotifyFinished(t *testing.T, h *harness) {
	n := h.notifier()
	id := h.add(store.EnqueueParams{})
	bystander := h.add(store.EnqueueParams{Queue: "other"})
	j := h.claimID(store.DefaultQueue, id)
	ch, release := n.Finished(id)
	defer release()
	quiet, releaseQuiet := n.Finished(bystander)
	defer releaseQuiet()
	h.settleOK(verdict(j, store.Complete))
	h.wantClosed("Finished after Complete", ch)
	select {
	case <-quiet:
		t.Error("Finished of a job that did not finish was closed by another job's completion")
	default:
	}

	other := h.add(store.EnqueueParams{})
	ch, release2 := n.Finished(other)
	defer release2()
	h.cancelOK(other)
	h.wantClosed("Finished after Cancel", ch)

	dying := h.add(store.EnqueueParams{Queue: "dying", MaxDeliveries: 1})
	h.claimID("dying", dying)
	ch, release3 := n.Finished(dying)
	defer release3()
	h.clock.Advance(defaultLock + time.Second)
	h.wantReap(10, store.ReapResult{DeadLettered: 1})
	h.wantClosed("Finished after the reaper dead-lettered it", ch)
}
