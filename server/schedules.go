package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// Schedules over HTTP: everything spool schedules does, and FireDue for a
// remote store's scheduler.
//
// A schedule belongs to a tenant. A tenant's key works in its own tenant
// only: a ref (or a schedule written) that names another tenant is refused
// as forbidden, and another tenant's schedule is never found, since the
// key's refs always name its own. The job template's queue is the key's
// name for it, stored under the tenant's prefix as a job's queue is. Reads
// need the read permission, writes the admin permission.

// schedulesNextDefault is how many coming slots GET /v1/schedules/{id}
// shows unless ?next= says otherwise, as spool schedules get does.
const schedulesNextDefault = 5

// maxNextSlots bounds ?next=.
const maxNextSlots = 1000

// schedules returns the store's schedules, or an error matching
// store.ErrUnsupported when it keeps none.
func (c *call) schedules() (store.ScheduleStore, error) {
	ss := c.s.st.Capabilities().Schedules
	if ss == nil {
		return nil, fmt.Errorf("%w: the store keeps no schedules", store.ErrUnsupported)
	}
	return ss, nil
}

// refIn returns the stored ref of the schedule a key names: in its own
// tenant, or forbidden when it names another.
func (sc *scope) refIn(r store.ScheduleRef) (store.ScheduleRef, error) {
	t, err := sc.tenantIn(r.Tenant)
	return store.ScheduleRef{Tenant: t, ID: r.ID}, err
}

// seesSchedule reports whether a stored schedule is the key's to see: its
// tenant's, enqueueing into a queue the key may use.
func (sc *scope) seesSchedule(s *store.Schedule) bool {
	if !sc.all() && s.Tenant != sc.tenant {
		return false
	}
	_, ok := sc.queueOut(s.Queue)
	return ok
}

// scheduleIn returns the stored form of a schedule the key writes: in its
// tenant, its queue under the tenant's prefix.
func (sc *scope) scheduleIn(s store.Schedule) (store.Schedule, error) {
	var err error
	if s.Tenant, err = sc.tenantIn(s.Tenant); err != nil {
		return s, err
	}
	s.Queue, err = sc.queueIn(s.Queue)
	return s, err
}

// scheduleView returns the view of a stored schedule as the key knows it.
func (c *call) scheduleView(s *store.Schedule) wire.Schedule {
	v := wire.ScheduleOf(s)
	v.Queue, _ = c.sc.queueOut(v.Queue)
	if c.exactBytes() {
		v.ExactBytes()
	}
	return v
}

// ownsSchedule checks that the schedule ref names is the key's: not found
// otherwise. A key of every tenant and queue owns every schedule without a
// look.
func (c *call) ownsSchedule(ss store.ScheduleStore, ref store.ScheduleRef) error {
	if c.sc.all() && c.sc.queues == nil {
		return nil
	}
	s, err := ss.GetSchedule(c.ctx, ref)
	if err != nil {
		return err
	}
	if !c.sc.seesSchedule(s) {
		return store.ScheduleNotFound(ref)
	}
	return nil
}

// mayWrite checks that a key that does not see everything does not replace
// a schedule it cannot see: one of its tenant's that enqueues into a queue
// the key may not use.
func (c *call) mayWrite(ss store.ScheduleStore, ref store.ScheduleRef) error {
	if c.sc.all() && c.sc.queues == nil {
		return nil
	}
	s, err := ss.GetSchedule(c.ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // a new schedule
	case err != nil:
		return err
	case !c.sc.seesSchedule(s):
		return forbidden("schedule %s enqueues into a queue the key may not use", ref)
	}
	return nil
}

// pathRef returns the ref of the path's {id} and the query's tenant, in
// the key's tenant.
func (c *call) pathRef() (store.ScheduleRef, error) {
	return c.sc.refIn(store.ScheduleRef{Tenant: c.query("tenant"), ID: c.r.PathValue("id")})
}

// schedule returns the schedule of the path's {id}, or not found when it
// is not the key's to see.
func (c *call) schedule(ss store.ScheduleStore) (*store.Schedule, error) {
	ref, err := c.pathRef()
	if err != nil {
		return nil, err
	}
	s, err := ss.GetSchedule(c.ctx, ref)
	if err != nil {
		return nil, err
	}
	if !c.sc.seesSchedule(s) {
		return nil, store.ScheduleNotFound(ref)
	}
	return s, nil
}

// listSchedules is GET /v1/schedules?tenant=&after=&limit=: one tenant's
// schedules in ID order, each with its last runs, and the next page's
// cursor.
func (c *call) listSchedules() (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	p := store.ScheduleListParams{After: c.query("after")}
	if p.Tenant, err = c.sc.tenantIn(c.query("tenant")); err != nil {
		return nil, err
	}
	if p.Limit, err = c.intQuery("limit", 0); err != nil {
		return nil, err
	}
	page, err := ss.ListSchedules(c.ctx, p)
	if err != nil {
		return nil, err
	}
	out := wire.ListedSchedulePage{Schedules: []wire.ListedSchedule{}, Next: page.Next}
	for _, s := range page.Schedules {
		if c.sc.seesSchedule(s) {
			v := wire.ListedScheduleOf(s)
			v.Schedule = c.scheduleView(s)
			out.Schedules = append(out.Schedules, v)
		}
	}
	return out, nil
}

// getSchedule is GET /v1/schedules/{id}?tenant=&next=5&states=true: one
// schedule in full, with its last runs (and, unless states=false, their
// jobs' states now) and its next slots.
func (c *call) getSchedule() (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	next, err := c.intQuery("next", schedulesNextDefault)
	if err != nil {
		return nil, err
	}
	if next < 0 || next > maxNextSlots {
		return nil, &store.ValidationError{Field: "next", Reason: fmt.Sprintf("%d is outside 0..%d", next, maxNextSlots)}
	}
	states := c.query("states") != "false"
	s, err := c.schedule(ss)
	if err != nil {
		return nil, err
	}
	last := make([]wire.ScheduleRun, len(s.Recent))
	for i, r := range s.Recent {
		var st store.State
		if states {
			j, err := c.s.st.Get(c.ctx, r.JobID)
			switch {
			case err == nil:
				st = j.State
			case !errors.Is(err, store.ErrNotFound):
				return nil, err
			}
		}
		last[i] = wire.ScheduleRunOf(r, st)
	}
	// A stored spec this build refuses has no slots to show; the schedule
	// is shown all the same.
	slots, _ := schedule.Upcoming(s, next)
	v := wire.ScheduleDetailOf(s, last, slots)
	v.Schedule = c.scheduleView(s)
	return v, nil
}

// upsertAnswer is a batch upsert's answer.
type upsertAnswer struct {
	Results []wire.ScheduleUpsertItem `json:"results"`
}

// upsertSchedules is POST /v1/schedules: add or replace one schedule (an
// object, answered with the schedule as stored) or many ({"schedules":
// [...]}, answered per item). A schedule with a version updates only while
// it is at that version (conflict otherwise).
func (c *call) upsertSchedules() (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	raw, batch, err := c.batchBody("schedules")
	if err != nil {
		return nil, err
	}
	var ws []wire.ScheduleParams
	if batch {
		var req wire.UpsertSchedulesRequest
		if err := c.decodeFrom(raw, &req); err != nil {
			return nil, err
		}
		if req.Schedules == nil {
			return nil, &store.ValidationError{Field: "schedules", Reason: "is required"}
		}
		if err := store.CheckBatch(len(req.Schedules)); err != nil {
			return nil, err
		}
		ws = req.Schedules
	} else {
		var w wire.ScheduleParams
		if err := c.decodeFrom(raw, &w); err != nil {
			return nil, err
		}
		ws = []wire.ScheduleParams{w}
	}
	var first store.Schedule // a single upsert's schedule, to answer it as stored
	res, err := perItem(ws, func(w wire.ScheduleParams) (store.Schedule, error) {
		s, err := w.Params()
		if err == nil {
			s, err = c.sc.scheduleIn(s)
		}
		if err == nil {
			err = c.mayWrite(ss, s.Ref())
		}
		first = s
		return s, err
	}, func(scs []store.Schedule) ([]store.ScheduleUpsertResult, error) {
		return ss.UpsertSchedules(c.ctx, scs)
	}, func(err error) store.ScheduleUpsertResult { return store.ScheduleUpsertResult{Err: err} })
	if err != nil {
		return nil, err
	}
	upsertErrs := make([]error, len(res))
	for i, r := range res {
		upsertErrs[i] = r.Err
	}
	if batch {
		c.recordItems("schedule.upsert", fmt.Sprintf("%d schedules", len(res)), upsertErrs)
		return upsertAnswer{Results: wire.ScheduleUpsertItemsOf(res)}, nil
	}
	c.record("schedule.upsert", first.Ref().String(), boolCount(res[0].Err == nil), res[0].Err)
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	s, err := ss.GetSchedule(c.ctx, first.Ref())
	if err != nil {
		return nil, err
	}
	if res[0].Created {
		c.status = http.StatusCreated
	}
	return wire.UpsertedSchedule{Schedule: c.scheduleView(s), Created: res[0].Created}, nil
}

// refsAnswer is a batch verb's per-item answers.
type refsAnswer struct {
	Results []wire.Item `json:"results"`
}

// triggerAnswer is a batch trigger's per-item answers.
type triggerAnswer struct {
	Results []wire.TriggerItem `json:"results"`
}

// refs reads the body of a batch verb, {"refs": [{"tenant", "id"}]}, and
// returns the refs in the key's tenant; errs[i] is set for a ref the key
// may not name or see, which the verb must leave out.
func (c *call) refs(ss store.ScheduleStore) ([]store.ScheduleRef, []error, error) {
	var req wire.ScheduleRefsRequest
	if err := c.decode(&req); err != nil {
		return nil, nil, err
	}
	if req.Refs == nil {
		return nil, nil, &store.ValidationError{Field: "refs", Reason: "is required"}
	}
	refs := req.StoreRefs()
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, nil, err
	}
	errs := make([]error, len(refs))
	for i, r := range refs {
		if refs[i], errs[i] = c.sc.refIn(r); errs[i] == nil {
			errs[i] = c.ownsSchedule(ss, refs[i])
		}
	}
	return refs, errs, nil
}

// pauseSchedules is POST /v1/schedules/pause {"refs": [...]};
// resumeSchedules .../resume; deleteSchedules .../delete. Per-item answers.
func (c *call) pauseSchedules() (any, error) {
	return c.manyRefs("schedule.pause", store.ScheduleStore.PauseSchedules)
}
func (c *call) resumeSchedules() (any, error) {
	return c.manyRefs("schedule.resume", store.ScheduleStore.ResumeSchedules)
}
func (c *call) deleteSchedules() (any, error) {
	return c.manyRefs("schedule.delete", store.ScheduleStore.DeleteSchedules)
}

// refsVerb is a ScheduleStore method with one error per ref.
type refsVerb func(ss store.ScheduleStore, ctx context.Context, refs []store.ScheduleRef) ([]error, error)

func (c *call) manyRefs(action string, verb refsVerb) (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	refs, errs, err := c.refs(ss)
	if err != nil {
		return nil, err
	}
	mine, at := pick(refs, errs)
	if len(mine) > 0 {
		res, err := verb(ss, c.ctx, mine)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			errs[i] = res[k]
		}
	}
	c.recordItems(action, fmt.Sprintf("%d schedules", len(refs)), errs)
	return refsAnswer{Results: wire.Items(errs)}, nil
}

// triggerSchedules is POST /v1/schedules/trigger {"refs": [...]}: enqueue
// a run of each schedule now; per-item answers with the runs.
func (c *call) triggerSchedules() (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	refs, errs, err := c.refs(ss)
	if err != nil {
		return nil, err
	}
	res := make([]store.TriggerResult, len(refs))
	for i, err := range errs {
		res[i].Err = err
	}
	mine, at := pick(refs, errs)
	if len(mine) > 0 {
		got, err := ss.TriggerSchedules(c.ctx, mine)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			res[i] = got[k]
		}
	}
	trigErrs := make([]error, len(res))
	for i, r := range res {
		trigErrs[i] = r.Err
	}
	c.recordItems("schedule.trigger", fmt.Sprintf("%d schedules", len(refs)), trigErrs)
	return triggerAnswer{Results: wire.TriggerItemsOf(res)}, nil
}

// pick returns the refs without an error, and where each was.
func pick(refs []store.ScheduleRef, errs []error) ([]store.ScheduleRef, []int) {
	var mine []store.ScheduleRef
	var at []int
	for i, r := range refs {
		if errs[i] == nil {
			mine = append(mine, r)
			at = append(at, i)
		}
	}
	return mine, at
}

// oneRef runs a batch verb on the path's schedule and returns its error.
func (c *call) oneRef(action string, verb refsVerb) (store.ScheduleStore, store.ScheduleRef, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, store.ScheduleRef{}, err
	}
	s, err := c.schedule(ss)
	if err != nil {
		return nil, store.ScheduleRef{}, err
	}
	errs, err := verb(ss, c.ctx, []store.ScheduleRef{s.Ref()})
	if err == nil {
		err = errs[0]
	}
	c.record(action, s.Ref().String(), boolCount(err == nil), err)
	return ss, s.Ref(), err
}

// pauseSchedule is POST /v1/schedules/{id}/pause?tenant=; resumeSchedule
// .../resume. Each answers the schedule as it is afterwards.
func (c *call) pauseSchedule() (any, error) {
	return c.oneRefView("schedule.pause", store.ScheduleStore.PauseSchedules)
}
func (c *call) resumeSchedule() (any, error) {
	return c.oneRefView("schedule.resume", store.ScheduleStore.ResumeSchedules)
}

func (c *call) oneRefView(action string, verb refsVerb) (any, error) {
	ss, ref, err := c.oneRef(action, verb)
	if err != nil {
		return nil, err
	}
	s, err := ss.GetSchedule(c.ctx, ref)
	if err != nil {
		return nil, err
	}
	return c.scheduleView(s), nil
}

// deletedAnswer is a deletion's answer.
type deletedAnswer struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant,omitempty"`
	Deleted bool   `json:"deleted"`
}

// deleteSchedule is DELETE /v1/schedules/{id}?tenant=.
func (c *call) deleteSchedule() (any, error) {
	_, ref, err := c.oneRef("schedule.delete", store.ScheduleStore.DeleteSchedules)
	if err != nil {
		return nil, err
	}
	return deletedAnswer{ID: ref.ID, Tenant: c.tenantOut(ref.Tenant), Deleted: true}, nil
}

// triggeredAnswer is a single trigger's answer: the run, and whether it
// was already live.
type triggeredAnswer struct {
	wire.TriggeredRun
	Duplicate bool `json:"duplicate"`
}

// triggerSchedule is POST /v1/schedules/{id}/trigger?tenant=: enqueue a
// run now and answer it (201 when a job was enqueued).
func (c *call) triggerSchedule() (any, error) {
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	s, err := c.schedule(ss)
	if err != nil {
		return nil, err
	}
	res, err := ss.TriggerSchedules(c.ctx, []store.ScheduleRef{s.Ref()})
	if err == nil {
		err = res[0].Err
	}
	c.record("schedule.trigger", s.Ref().String(), boolCount(err == nil), err)
	if err != nil {
		return nil, err
	}
	v := wire.TriggeredRunOf(s.Ref(), res[0].Run)
	v.Tenant = c.tenantOut(v.Tenant)
	if !res[0].Duplicate {
		c.status = http.StatusCreated
	}
	return triggeredAnswer{TriggeredRun: v, Duplicate: res[0].Duplicate}, nil
}

// tenantOut is the tenant as the key's answers name it: its own tenant is
// the one it works in, which a tenant's key need not repeat.
func (c *call) tenantOut(t string) string {
	if c.sc.all() {
		return t
	}
	return ""
}

// fireSchedules is POST /v1/schedules/fire {"limit": 1000}: fire due
// schedules, as FireDue does, for a remote store's scheduler (spool serve
// fires them itself too). It spans every tenant, so it needs an operator's
// key.
func (c *call) fireSchedules() (any, error) {
	if !c.sc.all() || c.sc.queues != nil {
		return nil, forbidden("firing schedules spans every tenant: it needs an operator's key (spool serve fires them itself)")
	}
	ss, err := c.schedules()
	if err != nil {
		return nil, err
	}
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	var req wire.FireRequest
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := c.decodeFrom(raw, &req); err != nil {
			return nil, err
		}
	}
	res, err := ss.FireDue(c.ctx, store.FireParams{Limit: req.Limit})
	if err != nil {
		return nil, err
	}
	return wire.FireResultOf(res), nil
}
