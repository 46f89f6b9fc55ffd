package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// leaseTests check a store's store.LeaseStore. They run when the backend
// declares Features.Leases.
var leaseTests = []test{
	{"AcquireFree", testLeaseAcquireFree},
	{"HeldRefusesOthers", testLeaseHeldRefuses},
	{"RenewExtends", testLeaseRenew},
	{"EndedIsTaken", testLeaseEnded},
	{"ReleaseFrees", testLeaseRelease},
	{"NamesAreSeparate", testLeaseNames},
	{"InvalidRefused", testLeaseInvalid},
	{"Closed", testLeaseClosed},
}

// multiLeaseTests race leases across two handles on one database.
var multiLeaseTests = []test{
	{"OneHolderAcrossHandles", testLeaseRace},
}

// healthTests check a store's store.HealthChecker. They run when the
// backend declares Features.Health.
var healthTests = []test{
	{"Healthy", testHealthy},
	{"Closed", testHealthClosed},
}

func (h *harness) leases() store.LeaseStore {
	h.t.Helper()
	ls := h.s.Capabilities().Leases
	if ls == nil {
		h.t.Fatal("the backend declares Features.Leases, but Capabilities().Leases is nil")
	}
	return ls
}

// acquire calls AcquireLease and fails the test on an error.
func (h *harness) acquire(name, holder string, ttl time.Duration) *store.Lease {
	h.t.Helper()
	l, err := h.leases().AcquireLease(h.ctx, name, holder, ttl)
	if err != nil {
		h.t.Fatalf("AcquireLease(%q, %q, %v): %v", name, holder, ttl, err)
	}
	if l == nil || l.Name != name {
		h.t.Fatalf("AcquireLease(%q, %q) = %+v", name, holder, l)
	}
	return l
}

// wantLease fails the test unless l is held by holder until until, and
// Held says whether the caller holds it.
func wantLease(t *testing.T, l *store.Lease, holder string, until time.Time, held bool) {
	t.Helper()
	if l.Holder != holder || !l.Until.Equal(until) || l.Held != held {
		t.Fatalf("lease %+v, want holder %q until %v held %v", l, holder, until, held)
	}
}

func testLeaseAcquireFree(t *testing.T, h *harness) {
	l := h.acquire("gauges", "node-a", 10*time.Second)
	wantLease(t, l, "node-a", h.now().Add(10*time.Second), true)
}

func testLeaseHeldRefuses(t *testing.T, h *harness) {
	until := h.now().Add(10 * time.Second)
	h.acquire("gauges", "node-a", 10*time.Second)
	h.clock.Advance(9 * time.Second)
	l := h.acquire("gauges", "node-b", time.Minute)
	wantLease(t, l, "node-a", until, false)
}

func testLeaseRenew(t *testing.T, h *harness) {
	h.acquire("gauges", "node-a", 10*time.Second)
	h.clock.Advance(5 * time.Second)
	l := h.acquire("gauges", "node-a", 10*time.Second)
	wantLease(t, l, "node-a", h.now().Add(10*time.Second), true)
	// The renewal holds past the first end.
	h.clock.Advance(7 * time.Second)
	l = h.acquire("gauges", "node-b", 10*time.Second)
	if l.Held || l.Holder != "node-a" {
		t.Fatalf("after a renewal another node got %+v", l)
	}
}

func testLeaseEnded(t *testing.T, h *harness) {
	h.acquire("gauges", "node-a", 10*time.Second)
	h.clock.Advance(10 * time.Second) // the end itself: ended
	l := h.acquire("gauges", "node-b", 3*time.Second)
	wantLease(t, l, "node-b", h.now().Add(3*time.Second), true)
	// The old holder's renewal is now refused.
	l = h.acquire("gauges", "node-a", 10*time.Second)
	wantLease(t, l, "node-b", h.now().Add(3*time.Second), false)
}

func testLeaseRelease(t *testing.T, h *harness) {
	ls := h.leases()
	h.acquire("gauges", "node-a", time.Minute)
	// Someone else's release changes nothing.
	if err := ls.ReleaseLease(h.ctx, "gauges", "node-b"); err != nil {
		t.Fatalf("ReleaseLease by a non-holder: %v", err)
	}
	if l := h.acquire("gauges", "node-b", time.Minute); l.Held {
		t.Fatalf("a non-holder's release freed the lease: %+v", l)
	}
	if err := ls.ReleaseLease(h.ctx, "gauges", "node-a"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	l := h.acquire("gauges", "node-b", time.Minute)
	wantLease(t, l, "node-b", h.now().Add(time.Minute), true)
	// Releasing what nobody holds is a no-op.
	if err := ls.ReleaseLease(h.ctx, "unknown", "node-a"); err != nil {
		t.Fatalf("ReleaseLease of an unknown lease: %v", err)
	}
}

func testLeaseNames(t *testing.T, h *harness) {
	h.acquire("one", "node-a", time.Minute)
	if l := h.acquire("two", "node-b", time.Minute); !l.Held {
		t.Fatalf("lease two is taken by lease one's holder: %+v", l)
	}
}

func testLeaseInvalid(t *testing.T, h *harness) {
	ls := h.leases()
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{
		{"", "node-a", time.Second},
		{"gauges", "", time.Second},
		{"gauges", string(make([]byte, store.MaxLeaseHolder+1)), time.Second},
		{"gauges", "node-a", 0},
		{"gauges", "node-a", -time.Second},
		{"gauges", "node-a", store.MinLeaseTTL - 1},
		{"gauges", "node-a", store.MaxLeaseTTL + 1},
	} {
		if _, err := ls.AcquireLease(h.ctx, c.name, c.holder, c.ttl); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AcquireLease(%q, %d-byte holder, %v) = %v, want ErrInvalid", c.name, len(c.holder), c.ttl, err)
		}
	}
	if err := ls.ReleaseLease(h.ctx, "gauges", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ReleaseLease without a holder = %v, want ErrInvalid", err)
	}
	// Nothing was taken by the refused calls.
	if l := h.acquire("gauges", "node-z", time.Second); !l.Held {
		t.Fatalf("after refused calls the lease is %+v", l)
	}
}

func testLeaseClosed(t *testing.T, h *harness) {
	ls := h.leases()
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ls.AcquireLease(h.ctx, "gauges", "node-a", time.Second); !errors.Is(err, store.ErrClosed) {
		t.Errorf("AcquireLease after Close = %v, want ErrClosed", err)
	}
	if err := ls.ReleaseLease(h.ctx, "gauges", "node-a"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ReleaseLease after Close = %v, want ErrClosed", err)
	}
}

// testLeaseRace: nodes on two handles race for an ended lease, again and
// again; each round exactly one of them holds it.
func testLeaseRace(t *testing.T, h *harness) {
	hs := []*harness{h, h.other()}
	for round := range 5 {
		h.clock.Advance(time.Minute) // every earlier lease has ended
		var (
			mu      sync.Mutex
			holders []string
			wg      sync.WaitGroup
		)
		for i := range 8 {
			wg.Go(func() {
				node := fmt.Sprintf("node-%d-%d", round, i)
				l, err := hs[i%2].leases().AcquireLease(h.ctx, "race", node, 30*time.Second)
				if err != nil {
					t.Errorf("AcquireLease(%s): %v", node, err)
					return
				}
				if l.Held {
					mu.Lock()
					holders = append(holders, node)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("round %d: %d nodes hold the lease: %v", round, len(holders), holders)
		}
		// Both handles agree on who it is.
		for _, x := range hs {
			if l := x.acquire("race", "observer", time.Second); l.Held || l.Holder != holders[0] {
				t.Fatalf("round %d: a handle sees %+v, want holder %s", round, l, holders[0])
			}
		}
	}
}

func testHealthy(t *testing.T, h *harness) {
	hc := h.s.Capabilities().Health
	if hc == nil {
		t.Fatal("the backend declares Features.Health, but Capabilities().Health is nil")
	}
	if err := hc.CheckHealth(h.ctx); err != nil {
		t.Fatalf("CheckHealth on a fresh store: %v", err)
	}
}

func testHealthClosed(t *testing.T, h *harness) {
	hc := h.s.Capabilities().Health
	if hc == nil {
		t.Fatal("the backend declares Features.Health, but Capabilities().Health is nil")
	}
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := hc.CheckHealth(h.ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("CheckHealth after Close = %v, want ErrClosed", err)
	}
}
