package wire

import (
	"encoding/json"
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
