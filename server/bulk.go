package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The routes the dashboard needs beyond the job API: counting and acting
// on every job a filter selects (store.BulkStore), per-minute activity
// (store.ActivityStore) and the audit log (store.AuditStore). Each answers
// 501 unsupported when the store lacks the capability.

// DefaultCountCap is where GET /v1/jobs/count stops counting unless limit=
// says otherwise; MaxCountCap is the most it counts.
const (
	DefaultCountCap = 100_000
	MaxCountCap     = 10_000_000
)

// bulkStore returns the store's bulk capability, or ErrUnsupported.
func (c *call) bulkStore() (store.BulkStore, error) {
	b := c.s.st.Capabilities().Bulk
	if b == nil {
		return nil, fmt.Errorf("%w: the store has no bulk actions", store.ErrUnsupported)
	}
	return b, nil
}

// countAnswer is GET /v1/jobs/count's answer.
type countAnswer struct {
	Count int `json:"count"`
	// Capped says more jobs match than were counted (limit).
	Capped bool `json:"capped"`
}

// countJobs is GET /v1/jobs/count?<the filter of GET /v1/jobs>&limit=.
func (c *call) countJobs() (any, error) {
	limit, err := c.intQuery("limit", DefaultCountCap)
	if err != nil {
		return nil, err
	}
	return c.count(filterOf(c.r.URL.Query()), limit)
}

// count counts up to limit jobs f selects in the key's scope.
func (c *call) count(f jobFilter, limit int) (countAnswer, error) {
	if limit < 1 || limit > MaxCountCap {
		return countAnswer{}, &store.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", limit, MaxCountCap)}
	}
	b, err := c.bulkStore()
	if err != nil {
		return countAnswer{}, err
	}
	p, err := c.sc.listParams(f)
	if err != nil {
		return countAnswer{}, err
	}
	p.Limit = limit
	n, capped, err := b.CountJobs(c.ctx, p)
	if err != nil {
		return countAnswer{}, err
	}
	return countAnswer{Count: n, Capped: capped}, nil
}

// bulkRequest is POST /v1/jobs/bulk's body.
type bulkRequest struct {
	// Action is cancel (live jobs), requeue (dead and cancelled ones) or
	// delete (any but running ones).
	Action store.BulkAction `json:"action"`
	// Filter selects the jobs, as GET /v1/jobs's query does; it is
	// required, and {} selects every job the key sees.
	Filter *jobFilter `json:"filter"`
}

// bulkAnswer is what a bulk action changed.
type bulkAnswer struct {
	Action  store.BulkAction `json:"action"`
	Changed int              `json:"changed"`
}

// bulkJobs is POST /v1/jobs/bulk {"action": "cancel", "filter": {...}}.
func (c *call) bulkJobs() (any, error) {
	var req bulkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Filter == nil {
		return nil, &store.ValidationError{Field: "filter", Reason: "is required ({} selects every job the key sees)"}
	}
	return c.bulk(req.Action, *req.Filter)
}

// bulk applies action to every job f selects in the key's scope, in one
// store call, and records it.
func (c *call) bulk(action store.BulkAction, f jobFilter) (bulkAnswer, error) {
	switch action {
	case store.BulkCancel, store.BulkRequeue, store.BulkDelete:
	default:
		return bulkAnswer{}, &store.ValidationError{Field: "action", Reason: fmt.Sprintf("%q is not cancel, requeue or delete", action)}
	}
	b, err := c.bulkStore()
	if err != nil {
		return bulkAnswer{}, err
	}
	p, err := c.sc.listParams(f)
	if err != nil {
		return bulkAnswer{}, err
	}
	n, err := b.BulkJobs(c.ctx, action, p)
	c.record("jobs.bulk_"+string(action), f.describe(), n, err)
	if err != nil {
		return bulkAnswer{}, err
	}
	return bulkAnswer{Action: action, Changed: n}, nil
}

// activityAnswer is GET /v1/activity's answer.
type activityAnswer struct {
	// Bounds are the upper bounds, in milliseconds, of the pickup
	// histogram's buckets; the last bucket counts the rest.
	Bounds  []float64              `json:"pickup_bounds_ms"`
	Minutes []store.ActivityMinute `json:"minutes"`
}

// maxActivitySince is how far back GET /v1/activity looks at most.
const maxActivitySince = store.ActivityRetention

// activity is GET /v1/activity?since=: per-minute counts per queue.
func (c *call) activity() (any, error) {
	since := c.s.cfg.Clock.Now().Add(-time.Hour)
	if s := c.query("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			since = c.s.cfg.Clock.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			since = t
		} else {
			return nil, &store.ValidationError{Field: "since", Reason: strconv.Quote(s) + " is neither a duration such as 1h nor an RFC 3339 time"}
		}
	}
	mins, err := c.activityMinutes(since)
	if err != nil {
		return nil, err
	}
	return activityAnswer{Bounds: store.PickupBounds[:], Minutes: mins}, nil
}

// activityMinutes returns the minutes from since on of the queues the key
// sees, named as it knows them.
func (c *call) activityMinutes(since time.Time) ([]store.ActivityMinute, error) {
	a := c.s.st.Capabilities().Activity
	if a == nil {
		return nil, fmt.Errorf("%w: the store keeps no activity", store.ErrUnsupported)
	}
	if oldest := c.s.cfg.Clock.Now().Add(-maxActivitySince); since.Before(oldest) {
		since = oldest
	}
	rows, err := a.Activity(c.ctx, c.sc.tenant, since)
	if err != nil {
		return nil, err
	}
	out := []store.ActivityMinute{}
	for _, m := range rows {
		if q, ok := c.sc.queueOut(m.Queue); ok {
			m.Queue = q
			out = append(out, m)
		}
	}
	return out, nil
}

// auditAnswer is GET /v1/audit's answer.
type auditAnswer struct {
	Entries []*store.AuditEntry `json:"entries"`
	// Next is the before= of the next (older) page; 0 on the last.
	Next int64 `json:"next"`
}

// audit is GET /v1/audit?before=&limit=: the key's tenant's entries (an
// operator's: every one), newest first.
func (c *call) audit() (any, error) {
	as := c.s.st.Capabilities().Audit
	if as == nil {
		return nil, fmt.Errorf("%w: the store keeps no audit log", store.ErrUnsupported)
	}
	before, err := c.intQuery("before", 0)
	if err != nil {
		return nil, err
	}
	limit, err := c.intQuery("limit", store.DefaultListLimit)
	if err != nil {
		return nil, err
	}
	if limit < 1 || limit > store.MaxListLimit {
		return nil, &store.LimitError{Field: "limit", Limit: store.MaxListLimit, Got: limit}
	}
	if before < 0 {
		return nil, &store.ValidationError{Field: "before", Reason: "may not be negative"}
	}
	entries, err := as.ListAudit(c.ctx, store.AuditListParams{Tenant: c.sc.tenant, Before: int64(before), Limit: limit})
	if err != nil {
		return nil, err
	}
	out := auditAnswer{Entries: orEmpty(entries)}
	if len(entries) == limit {
		out.Next = entries[len(entries)-1].ID
	}
	return out, nil
}

// record appends an action to the audit log when the store keeps one:
// what was done, to what, how many items it changed, and the error it
// met, if any. A failure to record is logged, not returned: the action
// itself is done.
func (c *call) record(action, target string, count int, failed error) {
	as := c.s.st.Capabilities().Audit
	if as == nil || c.sc == nil {
		return
	}
	e := store.AuditEntry{Tenant: c.sc.tenant, KeyID: c.sc.keyID, Action: action, Target: auditText(target), Count: count}
	if c.sc.all() {
		e.Tenant = ""
	}
	if failed != nil {
		e.Detail = auditText(wire.ErrorOf(failed).Message)
	}
	if _, err := as.RecordAudit(c.ctx, e); err != nil && !errors.Is(err, c.ctx.Err()) {
		c.s.cfg.Logger.Error("spool serve: recording an action in the audit log failed", "action", action, "err", err)
	}
}

// maxAuditText is the most of a target or detail the log keeps.
const maxAuditText = 4 << 10

// auditText makes s fit the log: UTF-8 without NUL bytes, at most
// maxAuditText bytes (a filter names what the request gave).
func auditText(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxAuditText {
		return s
	}
	cut := maxAuditText - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// recordItems records a batch verb: the items that went through, and the
// first error of those that did not.
func (c *call) recordItems(action, target string, errs []error) {
	n := 0
	var first error
	for _, err := range errs {
		if err == nil {
			n++
		} else if first == nil {
			first = err
		}
	}
	c.record(action, target, n, first)
}
