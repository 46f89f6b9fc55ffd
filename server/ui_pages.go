package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// uiTable is every page and action of the dashboard: pages need the read
// permission, actions (POSTs) the admin permission, as their /v1 routes do.
func (s *Server) uiTable() []uiRoute {
	return []uiRoute{
		{method: http.MethodGet, path: "/login", perm: permPublic, fn: (*page).loginForm},
		{method: http.MethodPost, path: "/login", perm: permPublic, fn: (*page).login},
		{method: http.MethodPost, path: "/logout", perm: permRead, fn: (*page).logout},

		{method: http.MethodGet, path: "/{$}", perm: permRead, fn: (*page).overview},
		{method: http.MethodGet, path: "/live.json", perm: permRead, fn: (*page).live},
		{method: http.MethodPost, path: "/queues/pause", perm: permAdmin, fn: (*page).pauseQueue},
		{method: http.MethodPost, path: "/queues/resume", perm: permAdmin, fn: (*page).resumeQueue},

		{method: http.MethodGet, path: "/jobs", perm: permRead, fn: (*page).jobs},
		{method: http.MethodGet, path: "/dead", perm: permRead, fn: (*page).dead},
		{method: http.MethodGet, path: "/jobs/{id}", perm: permRead, fn: (*page).job},
		{method: http.MethodPost, path: "/jobs/{id}/cancel", perm: permAdmin, fn: (*page).cancelJob},
		{method: http.MethodPost, path: "/jobs/{id}/requeue", perm: permAdmin, fn: (*page).requeueJob},
		{method: http.MethodPost, path: "/jobs/{id}/delete", perm: permAdmin, fn: (*page).deleteJob},
		{method: http.MethodGet, path: "/bulk", perm: permAdmin, fn: (*page).bulkConfirm},
		{method: http.MethodPost, path: "/bulk", perm: permAdmin, fn: (*page).bulkRun},

		{method: http.MethodGet, path: "/schedules", perm: permRead, fn: (*page).schedules},
		{method: http.MethodGet, path: "/schedule", perm: permRead, fn: (*page).schedule},
		{method: http.MethodPost, path: "/schedule/pause", perm: permAdmin, fn: (*page).pauseSchedule},
		{method: http.MethodPost, path: "/schedule/resume", perm: permAdmin, fn: (*page).resumeSchedule},
		{method: http.MethodPost, path: "/schedule/trigger", perm: permAdmin, fn: (*page).triggerSchedule},
		{method: http.MethodPost, path: "/schedule/edit", perm: permAdmin, fn: (*page).editSchedule},

		{method: http.MethodGet, path: "/topics", perm: permRead, fn: (*page).topics},
		{method: http.MethodPost, path: "/subscription/pause", perm: permAdmin, fn: (*page).pauseSubscription},
		{method: http.MethodPost, path: "/subscription/resume", perm: permAdmin, fn: (*page).resumeSubscription},
		{method: http.MethodPost, path: "/subscription/rewind", perm: permAdmin, fn: (*page).rewindSubscription},

		{method: http.MethodGet, path: "/workers", perm: permRead, fn: (*page).workers},
		{method: http.MethodGet, path: "/keys", perm: permAdmin, fn: (*page).keys},
		{method: http.MethodPost, path: "/keys", perm: permAdmin, fn: (*page).createKey},
		{method: http.MethodPost, path: "/keys/{id}/revoke", perm: permAdmin, fn: (*page).revokeKey},
		{method: http.MethodGet, path: "/audit", perm: permRead, fn: (*page).audit},
	}
}

// sub returns a call of the API's route functions for this page: the
// session's scope and context, with query q, a JSON body and path values
// (name, value, ...), so a page runs the very code of its /v1 route.
func (p *page) sub(q url.Values, body any, pathValues ...string) (*call, error) {
	r := p.r.Clone(p.ctx)
	r.URL.RawQuery = q.Encode()
	for i := 0; i+1 < len(pathValues); i += 2 {
		r.SetPathValue(pathValues[i], pathValues[i+1])
	}
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.Header.Del(HeaderBytes)
	r.Header.Del(HeaderLockTokens)
	return &call{s: p.s, w: p.w, r: r, sc: p.sc, ctx: p.ctx, status: http.StatusOK, statsFor: p.s.cfg.Dashboard.StatsFor}, nil
}

// run calls fn of the API on a sub call and returns its answer as T.
func run[T any](p *page, q url.Values, body any, fn func(*call) (any, error), pathValues ...string) (T, error) {
	var zero T
	c, err := p.sub(q, body, pathValues...)
	if err != nil {
		return zero, err
	}
	v, err := fn(c)
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("spool: dashboard: the route answered %T", v)
	}
	return t, nil
}

// unsupported reports whether err says the store lacks a capability: the
// page then hides that part and says why.
func unsupported(err error) bool { return errors.Is(err, store.ErrUnsupported) }

// queueRow is a queue on the overview.
type queueRow struct {
	wire.QueueStats
	Total int
}

// overviewData is the overview's.
type overviewData struct {
	Queues            []queueRow
	Totals            map[store.State]int
	Dead, Workers     int
	DeadCapped        bool // a queue's dead count stopped at the store's cap
	WorkersKnown      bool
	Charts            *charts
	ChartsNote        string
	Due               []wire.ListedSchedule
	DueNote           string
	Subscriptions     []wire.Subscription
	SubscriptionsNote string
}

func (p *page) overview() error {
	stats, err := run[statsAnswer](p, nil, nil, (*call).stats)
	if err != nil {
		return err
	}
	d := overviewData{Totals: map[store.State]int{}}
	for _, q := range stats.Queues {
		row := queueRow{QueueStats: q}
		for st, n := range q.Counts {
			row.Total += n
			d.Totals[st] += n
		}
		d.DeadCapped = d.DeadCapped || slices.Contains(q.Capped, store.StateDead)
		d.Queues = append(d.Queues, row)
	}
	d.Dead = d.Totals[store.StateDead]
	if ws, err := run[wire.WorkerList](p, nil, nil, (*call).listWorkers); err == nil {
		d.Workers, d.WorkersKnown = len(ws.Workers), true
	} else if !unsupported(err) {
		return err
	}
	now := p.s.cfg.Clock.Now()
	switch mins, err := p.activityMinutes(now.Add(-time.Hour)); {
	case err == nil:
		d.Charts = chartsOf(mins, now, time.Hour)
	case unsupported(err):
		d.ChartsNote = "This store keeps no per-minute activity, so there are no charts."
	default:
		return err
	}
	if err := p.dueSoon(&d); err != nil {
		return err
	}
	switch subs, err := run[subscriptionsAnswer](p, nil, nil, (*call).listAllSubscriptions); {
	case err == nil:
		d.Subscriptions = subs.Subscriptions
		slices.SortStableFunc(d.Subscriptions, func(a, b wire.Subscription) int { return cmp.Compare(b.Lag.Behind, a.Lag.Behind) })
		d.Subscriptions = d.Subscriptions[:min(len(d.Subscriptions), 10)]
	case unsupported(err):
		d.SubscriptionsNote = "This store keeps no topics."
	default:
		return err
	}
	return p.render("overview.html", "Overview", d)
}

// dueSoon fills in the schedules due next: of the key's tenant's first
// page of schedules (the default tenant's for an operator's key).
func (p *page) dueSoon(d *overviewData) error {
	page, err := run[wire.ListedSchedulePage](p, url.Values{"limit": {strconv.Itoa(store.MaxListLimit)}}, nil, (*call).listSchedules)
	switch {
	case unsupported(err):
		d.DueNote = "This store keeps no schedules."
		return nil
	case err != nil:
		return err
	}
	var due []wire.ListedSchedule
	for _, s := range page.Schedules {
		if s.NextRunAt != nil && !s.Paused {
			due = append(due, s)
		}
	}
	slices.SortFunc(due, func(a, b wire.ListedSchedule) int { return a.NextRunAt.Compare(*b.NextRunAt) })
	d.Due = due[:min(len(due), 5)]
	if page.Next != "" {
		d.DueNote = fmt.Sprintf("Among the first %d schedules.", store.MaxListLimit)
	}
	return nil
}

// liveAnswer is GET /live.json: the overview's counts, which the page's
// script refreshes.
type liveAnswer struct {
	Queues []wire.QueueStats `json:"queues"`
	Dead   int               `json:"dead"`
	// DeadCapped says a queue's dead count stopped at the store's cap.
	DeadCapped bool      `json:"dead_capped,omitempty"`
	Workers    *int      `json:"workers"`
	At         time.Time `json:"at"`
}

func (p *page) live() error {
	stats, err := run[statsAnswer](p, nil, nil, (*call).stats)
	if err != nil {
		return err
	}
	v := liveAnswer{Queues: stats.Queues, At: p.s.cfg.Clock.Now().UTC()}
	for _, q := range stats.Queues {
		v.Dead += q.Counts[store.StateDead]
		v.DeadCapped = v.DeadCapped || slices.Contains(q.Capped, store.StateDead)
	}
	if ws, err := run[wire.WorkerList](p, nil, nil, (*call).listWorkers); err == nil {
		n := len(ws.Workers)
		v.Workers = &n
	}
	writeJSON(p.w, http.StatusOK, v)
	return nil
}

func (p *page) pauseQueue() error  { return p.queueAction((*call).pauseQueue, "Paused queue %s.") }
func (p *page) resumeQueue() error { return p.queueAction((*call).resumeQueue, "Resumed queue %s.") }

func (p *page) queueAction(fn func(*call) (any, error), msg string) error {
	q := p.r.PostFormValue("queue")
	if _, err := run[queueAnswer](p, nil, nil, fn, "queue", q); err != nil {
		return err
	}
	return p.done("/", fmt.Sprintf(msg, q))
}

// jobsPageSize is how many jobs a page of the job list shows.
const jobsPageSize = 50

// jobsData is the job list's (the queue page and the dead letters).
type jobsData struct {
	Filter       jobFilter
	Jobs         []wire.Job
	Newer, Older string // the links to the next pages; empty when none
	Dead         bool
	Query        string // the filter as a query string, for links
	Counts       *wire.QueueStats
	Bulk         bool // the store has bulk actions
	Tenants      bool // the key sees every tenant (it may filter by one)
	States       []store.State
	// Charts are the queue's last hour, when the list is one queue's and
	// the store keeps activity.
	Charts *charts
}

func (p *page) jobs() error { return p.jobList(false) }
func (p *page) dead() error { return p.jobList(true) }

// jobList shows a page of jobs newest first, filtered by the query, with
// links to newer and older pages (keyset: ?after= is older than a job,
// ?before= newer than one).
func (p *page) jobList(dead bool) error {
	q := p.r.URL.Query()
	f := filterOf(q)
	if dead {
		f.State = string(store.StateDead)
	}
	if f.Queue == "" && p.sc.queues != nil {
		f.Queue = p.sc.queues[0] // a key limited to queues lists one at a time
	}
	lq := f.rfc3339().values()
	lq.Set("limit", strconv.Itoa(jobsPageSize))
	before := q.Get("before")
	if before != "" {
		lq.Set("after", before) // oldest first after it: the newer page, reversed below
	} else {
		lq.Set("order", "newest")
		if a := q.Get("after"); a != "" {
			lq.Set("after", a)
		}
	}
	res, err := run[wire.JobPage](p, lq, nil, (*call).listJobs)
	if err != nil {
		return err
	}
	d := jobsData{Filter: f, Jobs: res.Jobs, Dead: dead, Query: f.values().Encode(), Bulk: p.s.st.Capabilities().Bulk != nil,
		Tenants: p.sc.all(), States: store.States}
	if dead {
		fq := f.values()
		fq.Del("state")
		d.Query = fq.Encode()
	}
	link := func(k, v string) string {
		u := url.Values{}
		if d.Query != "" {
			u, _ = url.ParseQuery(d.Query)
		}
		u.Set(k, v)
		return "?" + u.Encode()
	}
	n := len(d.Jobs)
	if before != "" {
		slices.Reverse(d.Jobs)
		if res.Next != "" && n > 0 {
			d.Newer = link("before", d.Jobs[0].ID)
		}
		if n > 0 {
			d.Older = link("after", d.Jobs[n-1].ID)
		}
	} else {
		if res.Next != "" {
			d.Older = link("after", res.Next)
		}
		if q.Get("after") != "" && n > 0 {
			d.Newer = link("before", d.Jobs[0].ID)
		}
	}
	if f.Queue != "" {
		if stats, err := run[statsAnswer](p, nil, nil, (*call).stats); err == nil {
			for i := range stats.Queues {
				if stats.Queues[i].Queue == f.Queue {
					d.Counts = &stats.Queues[i]
				}
			}
		}
	}
	if f.Queue != "" {
		now := p.s.cfg.Clock.Now()
		if mins, err := p.activityMinutes(now.Add(-time.Hour)); err == nil {
			mins = slices.DeleteFunc(mins, func(m store.ActivityMinute) bool { return m.Queue != f.Queue })
			d.Charts = chartsOf(mins, now, time.Hour)
		} else if !unsupported(err) {
			return err
		}
	}
	title := "Jobs"
	switch {
	case dead:
		title, p.nav = "Dead letters", "dead"
	case f.Queue != "":
		title = "Queue " + f.Queue
	}
	return p.render("jobs.html", title, d)
}

// jobData is the job page's.
type jobData struct {
	Job              wire.Job
	Payload, Result  string
	PayloadBig       bool
	ResultBig        bool
	PayloadIsBase64  bool
	Timeline         []timelineEntry
	CanCancel        bool
	CanRequeue       bool
	CanDelete        bool
	LastAttemptTaken string
	// Events are the events a subscription's delivery carries, with their
	// headers and payloads.
	Events []deliveredEvent
}

// deliveredEvent is an event of a delivery, for the job page.
type deliveredEvent struct {
	wire.Event
	Pretty string
}

// timelineEntry is one moment of a job's life.
type timelineEntry struct {
	At    time.Time
	What  string
	Class string
	rank  int // the order of moments of the same millisecond
}

// foldBytes is the size past which payloads and results are folded.
const foldBytes = 2 << 10

func (p *page) job() error {
	j, err := run[wire.Job](p, nil, nil, (*call).getJob, "id", p.r.PathValue("id"))
	if err != nil {
		return err
	}
	d := jobData{Job: j, Payload: prettyJSON(j.Payload), Result: prettyJSON(j.Result),
		CanCancel: j.State.Live(), CanRequeue: j.State == store.StateDead || j.State == store.StateCancelled, CanDelete: j.State == store.StateDead}
	if d.Payload == "" && j.PayloadBase64 != "" {
		d.Payload, d.PayloadIsBase64 = j.PayloadBase64, true
	}
	d.PayloadBig, d.ResultBig = len(d.Payload) > foldBytes, len(d.Result) > foldBytes
	if j.LastAttemptSeconds != nil {
		d.LastAttemptTaken = seconds(*j.LastAttemptSeconds)
	}
	d.Timeline = timeline(j)
	if strings.HasPrefix(j.Queue, store.SubscriptionQueuePrefix) {
		if d.Events, err = p.deliveredEvents(); err != nil {
			return err
		}
	}
	return p.render("job.html", "Job "+j.ID, d)
}

// deliveredEvents decodes the events of the path's job, a subscription's
// delivery: none when its payload is not one.
func (p *page) deliveredEvents() ([]deliveredEvent, error) {
	c, err := p.sub(nil, nil, "id", p.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	sj, err := c.job()
	if err != nil {
		return nil, err
	}
	events, err := store.DecodeDeliveries(c.sc.jobOut(sj))
	if err != nil {
		return nil, nil //nolint:nilerr // a payload that is not a delivery is shown as it is
	}
	out := make([]deliveredEvent, len(events))
	for i, e := range events {
		out[i].Event = wire.EventOf(e)
		out[i].Pretty = prettyJSON(out[i].Payload)
		if out[i].Pretty == "" && out[i].PayloadBase64 != "" {
			out[i].Pretty = out[i].PayloadBase64
		}
	}
	return out, nil
}

// timeline orders what is known of a job's life: created, due, each
// failed attempt, the latest delivery, its end.
func timeline(j wire.Job) []timelineEntry {
	t := []timelineEntry{{At: j.CreatedAt, What: "enqueued", Class: "scheduled"}}
	if j.RunAt.After(j.CreatedAt) {
		t = append(t, timelineEntry{At: j.RunAt, What: "due", Class: "scheduled", rank: 1})
	}
	if j.AttemptedAt != nil {
		t = append(t, timelineEntry{At: *j.AttemptedAt, What: fmt.Sprintf("delivery %d began", j.Deliveries), Class: "running", rank: 2})
	}
	for _, e := range j.Errors {
		t = append(t, timelineEntry{At: e.At, What: fmt.Sprintf("attempt %d failed: %s", e.Attempt, firstLine(e.Message)), Class: "dead", rank: 3})
	}
	if j.FinishedAt != nil {
		what := string(j.State)
		if j.DeadReason != "" {
			what += " (" + j.DeadReason + ")"
		}
		t = append(t, timelineEntry{At: *j.FinishedAt, What: what, Class: string(j.State), rank: 4})
	}
	// Moments a store records in one operation may differ by microseconds
	// in either order: to the millisecond, the life's order decides.
	slices.SortStableFunc(t, func(a, b timelineEntry) int {
		return cmp.Or(a.At.Truncate(time.Millisecond).Compare(b.At.Truncate(time.Millisecond)), cmp.Compare(a.rank, b.rank))
	})
	return t
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// prettyJSON indents JSON for reading; "" for none.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func (p *page) cancelJob() error {
	return p.jobAction((*call).cancelJob, "Cancelled the job.")
}

func (p *page) requeueJob() error {
	return p.jobAction((*call).requeueJob, "Requeued the job: it runs again.")
}

func (p *page) jobAction(fn func(*call) (any, error), msg string) error {
	id := p.r.PathValue("id")
	if _, err := run[wire.Job](p, nil, nil, fn, "id", id); err != nil {
		return err
	}
	return p.done("/jobs/"+url.PathEscape(id), msg)
}

// deleteJob deletes a dead letter (POST /v1/dlq/purge by ID).
func (p *page) deleteJob() error {
	id := p.r.PathValue("id")
	j, err := run[wire.Job](p, nil, nil, (*call).getJob, "id", id)
	if err != nil {
		return err
	}
	if j.State != store.StateDead {
		jid, _ := store.ParseID(j.ID)
		return &store.StateError{ID: jid, State: j.State, Op: "delete (a job is deleted alone once dead; cancel it first, or delete in bulk)"}
	}
	if _, err := run[purgeAnswer](p, nil, deadRequest{IDs: []string{id}}, (*call).purgeDead); err != nil {
		return err
	}
	return p.done("/dead", "Deleted the dead letter "+id+".")
}

// bulkData is the bulk confirm page's.
type bulkData struct {
	Action store.BulkAction
	Filter jobFilter
	Count  countAnswer
	What   string
	Back   string
}

// bulkCap is where the confirm step stops counting.
const bulkCap = DefaultCountCap

// bulkFilter reads a bulk action's filter and action from a form or query.
func bulkFilter(v url.Values) (store.BulkAction, jobFilter, string) {
	return store.BulkAction(v.Get("action")), filterOf(v), safeNext(v.Get("back"))
}

// bulkConfirm is GET /bulk?action=&<filter>: how many jobs the action
// would change, and a button to do it.
func (p *page) bulkConfirm() error {
	action, f, back := bulkFilter(p.r.URL.Query())
	switch action {
	case store.BulkCancel, store.BulkRequeue, store.BulkDelete:
	default:
		return &store.ValidationError{Field: "action", Reason: fmt.Sprintf("%q is not cancel, requeue or delete", action)}
	}
	n, err := p.count(bulkFilterFor(action, f), bulkCap)
	if err != nil {
		return err
	}
	return p.render("bulk.html", "Confirm", bulkData{Action: action, Filter: f, Count: n, What: f.describe(), Back: back})
}

// bulkFilterFor narrows a filter to the jobs an action applies to, so the
// count shown is the count changed.
func bulkFilterFor(action store.BulkAction, f jobFilter) jobFilter {
	if f.State != "" {
		return f
	}
	switch action {
	case store.BulkCancel:
		f.State = "scheduled,available,running"
	case store.BulkRequeue:
		f.State = "dead,cancelled"
	case store.BulkDelete:
		f.State = "scheduled,available,completed,cancelled,dead"
	}
	return f
}

// bulkRun is POST /bulk: the action over the filter, in one statement.
func (p *page) bulkRun() error {
	action, f, back := bulkFilter(p.r.PostForm)
	res, err := p.bulk(action, f)
	if err != nil {
		return err
	}
	verb := map[store.BulkAction]string{store.BulkCancel: "Cancelled", store.BulkRequeue: "Requeued", store.BulkDelete: "Deleted"}[action]
	return p.done(back, fmt.Sprintf("%s %d jobs (%s).", verb, res.Changed, f.describe()))
}

// schedulesData is the schedule list's.
type schedulesData struct {
	Tenant    string
	Tenants   bool
	Schedules []wire.ListedSchedule
	Next      string
	Note      string
}

func (p *page) schedules() error {
	q := url.Values{"tenant": {p.query("tenant")}, "after": {p.query("after")}}
	d := schedulesData{Tenant: p.query("tenant"), Tenants: p.sc.all()}
	res, err := run[wire.ListedSchedulePage](p, q, nil, (*call).listSchedules)
	switch {
	case unsupported(err):
		d.Note = "This store keeps no schedules."
	case err != nil:
		return err
	default:
		d.Schedules, d.Next = res.Schedules, res.Next
	}
	return p.render("schedules.html", "Schedules", d)
}

// scheduleData is a schedule's page.
type scheduleData struct {
	S       wire.ScheduleDetail
	Tenant  string
	Payload string
	Ref     string // its page's query
}

func (p *page) schedule() error {
	id, tenant := p.query("id"), p.query("tenant")
	s, err := run[wire.ScheduleDetail](p, url.Values{"tenant": {tenant}, "next": {"5"}}, nil, (*call).getSchedule, "id", id)
	if err != nil {
		return err
	}
	d := scheduleData{S: s, Tenant: tenant, Payload: prettyJSON(s.Payload), Ref: scheduleRef(id, tenant)}
	return p.render("schedule.html", "Schedule "+id, d)
}

func scheduleRef(id, tenant string) string {
	v := url.Values{"id": {id}}
	if tenant != "" {
		v.Set("tenant", tenant)
	}
	return "/schedule?" + v.Encode()
}

func (p *page) pauseSchedule() error {
	return p.scheduleAction((*call).pauseSchedule, "Paused the schedule.")
}

func (p *page) resumeSchedule() error {
	return p.scheduleAction((*call).resumeSchedule, "Resumed the schedule.")
}

func (p *page) scheduleAction(fn func(*call) (any, error), msg string) error {
	id, tenant := p.r.PostFormValue("id"), p.r.PostFormValue("tenant")
	if _, err := run[wire.Schedule](p, url.Values{"tenant": {tenant}}, nil, fn, "id", id); err != nil {
		return err
	}
	return p.done(scheduleRef(id, tenant), msg)
}

func (p *page) triggerSchedule() error {
	id, tenant := p.r.PostFormValue("id"), p.r.PostFormValue("tenant")
	res, err := run[triggeredAnswer](p, url.Values{"tenant": {tenant}}, nil, (*call).triggerSchedule, "id", id)
	if err != nil {
		return err
	}
	msg := "Triggered a run: job " + res.JobID + "."
	if res.Duplicate {
		msg = "A run is already live: job " + res.JobID + "."
	}
	return p.done(scheduleRef(id, tenant), msg)
}

// editSchedule is POST /schedule/edit: the schedule's definition from the
// form, written only while the schedule is at the form's version.
func (p *page) editSchedule() error {
	f := p.r.PostForm
	w := wire.ScheduleParams{ID: f.Get("id"), Tenant: f.Get("tenant"), Spec: f.Get("spec"), Zone: f.Get("zone"), Queue: f.Get("queue"),
		Kind: f.Get("kind"), Overlap: f.Get("overlap"), Misfire: f.Get("misfire"), Mode: f.Get("mode"), Paused: f.Get("paused") == "on"}
	var err error
	ints := []struct {
		name string
		to   *int
	}{{"priority", &w.Priority}, {"max_attempts", &w.MaxAttempts}, {"catch_up_max", &w.CatchUpMax}}
	for _, n := range ints {
		if v := strings.TrimSpace(f.Get(n.name)); v != "" {
			if *n.to, err = strconv.Atoi(v); err != nil {
				return &store.ValidationError{Field: n.name, Reason: strconv.Quote(v) + " is not a whole number"}
			}
		}
	}
	if w.Version, err = strconv.ParseInt(f.Get("version"), 10, 64); err != nil || w.Version < 1 {
		return &store.ValidationError{Field: "version", Reason: "is missing: reload the schedule and edit it again"}
	}
	if pl := strings.TrimSpace(f.Get("payload")); pl != "" {
		if !json.Valid([]byte(pl)) {
			return &store.ValidationError{Field: "payload", Reason: "is not JSON"}
		}
		w.Payload = json.RawMessage(pl)
	}
	if _, err := run[wire.UpsertedSchedule](p, nil, w, (*call).upsertSchedules); err != nil {
		return err
	}
	return p.done(scheduleRef(w.ID, w.Tenant), "Saved the schedule.")
}

// topicsData is the topics page's.
type topicsData struct {
	Topics        []wire.Topic
	Subscriptions []wire.Subscription
	Note          string
}

func (p *page) topics() error {
	var d topicsData
	topics, err := run[topicsAnswer](p, nil, nil, (*call).listTopics)
	switch {
	case unsupported(err):
		d.Note = "This store keeps no topics."
		return p.render("topics.html", "Topics", d)
	case err != nil:
		return err
	}
	subs, err := run[subscriptionsAnswer](p, nil, nil, (*call).listAllSubscriptions)
	if err != nil {
		return err
	}
	d.Topics, d.Subscriptions = topics.Topics, subs.Subscriptions
	return p.render("topics.html", "Topics", d)
}

func (p *page) pauseSubscription() error {
	return p.subscriptionAction((*call).pauseSubscription, nil, "Paused subscription %s.")
}

func (p *page) resumeSubscription() error {
	return p.subscriptionAction((*call).resumeSubscription, nil, "Resumed subscription %s.")
}

// rewindSubscription moves a subscription to start, now, a position or a
// time, as POST .../rewind does.
func (p *page) rewindSubscription() error {
	to := strings.TrimSpace(p.r.PostFormValue("to"))
	var body map[string]any
	if n, err := strconv.ParseInt(to, 10, 64); err == nil {
		body = map[string]any{"to": n}
	} else {
		body = map[string]any{"to": to}
	}
	return p.subscriptionAction((*call).rewindSubscription, body, "Rewound subscription %s to "+to+".")
}

func (p *page) subscriptionAction(fn func(*call) (any, error), body any, msg string) error {
	topic, name := p.r.PostFormValue("topic"), p.r.PostFormValue("name")
	c, err := p.sub(nil, body, "topic", topic, "name", name)
	if err != nil {
		return err
	}
	if _, err := fn(c); err != nil {
		return err
	}
	return p.done("/topics", fmt.Sprintf(msg, topic+"/"+name))
}

func (p *page) workers() error {
	d := map[string]any{}
	ws, err := run[wire.WorkerList](p, nil, nil, (*call).listWorkers)
	switch {
	case unsupported(err):
		d["Note"] = "This store keeps no workers online."
	case err != nil:
		return err
	default:
		d["Workers"] = ws.Workers
	}
	return p.render("workers.html", "Workers", d)
}

// keysData is the keys page's.
type keysData struct {
	Keys    []wire.APIKey
	Created *createdKey
	Tenants bool
	Roles   []string
	Now     time.Time
}

func (p *page) keys() error { return p.keysPage(nil) }

func (p *page) keysPage(created *createdKey) error {
	res, err := run[keysAnswer](p, nil, nil, (*call).listKeys)
	if err != nil {
		return err
	}
	return p.render("keys.html", "API keys", keysData{Keys: res.Keys, Created: created, Tenants: p.sc.all(),
		Roles: []string{store.RoleReader, store.RoleProducer, store.RoleWorker, store.RoleAdmin}, Now: p.s.cfg.Clock.Now()})
}

// createKey is POST /keys: the new key's token is shown on the page that
// answers, this once (never through a redirect or a cookie).
func (p *page) createKey() error {
	f := p.r.PostForm
	req := keyRequest{Tenant: f.Get("tenant"), Role: f.Get("role"), Name: f.Get("name"), Expires: strings.TrimSpace(f.Get("expires"))}
	for q := range strings.SplitSeq(f.Get("queues"), ",") {
		if q = strings.TrimSpace(q); q != "" {
			req.Queues = append(req.Queues, q)
		}
	}
	created, err := p.newKey(req)
	if err != nil {
		return err
	}
	p.status = http.StatusCreated
	return p.keysPage(&created)
}

func (p *page) revokeKey() error {
	id := p.r.PathValue("id")
	if _, err := p.revoke(id); err != nil {
		return err
	}
	return p.done("/keys", "Revoked key "+id+".")
}

func (p *page) audit() error {
	d := map[string]any{}
	res, err := run[auditAnswer](p, url.Values{"before": {p.query("before")}, "limit": {"100"}}, nil, (*call).audit)
	switch {
	case unsupported(err):
		d["Note"] = "This store keeps no audit log."
	case err != nil:
		return err
	default:
		d["Entries"] = res.Entries
		if res.Next > 0 {
			d["Next"] = "?before=" + strconv.FormatInt(res.Next, 10)
		}
	}
	return p.render("audit.html", "Audit log", d)
}
