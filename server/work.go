package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"net/http"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// claimAnswer is a claim's answer: the jobs, each with its lock token.
type claimAnswer struct {
	Jobs []wire.Job `json:"jobs"`
	// WaitedSeconds is how long after the request came the claim that
	// took the jobs began (a long poll's wait): their locks run from then.
	WaitedSeconds float64 `json:"waited_seconds,omitempty"`
}

// claimPoll bounds the look-again interval of a long-polling claim on a
// store whose notifier missed a change (or that has none).
const (
	claimPollMin = 50 * time.Millisecond
	claimPollMax = time.Second
)

// claim is POST /v1/queues/{queue}/claim: peek-lock up to limit jobs,
// long-polling up to wait_seconds when none is available.
func (c *call) claim() (any, error) {
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	queue, err := c.sc.queueIn(c.r.PathValue("queue"))
	if err != nil {
		return nil, err
	}
	p, wait, err := wire.DecodeClaim(bytes.NewReader(raw), queue)
	if err != nil {
		return nil, err
	}
	if err := store.ValidName("queue", queue, false); err != nil {
		return nil, err
	}
	jobs, waited, err := c.claimWaiting(p, wait)
	if err != nil {
		return nil, err
	}
	now := c.s.cfg.Clock.Now()
	c.s.act.claimed(jobs, p.LockFor, now)
	c.s.act.maybeFlush(c.ctx, now)
	out := claimAnswer{Jobs: make([]wire.Job, len(jobs)), WaitedSeconds: waited.Seconds()}
	for i, j := range jobs {
		out.Jobs[i] = wire.ClaimedJobOf(c.sc.jobOut(j))
		c.fixView(&out.Jobs[i])
	}
	return out, nil
}

// claimWaiting claims; with none available it waits, up to wait, for the
// store's notifier (or a slow poll) and claims again. Drain ends the wait.
// A subscription's delivery queue has its events routed whenever a claim
// finds nothing. waited is how long after the call the claim that
// returned the jobs began (zero with none).
func (c *call) claimWaiting(p store.ClaimParams, wait time.Duration) (_ []*store.Job, waited time.Duration, _ error) {
	began := c.s.cfg.Clock.Now()
	var ctx = c.ctx
	var cancel = func() {}
	if wait > 0 {
		ctx, cancel = c.s.waitFor(c.ctx, wait)
	}
	defer cancel()
	notifier := c.s.st.Capabilities().Notifier
	es := c.s.st.Capabilities().Events
	sub, isSub := c.s.deliveryQueue(c.ctx, es, p.Queue)
	poll := claimPollMin
	for {
		var avail, published <-chan struct{}
		if notifier != nil && wait > 0 {
			avail = notifier.Available(p.Queue) // before the claim: a change after it still wakes us
			if isSub {
				published = notifier.Available(store.TopicSignal(sub.topic))
			}
		}
		// The claim runs on the request's context, not the wait's: a wait
		// that ends mid-claim must not throw away jobs just locked.
		claimAt := c.s.cfg.Clock.Now()
		jobs, err := c.s.st.Claim(c.ctx, p)
		if err != nil {
			return nil, 0, err
		}
		if len(jobs) > 0 {
			return jobs, claimAt.Sub(began), nil
		}
		if isSub && c.route(es, sub) {
			continue
		}
		if wait == 0 {
			return nil, 0, nil
		}
		t := c.s.cfg.Clock.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, nil
		case <-avail:
		case <-published:
		case <-t.Chan():
			poll = min(2*poll, claimPollMax)
		}
		t.Stop()
	}
}

// renew is POST /v1/renew: extend locks; per-item answers (lock_lost for
// a stale token, which changes nothing).
func (c *call) renew() (any, error) {
	var req wire.RenewRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Renewals) > store.MaxBatch {
		return nil, &store.LimitError{Field: "renewals", Limit: store.MaxBatch, Got: len(req.Renewals)}
	}
	errs, err := perItem(req.Renewals, func(w wire.Renewal) (store.Renewal, error) {
		r, err := w.Params()
		if err == nil {
			err = c.owns(r.ID)
		}
		return r, err
	}, func(rs []store.Renewal) ([]error, error) { return c.s.st.Renew(c.ctx, rs) }, asIs)
	if err != nil {
		return nil, err
	}
	return itemsAnswer{Results: wire.Items(errs)}, nil
}

// settle is POST /v1/settle: apply verdicts, each fenced by its lock
// token; per-item answers (lock_lost for a stale token, which changes
// nothing).
func (c *call) settle() (any, error) {
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	var req wire.SettleRequest
	if err := c.decodeFrom(raw, &req); err != nil {
		return nil, err
	}
	if len(req.Verdicts) > store.MaxBatch {
		return nil, &store.LimitError{Field: "verdicts", Limit: store.MaxBatch, Got: len(req.Verdicts)}
	}
	errs, err := perItem(req.Verdicts, func(w wire.Verdict) (store.Verdict, error) {
		v, err := w.Params()
		if err == nil {
			err = c.owns(v.ID)
		}
		return v, err
	}, func(vs []store.Verdict) ([]error, error) {
		errs, err := c.s.st.Settle(c.ctx, vs)
		if err == nil {
			c.s.act.settled(c.ctx, c.s.st, vs, errs)
		}
		return errs, err
	}, asIs)
	if err != nil {
		return nil, err
	}
	c.s.act.maybeFlush(c.ctx, c.s.cfg.Clock.Now())
	return itemsAnswer{Results: wire.Items(errs)}, nil
}

// seconds converts a number of seconds from JSON, to the nearest

// wakeAnswer is the body of a wake's answer.
type wakeAnswer struct {
	// Woken is true when jobs may have become claimable in the queue, and
	// false when the timeout passed first (or the server is shutting down).
	Woken bool `json:"woken"`
}

// wake is GET /v1/queues/{queue}/wake?timeout=30s: a long poll for the
// store's notification that jobs may have become claimable in the queue
// (enqueued, released, retried, returned by the reaper, their queue
// resumed). It sends its status and headers at once, as soon as it
// watches the queue, so a client that has them knows that any change from
// then on wakes it; its body follows at the wake-up, {"woken": true}, or
// when the timeout (at most MaxWait, by default MaxWait) passes first,
// {"woken": false}. Wake-ups are hints, as the store's: a woken client
// claims, and may find nothing. A store without notifications answers
// 501 unsupported: poll instead.
func (c *call) wake() (any, error) {
	queue, err := c.sc.queueIn(c.r.PathValue("queue"))
	if err != nil {
		return nil, err
	}
	if err := store.ValidName("queue", queue, false); err != nil {
		return nil, err
	}
	d, err := c.waitQuery("timeout")
	if err != nil {
		return nil, err
	}
	notifier := c.s.st.Capabilities().Notifier
	if notifier == nil {
		return nil, fmt.Errorf("%w: the store sends no notifications; poll instead", store.ErrUnsupported)
	}
	avail := notifier.Available(queue)
	ctx, cancel := c.s.waitFor(c.ctx, d)
	defer cancel()
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.Header().Set("X-Accel-Buffering", "no") // a proxy must pass the headers on at once
	c.w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(c.w).Flush() // the client now knows it is watched
	woken := false
	select {
	case <-avail:
		woken = true
	case <-ctx.Done():
	}
	_ = json.NewEncoder(c.w).Encode(wakeAnswer{Woken: woken})
	return streamed{}, nil
}
