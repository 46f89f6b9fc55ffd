package remote

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The Notifier capability, as long polls.
//
// Available: one goroutine per watched queue keeps a wake poll (GET
// /v1/queues/{queue}/wake) open on the server. The server sends its
// headers once it watches the queue, so from the moment they arrive until
// the answer, any change wakes this store: a channel handed out then is
// closed at the next change. A channel handed out while no poll is
// watching (before the first, between two) may miss a change, so it is
// closed as soon as the next poll watches: a spurious wake-up, which costs
// the caller one look, never a lost one.
//
// Finished: one goroutine per waited job long-polls GET /v1/jobs/{id}/wait,
// which answers at once when the job is finished already, so nothing
// between the call and the poll is missed. Its channel is closed when the
// job is seen finished (or gone); the goroutine stops a moment after the
// last waiter released it.

// Long-poll settings.
const (
	// pollWait is each long poll's wait; the server allows up to 30s.
	pollWait = 25 * time.Second
	// idleAfter stops the poll of a queue no Available call used for
	// this long.
	idleAfter = time.Minute
	// jobLinger keeps a job's poll this long after its last waiter
	// released it, for the waiter that looks again and waits anew.
	jobLinger = 2 * time.Second
	// Backoff between failed polls.
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Second
)

// closedChan is the channel of a store that is closed: callers look again
// and get ErrClosed.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// queueWatch is the long poll of one queue.
type queueWatch struct {
	s      *Store
	queue  string
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex // guards the fields below
	ch    chan struct{}
	armed bool      // a poll watches on the server and has not answered
	early bool      // ch was handed out while none watched: close it once one does
	used  time.Time // the last Available
}

// Available implements store.Notifier: the channel is closed when jobs may
// have become claimable in queue.
func (s *Store) Available(queue string) <-chan struct{} {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return closedChan
	}
	w := s.queues[queue]
	if w == nil {
		w = &queueWatch{s: s, queue: queue, ch: make(chan struct{}), used: time.Now()}
		w.ctx, w.cancel = context.WithCancel(s.done)
		s.queues[queue] = w
		s.polls.Add(1)
		go w.run()
	}
	s.mu.Unlock()
	return w.get()
}

func (w *queueWatch) get() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.used = time.Now()
	if !w.armed {
		w.early = true
	}
	return w.ch
}

// wake closes the current channel and starts a new one. w.mu is held.
func (w *queueWatch) wake() {
	close(w.ch)
	w.ch = make(chan struct{})
	w.early = false
}

// arm records that a poll now watches the queue.
func (w *queueWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = true
	if w.early {
		w.wake()
	}
}

// disarm records that the poll answered: woken, or not (its wait ran out,
// it failed), in which case the channel is no longer watched.
func (w *queueWatch) disarm(woken bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if woken {
		w.wake()
	} else {
		w.early = true
	}
}

func (w *queueWatch) stop() { w.cancel() }

func (w *queueWatch) run() {
	defer w.s.polls.Done()
	retry := minRetry
	failing := false
	for {
		if w.ctx.Err() != nil || w.idle() {
			w.mu.Lock()
			w.wake() // whoever still holds the channel looks again
			w.mu.Unlock()
			return
		}
		began := time.Now()
		woken, err := w.poll()
		switch {
		case w.ctx.Err() != nil:
			continue
		case err != nil:
			if !failing {
				w.s.log.Warn("spool: remote store: waiting for jobs failed; retrying", "queue", w.queue, "err", err)
				failing = true
			}
		case !woken && time.Since(began) < pollWait/2:
			// Answered early without a wake-up: the server is shutting
			// down. Do not hurry back.
		default:
			if failing {
				w.s.log.Info("spool: remote store: waiting for jobs works again", "queue", w.queue)
			}
			failing, retry = false, minRetry
			continue
		}
		sleep(w.ctx, retry)
		retry = min(2*retry, maxRetry)
	}
}

// idle removes the watch when no Available call used it for idleAfter,
// and reports whether it did.
func (w *queueWatch) idle() bool {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.used) < idleAfter {
		return false
	}
	if w.s.queues[w.queue] == w {
		delete(w.s.queues, w.queue)
	}
	return true
}

// poll runs one wake poll and reports whether it woke.
func (w *queueWatch) poll() (bool, error) {
	r := request{method: http.MethodGet, path: "/v1/queues/" + seg(w.queue) + "/wake",
		query: url.Values{"timeout": {pollWait.String()}}, wait: pollWait}
	resp, err := w.s.send(w.ctx, r)
	if err != nil {
		return false, err
	}
	defer drain(resp)
	w.arm()
	var a struct {
		Woken bool `json:"woken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&a)
	w.disarm(err == nil && a.Woken)
	if err != nil {
		return false, w.s.failed(w.ctx, r, err)
	}
	return a.Woken, nil
}

// jobWatch is the long poll of one waited job.
type jobWatch struct {
	s      *Store
	id     store.ID
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan struct{} // closed when the job was seen finished, or the watch ended

	// Guarded by s.mu.
	refs  int
	timer *time.Timer // stops the watch once it had no waiters for jobLinger
}

// Finished implements store.Notifier: the channel is closed when job id
// may have finished. Call release once no longer waiting.
func (s *Store) Finished(id store.ID) (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return closedChan, func() {}
	}
	w := s.jobs[id]
	if w == nil {
		w = &jobWatch{s: s, id: id, ch: make(chan struct{})}
		w.ctx, w.cancel = context.WithCancel(s.done)
		s.jobs[id] = w
		s.polls.Add(1)
		go w.run()
	}
	w.refs++
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	var once sync.Once
	return w.ch, func() { once.Do(w.release) }
}

func (w *jobWatch) release() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w.refs--
	if w.refs > 0 || s.jobs[w.id] != w {
		return
	}
	w.timer = time.AfterFunc(jobLinger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.refs == 0 && s.jobs[w.id] == w {
			delete(s.jobs, w.id)
			w.cancel()
		}
	})
}

// stop ends the watch. s.mu is held.
func (w *jobWatch) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel()
}

func (w *jobWatch) run() {
	defer w.s.polls.Done()
	defer close(w.ch)
	defer func() {
		w.s.mu.Lock()
		if w.s.jobs[w.id] == w {
			delete(w.s.jobs, w.id)
		}
		w.s.mu.Unlock()
	}()
	retry := minRetry
	for w.ctx.Err() == nil {
		began := time.Now()
		r := request{method: http.MethodGet, path: "/v1/jobs/" + w.id.String() + "/wait",
			query: url.Values{"timeout": {pollWait.String()}}, wait: pollWait}
		var v wire.Job
		err := w.s.do(w.ctx, r, &v)
		switch {
		case err == nil && v.State.Finished(), errors.Is(err, store.ErrNotFound):
			return
		case w.ctx.Err() != nil:
			return
		case err == nil && time.Since(began) >= pollWait/2:
			retry = minRetry
			continue
		case err != nil:
			w.s.log.Debug("spool: remote store: waiting for a job failed; retrying", "job", w.id, "err", err)
		}
		sleep(w.ctx, retry)
		retry = min(2*retry, maxRetry)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
