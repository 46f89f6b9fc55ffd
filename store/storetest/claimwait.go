package storetest

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// claimWaitTests check Capabilities.ClaimWaiter. A waiting claim's wait
// runs on the server's clock, which the suite may have stopped, so these
// cases find their jobs at once; store/remote's own tests wait.
var claimWaitTests = []test{
	{"ClaimsLikeClaim", testClaimWaitClaims},
}

// A waiting claim that finds jobs takes them as Claim does, at once, in
// claim order, each with its lock, and its wait is within the call.
func testClaimWaitClaims(t *testing.T, h *harness) {
	res := h.enqueue(store.EnqueueParams{Queue: "cw", Priority: 1}, store.EnqueueParams{Queue: "cw"}, store.EnqueueParams{Queue: "cw"})
	began := time.Now()
	jobs, waited, err := h.s.Capabilities().ClaimWaiter.ClaimWait(h.ctx, store.ClaimParams{Queue: "cw", Limit: 2, LockFor: time.Minute}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); waited < 0 || waited > took {
		t.Errorf("waited %v in a call of %v", waited, took)
	}
	if len(jobs) != 2 || jobs[0].ID != res[1].ID || jobs[1].ID != res[2].ID {
		t.Fatalf("ClaimWait took %v, want the two jobs of priority 0 in enqueue order", jobs)
	}
	for _, j := range jobs {
		if j.State != store.StateRunning || j.LockToken == 0 || j.Deliveries != 1 {
			t.Errorf("claimed job %s: state %s, token %v, deliveries %d; want running, locked, delivered once", j.ID, j.State, j.LockToken, j.Deliveries)
		}
	}
}
