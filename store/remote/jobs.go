package remote

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The job calls of store.Store. Arguments are checked here as the store
// checks them wherever the API would read them differently (a zero lock
// duration, an empty queue name, which the API takes as its defaults), so
// that a remote store refuses what a local one refuses.

// Enqueue implements store.Store (POST /v1/jobs).
func (s *Store) Enqueue(ctx context.Context, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(jobs)); err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return []store.EnqueueResult{}, nil
	}
	// Refuse here what the store refuses, some of which JSON cannot carry
	// (a key that is not UTF-8 would arrive mended); the store still
	// fills in the defaults, by its own clock.
	if err := store.NormalizeAll(slices.Clone(jobs), time.Time{}); err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: "/v1/jobs", body: wire.EnqueueRequestOf(jobs)}
	var out struct {
		Results []wire.EnqueueResult `json:"results"`
	}
	if err := s.do(ctx, r, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(jobs) {
		return nil, s.badAnswer(r, "%d results for %d jobs", len(out.Results), len(jobs))
	}
	res := make([]store.EnqueueResult, len(jobs))
	for i, w := range out.Results {
		id, err := store.ParseID(w.ID)
		if err != nil || !w.State.Valid() {
			return nil, s.badAnswer(r, "result %d: id %q, state %q", i, w.ID, w.State)
		}
		res[i] = store.EnqueueResult{ID: id, Duplicate: w.Duplicate, State: w.State}
	}
	return res, nil
}

// Claim implements store.Store (POST /v1/queues/{queue}/claim, answered at
// once).
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	jobs, _, err := s.ClaimWait(ctx, p, 0)
	return jobs, err
}

// ClaimWait implements store.ClaimWaiter: a claim that long-polls on the
// server, which claims for this store when a job comes. wait is capped at
// the server's longest poll; with none, the server answers at once.
func (s *Store) ClaimWait(ctx context.Context, p store.ClaimParams, wait time.Duration) ([]*store.Job, time.Duration, error) {
	if err := s.start(ctx); err != nil {
		return nil, 0, err
	}
	if err := p.Normalize(); err != nil {
		return nil, 0, err
	}
	wait = min(max(wait, 0), wire.MaxWaitSeconds*time.Second)
	r := request{method: http.MethodPost, path: "/v1/queues/" + seg(p.Queue) + "/claim",
		body: wire.ClaimParamsOf(p, wait), wait: wait}
	var out struct {
		Jobs          []wire.Job `json:"jobs"`
		WaitedSeconds float64    `json:"waited_seconds"`
	}
	if err := s.do(ctx, r, &out); err != nil {
		return nil, 0, err
	}
	if len(out.Jobs) > p.Limit {
		return nil, 0, s.badAnswer(r, "%d jobs for a claim of %d", len(out.Jobs), p.Limit)
	}
	if out.WaitedSeconds < 0 || out.WaitedSeconds > wait.Seconds()+1 {
		return nil, 0, s.badAnswer(r, "waited %gs for a wait of %v", out.WaitedSeconds, wait)
	}
	jobs, err := s.storeJobs(r, out.Jobs)
	// Truncated to the microsecond: never later than the server said.
	return jobs, time.Duration(out.WaitedSeconds*1e6) * time.Microsecond, err
}

// storeJobs converts views back into jobs.
func (s *Store) storeJobs(r request, views []wire.Job) ([]*store.Job, error) {
	jobs := make([]*store.Job, len(views))
	for i := range views {
		j, err := views[i].StoreJob()
		if err != nil {
			return nil, s.badAnswer(r, "job %d: %v", i, err)
		}
		jobs[i] = j
	}
	return jobs, nil
}

// Renew implements store.Store (POST /v1/renew).
func (s *Store) Renew(ctx context.Context, renewals []store.Renewal) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(renewals)); err != nil {
		return nil, err
	}
	errs := make([]error, len(renewals))
	var body wire.RenewRequest
	var at []int
	for i, rn := range renewals {
		if errs[i] = store.ValidLockDuration(rn.LockFor); errs[i] != nil {
			continue // refused as the store refuses it; the API would take zero as its default
		}
		body.Renewals = append(body.Renewals, wire.RenewalOf(rn))
		at = append(at, i)
	}
	if len(at) == 0 {
		return errs, nil
	}
	res, err := s.items(ctx, request{method: http.MethodPost, path: "/v1/renew", body: body}, len(at))
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		errs[i] = res[k]
	}
	return errs, nil
}

// itemsAnswer is a batch call's per-item answers.
type itemsAnswer struct {
	Results []wire.Item `json:"results"`
}

// items sends a batch call of n items and decodes its per-item answers.
func (s *Store) items(ctx context.Context, r request, n int) ([]error, error) {
	var out itemsAnswer
	if err := s.do(ctx, r, &out); err != nil {
		return nil, err
	}
	errs, err := wire.ItemErrors(out.Results, n)
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return errs, nil
}

// Settle implements store.Store (POST /v1/settle).
func (s *Store) Settle(ctx context.Context, verdicts []store.Verdict) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(verdicts)); err != nil {
		return nil, err
	}
	if len(verdicts) == 0 {
		return []error{}, nil
	}
	return s.items(ctx, request{method: http.MethodPost, path: "/v1/settle", body: wire.SettleRequestOf(verdicts)}, len(verdicts))
}

// ReapExpired implements store.Store (POST /v1/maintenance/reap).
func (s *Store) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	if err := s.start(ctx); err != nil {
		return store.ReapResult{}, err
	}
	if err := store.CheckReapLimit(limit); err != nil {
		return store.ReapResult{}, err
	}
	var out struct {
		Returned     int `json:"returned"`
		DeadLettered int `json:"dead_lettered"`
	}
	r := request{method: http.MethodPost, path: "/v1/maintenance/reap", query: url.Values{"limit": {strconv.Itoa(limit)}}}
	if err := s.do(ctx, r, &out); err != nil {
		return store.ReapResult{}, err
	}
	return store.ReapResult{Returned: out.Returned, DeadLettered: out.DeadLettered}, nil
}

// Get implements store.Store (GET /v1/jobs/{id}).
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Job, error) {
	r := request{method: http.MethodGet, path: "/v1/jobs/" + id.String()}
	var v wire.Job
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	j, err := v.StoreJob()
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return j, nil
}

// GetByUniqueKey implements store.Store (GET /v1/jobs/by-unique-key).
func (s *Store) GetByUniqueKey(ctx context.Context, tenant, key string) (*store.Job, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckUniqueKeyLookup(tenant, key); err != nil {
		return nil, err
	}
	q := url.Values{"key": {key}}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	r := request{method: http.MethodGet, path: "/v1/jobs/by-unique-key", query: q}
	var v wire.Job
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	j, err := v.StoreJob()
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return j, nil
}

// List implements store.Store (GET /v1/jobs, with each job's history).
func (s *Store) List(ctx context.Context, p store.ListParams) (*store.ListPage, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	q := wire.ListQuery(p)
	q.Set("history", "true")
	r := request{method: http.MethodGet, path: "/v1/jobs", query: q}
	var v wire.JobPage
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	jobs, err := s.storeJobs(r, v.Jobs)
	if err != nil {
		return nil, err
	}
	page := &store.ListPage{Jobs: jobs}
	if v.Next != "" {
		if page.Next, err = store.ParseID(v.Next); err != nil {
			return nil, s.badAnswer(r, "next %q", v.Next)
		}
	}
	return page, nil
}

// idsBody is the body of the batch verbs on jobs.
type idsBody struct {
	IDs []string `json:"ids"`
}

func idStrings(ids []store.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// Cancel implements store.Store (POST /v1/jobs/cancel).
func (s *Store) Cancel(ctx context.Context, ids []store.ID) ([]error, error) {
	return s.perID(ctx, "/v1/jobs/cancel", ids)
}

// Requeue implements store.Store (POST /v1/jobs/requeue).
func (s *Store) Requeue(ctx context.Context, ids []store.ID) ([]error, error) {
	return s.perID(ctx, "/v1/jobs/requeue", ids)
}

func (s *Store) perID(ctx context.Context, path string, ids []store.ID) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(ids)); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []error{}, nil
	}
	return s.items(ctx, request{method: http.MethodPost, path: path, body: idsBody{IDs: idStrings(ids)}}, len(ids))
}

// purgeBody is the body of POST /v1/dlq/purge.
type purgeBody struct {
	IDs   []string `json:"ids,omitempty"`
	Queue string   `json:"queue,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// Purge implements store.Store (POST /v1/dlq/purge). Purging every dead
// job (zero PurgeParams) needs an operator's key.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	if err := p.Check(); err != nil {
		return 0, err
	}
	body := purgeBody{Queue: p.Queue, IDs: idStrings(p.IDs), All: len(p.IDs) == 0 && p.Queue == ""}
	var out struct {
		Purged int `json:"purged"`
	}
	if err := s.do(ctx, request{method: http.MethodPost, path: "/v1/dlq/purge", body: body}, &out); err != nil {
		return 0, err
	}
	return out.Purged, nil
}

// PauseQueue implements store.Store (POST /v1/queues/{queue}/pause).
func (s *Store) PauseQueue(ctx context.Context, queue string) error {
	return s.queueVerb(ctx, queue, "pause")
}

// ResumeQueue implements store.Store (POST /v1/queues/{queue}/resume).
func (s *Store) ResumeQueue(ctx context.Context, queue string) error {
	return s.queueVerb(ctx, queue, "resume")
}

func (s *Store) queueVerb(ctx context.Context, queue, verb string) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	if err := store.ValidName("queue", queue, false); err != nil {
		return err // the API would take "" as the default queue
	}
	return s.do(ctx, request{method: http.MethodPost, path: "/v1/queues/" + seg(queue) + "/" + verb}, nil)
}

// Stats implements store.Store (GET /v1/stats).
func (s *Store) Stats(ctx context.Context) ([]store.QueueStats, error) {
	var out struct {
		Queues []wire.QueueStats `json:"queues"`
	}
	if err := s.do(ctx, request{method: http.MethodGet, path: "/v1/stats"}, &out); err != nil {
		return nil, err
	}
	stats := make([]store.QueueStats, len(out.Queues))
	for i, q := range out.Queues {
		stats[i] = q.StoreStats()
	}
	return stats, nil
}

// pruneBody is the body of POST /v1/maintenance/prune.
type pruneBody struct {
	CompletedBefore string `json:"completed_before,omitempty"`
	CancelledBefore string `json:"cancelled_before,omitempty"`
	DeadBefore      string `json:"dead_before,omitempty"`
	Limit           int    `json:"limit,omitempty"`
}

// Prune implements store.Store (POST /v1/maintenance/prune; an operator's
// key).
func (s *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	if err := p.Normalize(); err != nil {
		return 0, err
	}
	if p.CompletedBefore.IsZero() && p.CancelledBefore.IsZero() && p.DeadBefore.IsZero() {
		return 0, nil
	}
	body := pruneBody{CompletedBefore: timeText(p.CompletedBefore), CancelledBefore: timeText(p.CancelledBefore),
		DeadBefore: timeText(p.DeadBefore), Limit: p.Limit}
	var out struct {
		Pruned int `json:"pruned"`
	}
	if err := s.do(ctx, request{method: http.MethodPost, path: "/v1/maintenance/prune", body: body}, &out); err != nil {
		return 0, err
	}
	return out.Pruned, nil
}

// timeText is t in RFC 3339 with nanoseconds; "" for the zero time.
func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
