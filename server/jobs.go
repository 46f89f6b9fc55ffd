package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// HeaderIdempotencyKey names a single enqueue's unique key: a retried
// request with the same key returns the first job instead of a second.
const HeaderIdempotencyKey = "Idempotency-Key"

// enqueueAnswer is a batch enqueue's answer.
type enqueueAnswer struct {
	Results []wire.EnqueueResult `json:"results"`
}

// enqueue is POST /v1/jobs: one job (an object) or many ({"jobs": [...]}).
func (c *call) enqueue() (any, error) {
	raw, batch, err := c.batchBody("jobs")
	if err != nil {
		return nil, err
	}
	var params []store.EnqueueParams
	if batch {
		if c.r.Header.Get(HeaderIdempotencyKey) != "" {
			return nil, &store.ValidationError{Field: HeaderIdempotencyKey, Reason: "applies to a single job: give each job of a batch its unique_key"}
		}
		if params, err = wire.DecodeEnqueue(bytes.NewReader(raw)); err != nil {
			return nil, err
		}
	} else {
		var w wire.EnqueueParams
		if err := c.decodeFrom(raw, &w); err != nil {
			return nil, err
		}
		p, err := w.Params()
		if err != nil {
			return nil, &store.ItemError{Index: 0, Err: err}
		}
		if k := c.r.Header.Get(HeaderIdempotencyKey); k != "" {
			if p.UniqueKey != "" && p.UniqueKey != k {
				return nil, &store.ValidationError{Field: HeaderIdempotencyKey, Reason: "differs from the job's unique_key"}
			}
			p.UniqueKey = k
		}
		params = []store.EnqueueParams{p}
	}
	tc := traceContextOf(c.r)
	var errs []error
	for i := range params {
		params[i].Metadata = withTraceContext(params[i].Metadata, tc)
		if err := c.sc.ownParams(&params[i]); err != nil {
			errs = append(errs, &store.ItemError{Index: i, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := c.s.st.Enqueue(c.ctx, params)
	if m := c.s.cfg.Metrics; m != nil && err == nil {
		m.ObserveEnqueue(params, res, time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	created := false
	out := make([]wire.EnqueueResult, len(res))
	for i, r := range res {
		out[i] = wire.EnqueueResultOf(r)
		created = created || !r.Duplicate
	}
	if created {
		c.status = http.StatusCreated
	}
	if !batch {
		return out[0], nil
	}
	return enqueueAnswer{Results: out}, nil
}

// ownParams puts a job the key enqueues in its tenant and queue.
func (sc *scope) ownParams(p *store.EnqueueParams) error {
	var err error
	if p.Tenant, err = sc.tenantIn(p.Tenant); err != nil {
		return err
	}
	p.Queue, err = sc.queueIn(p.Queue)
	return err
}

// job returns the job of the path's {id}, or not found when it is not the
// key's to see.
func (c *call) job() (*store.Job, error) {
	id, err := c.jobID()
	if err != nil {
		return nil, err
	}
	j, err := c.s.st.Get(c.ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.sc.sees(j) {
		return nil, store.JobNotFound(id)
	}
	return j, nil
}

// view returns the view of a job as the key knows it.
func (c *call) view(j *store.Job, history bool) wire.Job {
	v := wire.JobOf(c.sc.jobOut(j), history)
	if j.LockToken != 0 && c.lockTokens() {
		v.LockToken = j.LockToken.String()
	}
	c.fixView(&v)
	return v
}

// HeaderLockTokens asks, with the value "true", for running jobs' lock
// tokens in the views of jobs read (not only claimed), as a store's Get and
// List give them; store/remote does. Only keys that may work (worker,
// admin) get them: with a token, a job's delivery can be settled.
const HeaderLockTokens = "Spool-Lock-Tokens"

// lockTokens says the views of jobs read carry their lock tokens.
func (c *call) lockTokens() bool {
	return c.r.Header.Get(HeaderLockTokens) == "true" && roleCan(c.sc.role, permWork)
}

func (c *call) fixView(v *wire.Job) {
	v.Queue, _ = c.sc.queueOut(v.Queue)
	if c.exactBytes() {
		v.ExactBytes()
	}
}

// getJob is GET /v1/jobs/{id}.
func (c *call) getJob() (any, error) {
	j, err := c.job()
	if err != nil {
		return nil, err
	}
	return c.view(j, true), nil
}

// jobByUniqueKey is GET /v1/jobs/by-unique-key?key=&tenant=: the job
// holding the unique key, or the newest finished one with it. A tenant's
// key looks in its own tenant; a job in a queue the key may not use is
// not found.
func (c *call) jobByUniqueKey() (any, error) {
	tenant, err := c.sc.tenantIn(c.query("tenant"))
	if err != nil {
		return nil, err
	}
	key := c.query("key")
	j, err := c.s.st.GetByUniqueKey(c.ctx, tenant, key)
	if err != nil {
		return nil, err
	}
	if !c.sc.sees(j) {
		return nil, store.UniqueKeyNotFound(tenant, key)
	}
	return c.view(j, true), nil
}

// listJobs is GET /v1/jobs?queue=&state=&kind=&tenant=&unique_key=
// &ordering_key=&created_after=&created_before=&order=&after=&limit=
// &history= (wire.ParseListQuery). With history=true each job comes with
// its error history, which lists otherwise leave out.
func (c *call) listJobs() (any, error) {
	p, err := wire.ParseListQuery(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	if p, err = c.sc.scoped(p); err != nil {
		return nil, err
	}
	page, err := c.s.st.List(c.ctx, p)
	if err != nil {
		return nil, err
	}
	history := c.query("history") == "true"
	v := wire.JobPage{Jobs: []wire.Job{}}
	for _, j := range page.Jobs {
		if c.sc.sees(j) {
			v.Jobs = append(v.Jobs, c.view(j, history))
		}
	}
	if !page.Next.IsZero() {
		v.Next = page.Next.String()
	}
	return v, nil
}

// idsRequest is the body of the batch verbs: {"ids": [...]}.
type idsRequest struct {
	IDs []string `json:"ids"`
}

// itemsAnswer is a batch verb's per-item answers.
type itemsAnswer struct {
	Results []wire.Item `json:"results"`
}

// cancelJob is POST /v1/jobs/{id}/cancel; requeueJob .../requeue. Each
// answers the job as it is afterwards.
func (c *call) cancelJob() (any, error)  { return c.oneVerb("job.cancel", c.s.st.Cancel) }
func (c *call) requeueJob() (any, error) { return c.oneVerb("job.requeue", c.s.st.Requeue) }

func (c *call) oneVerb(action string, verb func(ctx context.Context, ids []store.ID) ([]error, error)) (any, error) {
	j, err := c.job()
	if err != nil {
		return nil, err
	}
	errs, err := verb(c.ctx, []store.ID{j.ID})
	if err == nil {
		err = errs[0]
	}
	c.record(action, j.ID.String(), boolCount(err == nil), err)
	if err != nil {
		return nil, err
	}
	if j, err = c.s.st.Get(c.ctx, j.ID); err != nil {
		return nil, err
	}
	return c.view(j, true), nil
}

// cancelJobs is POST /v1/jobs/cancel {"ids": [...]}; requeueJobs
// /v1/jobs/requeue. Per-item answers.
func (c *call) cancelJobs() (any, error)  { return c.manyVerb("jobs.cancel", c.s.st.Cancel) }
func (c *call) requeueJobs() (any, error) { return c.manyVerb("jobs.requeue", c.s.st.Requeue) }

func (c *call) manyVerb(action string, verb func(ctx context.Context, ids []store.ID) ([]error, error)) (any, error) {
	var req idsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.IDs) > store.MaxBatch {
		return nil, &store.LimitError{Field: "ids", Limit: store.MaxBatch, Got: len(req.IDs)}
	}
	errs, err := perItem(req.IDs, func(s string) (store.ID, error) {
		id, err := store.ParseID(s)
		if err == nil {
			err = c.owns(id)
		}
		return id, err
	}, func(ids []store.ID) ([]error, error) { return verb(c.ctx, ids) }, asIs)
	if err != nil {
		return nil, err
	}
	c.recordItems(action, fmt.Sprintf("%d jobs by ID", len(req.IDs)), errs)
	return itemsAnswer{Results: wire.Items(errs)}, nil
}

// owns checks that job id is the key's: not found otherwise. A key of
// every tenant and queue owns every job without a look.
func (c *call) owns(id store.ID) error {
	if c.sc.all() && c.sc.queues == nil {
		return nil
	}
	j, err := c.s.st.Get(c.ctx, id)
	if err != nil {
		return err
	}
	if !c.sc.sees(j) {
		return store.JobNotFound(id)
	}
	return nil
}

// waitJob is GET /v1/jobs/{id}/wait?timeout=30s: it answers when the job
// has finished, with its result, or when the timeout passes (at most
// MaxWait), with the job as it is then; look at its state.
func (c *call) waitJob() (any, error) {
	j, err := c.job()
	if err != nil {
		return nil, err
	}
	d, err := c.waitQuery("timeout")
	if err != nil {
		return nil, err
	}
	if !j.State.Finished() && d > 0 {
		ctx, cancel := c.s.waitFor(c.ctx, d)
		done, err := c.s.client.Wait(ctx, j.ID)
		cancel()
		switch {
		case err == nil:
			j = done
		case c.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
			return nil, err
		default: // the wait ran out: answer the job as it is
			if j, err = c.s.st.Get(c.ctx, j.ID); err != nil {
				return nil, err
			}
		}
	}
	return c.view(j, true), nil
}

// waitQuery parses a long poll's wait, 0..MaxWait; default MaxWait.
func (c *call) waitQuery(name string) (time.Duration, error) {
	d, err := c.durationQuery(name, MaxWait)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > MaxWait {
		return 0, &store.ValidationError{Field: name, Reason: fmt.Sprintf("%v is outside 0s..%v", d, MaxWait)}
	}
	return d, nil
}
