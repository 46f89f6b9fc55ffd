package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// Schedule is how a schedule looks in JSON output. Times are RFC 3339 in
// UTC, absent when unset; policies are their text forms ("skip",
// "run_once", "fixed_rate", ...). A JSON payload is embedded as it is,
// other bytes are given base64-encoded in payload_base64.
type Schedule struct {
	ID            string             `json:"id"`
	Tenant        string             `json:"tenant,omitempty"`
	Spec          string             `json:"spec"`
	Zone          string             `json:"zone"`
	Queue         string             `json:"queue"`
	Kind          string             `json:"kind"`
	Payload       json.RawMessage    `json:"payload,omitempty"`
	PayloadBase64 string             `json:"payload_base64,omitempty"`
	Priority      int                `json:"priority"`
	MaxAttempts   int                `json:"max_attempts"`
	Overlap       store.Overlap      `json:"overlap"`
	Misfire       store.Misfire      `json:"misfire"`
	CatchUpMax    int                `json:"catch_up_max"`
	Mode          store.ScheduleMode `json:"mode"`
	Paused        bool               `json:"paused"`
	Version       int64              `json:"version"`
	NextRunAt     *time.Time         `json:"next_run_at,omitempty"`
	LastRunAt     *time.Time         `json:"last_run_at,omitempty"`
	LiveJobID     string             `json:"live_job_id,omitempty"`
	Fired         int64              `json:"fired"`
	Skipped       int64              `json:"skipped"`
	Dropped       int64              `json:"dropped"`
	CreatedAt     time.Time          `json:"created_at"`
	UpdatedAt     time.Time          `json:"updated_at"`
}

// ScheduleOf returns the view of a schedule.
func ScheduleOf(sc *store.Schedule) Schedule {
	v := Schedule{
		ID:          sc.ID,
		Tenant:      sc.Tenant,
		Spec:        sc.Spec,
		Zone:        sc.Zone,
		Queue:       sc.Queue,
		Kind:        sc.Kind,
		Priority:    sc.Priority,
		MaxAttempts: sc.MaxAttempts,
		Overlap:     sc.Overlap,
		Misfire:     sc.Misfire,
		CatchUpMax:  sc.CatchUpMax,
		Mode:        sc.Mode,
		Paused:      sc.Paused,
		Version:     sc.Version,
		NextRunAt:   timePtr(sc.NextRunAt),
		LastRunAt:   timePtr(sc.LastRunAt),
		Fired:       sc.Fired,
		Skipped:     sc.Skipped,
		Dropped:     sc.Dropped,
		CreatedAt:   sc.CreatedAt.UTC(),
		UpdatedAt:   sc.UpdatedAt.UTC(),
	}
	if !sc.LiveJobID.IsZero() {
		v.LiveJobID = sc.LiveJobID.String()
	}
	v.Payload, v.PayloadBase64 = bytesView(sc.Payload)
	return v
}

// SchedulesOf returns the views of schedules.
func SchedulesOf(scs []*store.Schedule) []Schedule {
	out := make([]Schedule, len(scs))
	for i, sc := range scs {
		out[i] = ScheduleOf(sc)
	}
	return out
}

// SchedulePage is one page of a schedule list: {"schedules": [...],
// "next": "ID or empty"}.
type SchedulePage struct {
	Schedules []Schedule `json:"schedules"`
	// Next is the cursor for the next page; empty on the last page.
	Next string `json:"next"`
}

// ScheduleRun is one run of a schedule: its slot, its job, whether a
// trigger enqueued it, and the job's state now (empty once retention
// removed the job, or when the state was not looked up).
type ScheduleRun struct {
	Slot      time.Time   `json:"slot"`
	JobID     string      `json:"job_id"`
	Triggered bool        `json:"triggered,omitempty"`
	State     store.State `json:"state,omitempty"`
}

// ScheduleRunOf returns the view of a run whose job is in state (empty when
// unknown).
func ScheduleRunOf(r store.ScheduleRun, state store.State) ScheduleRun {
	return ScheduleRun{Slot: r.Slot.UTC(), JobID: r.JobID.String(), Triggered: r.Triggered, State: state}
}

// ScheduleDetail is one schedule in full: its view, its last runs (newest
// first) and its next slots. Both lists are present, empty when there is
// nothing to show.
type ScheduleDetail struct {
	Schedule
	LastRuns []ScheduleRun `json:"last_runs"`
	NextRuns []time.Time   `json:"next_runs"`
}

// ScheduleDetailOf returns the detailed view of a schedule with its last
// runs and next slots.
func ScheduleDetailOf(sc *store.Schedule, last []ScheduleRun, next []time.Time) ScheduleDetail {
	v := ScheduleDetail{Schedule: ScheduleOf(sc), LastRuns: []ScheduleRun{}, NextRuns: []time.Time{}}
	v.LastRuns = append(v.LastRuns, last...)
	for _, t := range next {
		v.NextRuns = append(v.NextRuns, t.UTC())
	}
	return v
}

// UpsertedSchedule is a schedule as stored by an upsert, with whether the
// upsert created it.
type UpsertedSchedule struct {
	Schedule
	Created bool `json:"created"`
}

// TriggeredRun is the run a trigger enqueued, with the schedule it is of.
type TriggeredRun struct {
	Schedule string    `json:"schedule"`
	Tenant   string    `json:"tenant,omitempty"`
	JobID    string    `json:"job_id"`
	Slot     time.Time `json:"slot"`
}

// TriggeredRunOf returns the view of the run a trigger of ref enqueued.
func TriggeredRunOf(ref store.ScheduleRef, run store.ScheduleRun) TriggeredRun {
	return TriggeredRun{Schedule: ref.ID, Tenant: ref.Tenant, JobID: run.JobID.String(), Slot: run.Slot.UTC()}
}

// ExactBytes gives the payload base64-encoded even when it is JSON, for a
// client that needs the stored bytes exactly (see Job.ExactBytes).
func (v *Schedule) ExactBytes() {
	v.Payload, v.PayloadBase64 = nil, base64Of(v.Payload)+v.PayloadBase64
}

// StoreSchedule converts a schedule's view back into the store's schedule,
// as a remote store does with the API's answers; Recent is left empty (a
// ScheduleDetail's or ListedSchedule's runs fill it). The payload is exact
// when the view has it base64-encoded (ExactBytes). Mistakes of form are
// *store.ValidationError, joined.
func (v *Schedule) StoreSchedule() (*store.Schedule, error) {
	sc := &store.Schedule{
		ID:          v.ID,
		Tenant:      v.Tenant,
		Spec:        v.Spec,
		Zone:        v.Zone,
		Queue:       v.Queue,
		Kind:        v.Kind,
		Priority:    v.Priority,
		MaxAttempts: v.MaxAttempts,
		Overlap:     v.Overlap,
		Misfire:     v.Misfire,
		CatchUpMax:  v.CatchUpMax,
		Mode:        v.Mode,
		Paused:      v.Paused,
		Version:     v.Version,
		Fired:       v.Fired,
		Skipped:     v.Skipped,
		Dropped:     v.Dropped,
		CreatedAt:   v.CreatedAt,
		UpdatedAt:   v.UpdatedAt,
	}
	if v.NextRunAt != nil {
		sc.NextRunAt = *v.NextRunAt
	}
	if v.LastRunAt != nil {
		sc.LastRunAt = *v.LastRunAt
	}
	var e1, e2 error
	if v.LiveJobID != "" {
		sc.LiveJobID, e1 = store.ParseID(v.LiveJobID)
	}
	sc.Payload, e2 = bytesOf("payload", v.Payload, v.PayloadBase64)
	return sc, errors.Join(e1, e2)
}

// StoreRuns converts runs' views back into the store's runs (their states
// are left out); nil for none.
func StoreRuns(runs []ScheduleRun) ([]store.ScheduleRun, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	out := make([]store.ScheduleRun, len(runs))
	var errs []error
	for i, r := range runs {
		id, err := store.ParseID(r.JobID)
		errs = append(errs, err)
		out[i] = store.ScheduleRun{Slot: r.Slot, JobID: id, Triggered: r.Triggered}
	}
	return out, errors.Join(errs...)
}

// ListedSchedule is a schedule as the API lists it: its view and its last
// runs, newest first, without their jobs' states (a list does not look
// them up; the view of one schedule, ScheduleDetail, does).
type ListedSchedule struct {
	Schedule
	LastRuns []ScheduleRun `json:"last_runs"`
}

// ListedScheduleOf returns the listed view of a schedule.
func ListedScheduleOf(sc *store.Schedule) ListedSchedule {
	v := ListedSchedule{Schedule: ScheduleOf(sc), LastRuns: make([]ScheduleRun, len(sc.Recent))}
	for i, r := range sc.Recent {
		v.LastRuns[i] = ScheduleRunOf(r, "")
	}
	return v
}

// ListedSchedulePage is one page of the API's schedule list:
// {"schedules": [...], "next": "ID or empty"}.
type ListedSchedulePage struct {
	Schedules []ListedSchedule `json:"schedules"`
	// Next is the cursor for the next page; empty on the last page.
	Next string `json:"next"`
}

// ScheduleParams is the wire form of a schedule to write: the definition
// of a store.Schedule, as UpsertSchedules takes it. Policies are their text
// forms ("skip", "run_once", "fixed_rate", ...; empty for the default);
// the payload is embedded JSON or base64, as a job's.
type ScheduleParams struct {
	ID            string          `json:"id"`
	Tenant        string          `json:"tenant,omitempty"`
	Spec          string          `json:"spec"`
	Zone          string          `json:"zone,omitempty"`
	Queue         string          `json:"queue,omitempty"`
	Kind          string          `json:"kind"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
	Priority      int             `json:"priority,omitempty"`
	MaxAttempts   int             `json:"max_attempts,omitempty"`
	Overlap       string          `json:"overlap,omitempty"`
	Misfire       string          `json:"misfire,omitempty"`
	CatchUpMax    int             `json:"catch_up_max,omitempty"`
	Mode          string          `json:"mode,omitempty"`
	Paused        bool            `json:"paused,omitempty"`
	// Version, when not zero, updates the schedule only while it is at
	// this version (store.Schedule.Version).
	Version int64 `json:"version,omitempty"`
}

// ScheduleParamsOf returns the wire form of sc's definition.
func ScheduleParamsOf(sc store.Schedule) ScheduleParams {
	return ScheduleParams{
		ID:            sc.ID,
		Tenant:        sc.Tenant,
		Spec:          sc.Spec,
		Zone:          sc.Zone,
		Queue:         sc.Queue,
		Kind:          sc.Kind,
		PayloadBase64: base64Of(sc.Payload),
		Priority:      sc.Priority,
		MaxAttempts:   sc.MaxAttempts,
		Overlap:       enumText(sc.Overlap, store.OverlapSkip),
		Misfire:       enumText(sc.Misfire, store.MisfireRunOnce),
		CatchUpMax:    sc.CatchUpMax,
		Mode:          enumText(sc.Mode, store.ModeFixedRate),
		Paused:        sc.Paused,
		Version:       sc.Version,
	}
}

// enumText is a policy's text form; "" for its default.
func enumText[E comparable](v, def E) string {
	if v == def {
		return ""
	}
	return fmt.Sprint(v)
}

// Params converts w to a store.Schedule. Mistakes of form are
// *store.ValidationError, joined; the store validates the rest.
func (w ScheduleParams) Params() (store.Schedule, error) {
	sc := store.Schedule{
		ID:          w.ID,
		Tenant:      w.Tenant,
		Spec:        w.Spec,
		Zone:        w.Zone,
		Queue:       w.Queue,
		Kind:        w.Kind,
		Priority:    w.Priority,
		MaxAttempts: w.MaxAttempts,
		CatchUpMax:  w.CatchUpMax,
		Paused:      w.Paused,
		Version:     w.Version,
	}
	errs := make([]error, 4)
	sc.Payload, errs[0] = bytesOf("payload", w.Payload, w.PayloadBase64)
	sc.Overlap, errs[1] = store.ParseOverlap(w.Overlap)
	sc.Misfire, errs[2] = store.ParseMisfire(w.Misfire)
	sc.Mode, errs[3] = store.ParseScheduleMode(w.Mode)
	return sc, errors.Join(errs...)
}

// ScheduleRef is the wire form of store.ScheduleRef.
type ScheduleRef struct {
	Tenant string `json:"tenant,omitempty"`
	ID     string `json:"id"`
}

// The request bodies of the schedule calls.
type (
	// UpsertSchedulesRequest is the body of a batch upsert: {"schedules": [...]}.
	UpsertSchedulesRequest struct {
		Schedules []ScheduleParams `json:"schedules"`
	}
	// ScheduleRefsRequest is the body of a batch pause, resume, delete or
	// trigger: {"refs": [{"tenant": "acme", "id": "nightly"}, ...]}.
	ScheduleRefsRequest struct {
		Refs []ScheduleRef `json:"refs"`
	}
	// FireRequest is the body of a FireDue call: {"limit": 1000}.
	FireRequest struct {
		Limit int `json:"limit,omitempty"`
	}
)

// UpsertSchedulesRequestOf returns the request body that upserts scs.
func UpsertSchedulesRequestOf(scs []store.Schedule) UpsertSchedulesRequest {
	r := UpsertSchedulesRequest{Schedules: make([]ScheduleParams, len(scs))}
	for i, sc := range scs {
		r.Schedules[i] = ScheduleParamsOf(sc)
	}
	return r
}

// ScheduleRefsRequestOf returns the request body naming refs.
func ScheduleRefsRequestOf(refs []store.ScheduleRef) ScheduleRefsRequest {
	r := ScheduleRefsRequest{Refs: make([]ScheduleRef, len(refs))}
	for i, ref := range refs {
		r.Refs[i] = ScheduleRef(ref)
	}
	return r
}

// StoreRefs returns the refs of a request body.
func (r ScheduleRefsRequest) StoreRefs() []store.ScheduleRef {
	out := make([]store.ScheduleRef, len(r.Refs))
	for i, ref := range r.Refs {
		out[i] = store.ScheduleRef(ref)
	}
	return out
}

// ScheduleUpsertItem is one schedule's answer to a batch upsert: an Item,
// with, for a schedule written, its version, whether the upsert created it
// and its next slot (absent when it has none).
type ScheduleUpsertItem struct {
	Index     int        `json:"index"`
	OK        bool       `json:"ok,omitempty"`
	Error     *Error     `json:"error,omitempty"`
	Version   int64      `json:"version,omitempty"`
	Created   bool       `json:"created,omitempty"`
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
}

// ScheduleUpsertItemsOf encodes the per-item answers of an upsert.
func ScheduleUpsertItemsOf(res []store.ScheduleUpsertResult) []ScheduleUpsertItem {
	out := make([]ScheduleUpsertItem, len(res))
	for i, r := range res {
		out[i] = ScheduleUpsertItem{Index: i, OK: r.Err == nil, Error: ErrorOf(r.Err)}
		if r.Err == nil {
			out[i].Version, out[i].Created, out[i].NextRunAt = r.Version, r.Created, timePtr(r.NextRunAt)
		}
	}
	return out
}

// ScheduleUpsertResults decodes the per-item answers of an upsert of n
// schedules, refusing answers that ItemErrors refuses.
func ScheduleUpsertResults(items []ScheduleUpsertItem, n int) ([]store.ScheduleUpsertResult, error) {
	plain := make([]Item, len(items))
	for i, it := range items {
		plain[i] = Item{Index: it.Index, OK: it.OK, Error: it.Error}
	}
	errs, err := ItemErrors(plain, n)
	if err != nil {
		return nil, err
	}
	out := make([]store.ScheduleUpsertResult, n)
	for _, it := range items {
		r := &out[it.Index]
		r.Err = errs[it.Index]
		if r.Err == nil {
			r.Version, r.Created = it.Version, it.Created
			if it.NextRunAt != nil {
				r.NextRunAt = *it.NextRunAt
			}
		}
	}
	return out, nil
}

// TriggerItem is one schedule's answer to a batch trigger: an Item, with,
// for a schedule triggered, its run and whether that run was already live
// (store.TriggerResult).
type TriggerItem struct {
	Index     int        `json:"index"`
	OK        bool       `json:"ok,omitempty"`
	Error     *Error     `json:"error,omitempty"`
	JobID     string     `json:"job_id,omitempty"`
	Slot      *time.Time `json:"slot,omitempty"`
	Triggered bool       `json:"triggered,omitempty"`
	Duplicate bool       `json:"duplicate,omitempty"`
}

// TriggerItemsOf encodes the per-item answers of a trigger.
func TriggerItemsOf(res []store.TriggerResult) []TriggerItem {
	out := make([]TriggerItem, len(res))
	for i, r := range res {
		out[i] = TriggerItem{Index: i, OK: r.Err == nil, Error: ErrorOf(r.Err)}
		if r.Err == nil {
			out[i].JobID, out[i].Slot = r.Run.JobID.String(), timePtr(r.Run.Slot)
			out[i].Triggered, out[i].Duplicate = r.Run.Triggered, r.Duplicate
		}
	}
	return out
}

// TriggerResults decodes the per-item answers of a trigger of n
// schedules, refusing answers that ItemErrors refuses.
func TriggerResults(items []TriggerItem, n int) ([]store.TriggerResult, error) {
	plain := make([]Item, len(items))
	for i, it := range items {
		plain[i] = Item{Index: it.Index, OK: it.OK, Error: it.Error}
	}
	errs, err := ItemErrors(plain, n)
	if err != nil {
		return nil, err
	}
	out := make([]store.TriggerResult, n)
	var bad []error
	for _, it := range items {
		r := &out[it.Index]
		if r.Err = errs[it.Index]; r.Err != nil {
			continue
		}
		id, err := store.ParseID(it.JobID)
		bad = append(bad, err)
		r.Run.JobID, r.Run.Triggered, r.Duplicate = id, it.Triggered, it.Duplicate
		if it.Slot != nil {
			r.Run.Slot = *it.Slot
		}
	}
	return out, errors.Join(bad...)
}

// FireResult is the view of what one FireDue call did (store.FireResult).
type FireResult struct {
	Now       time.Time  `json:"now"`
	Schedules int        `json:"schedules"`
	Runs      []FiredRun `json:"runs"`
	Skipped   int        `json:"skipped"`
	Dropped   int        `json:"dropped"`
	Failed    int        `json:"failed"`
	NextDue   *time.Time `json:"next_due,omitempty"`
}

// FiredRun is the view of one run FireDue enqueued.
type FiredRun struct {
	Schedule  string    `json:"schedule"`
	Tenant    string    `json:"tenant,omitempty"`
	Slot      time.Time `json:"slot"`
	JobID     string    `json:"job_id"`
	Duplicate bool      `json:"duplicate,omitempty"`
}

// FireResultOf returns the view of a FireDue result.
func FireResultOf(r *store.FireResult) FireResult {
	v := FireResult{Now: r.Now.UTC(), Schedules: r.Schedules, Runs: make([]FiredRun, len(r.Runs)),
		Skipped: r.Skipped, Dropped: r.Dropped, Failed: r.Failed, NextDue: timePtr(r.NextDue)}
	for i, run := range r.Runs {
		v.Runs[i] = FiredRun{Schedule: run.Ref.ID, Tenant: run.Ref.Tenant, Slot: run.Slot.UTC(), JobID: run.JobID.String(), Duplicate: run.Duplicate}
	}
	return v
}

// StoreResult converts the view back into the store's FireResult.
func (v *FireResult) StoreResult() (*store.FireResult, error) {
	r := &store.FireResult{Now: v.Now, Schedules: v.Schedules, Skipped: v.Skipped, Dropped: v.Dropped, Failed: v.Failed}
	if v.NextDue != nil {
		r.NextDue = *v.NextDue
	}
	var errs []error
	for _, run := range v.Runs {
		id, err := store.ParseID(run.JobID)
		errs = append(errs, err)
		r.Runs = append(r.Runs, store.FiredRun{Ref: store.ScheduleRef{Tenant: run.Tenant, ID: run.Schedule}, Slot: run.Slot, JobID: id, Duplicate: run.Duplicate})
	}
	return r, errors.Join(errs...)
}
