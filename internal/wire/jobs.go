package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/spoolrun/spool/store"
)

// Job is how a job looks in JSON output: IDs are strings and times RFC 3339
// in UTC, absent when unset. A payload or result that is JSON is embedded as
// it is (its white space may be normalised); other bytes are given
// base64-encoded in payload_base64 or result_base64 (see ExactBytes).
type Job struct {
	ID          string      `json:"id"`
	Queue       string      `json:"queue"`
	Kind        string      `json:"kind"`
	State       store.State `json:"state"`
	Priority    int         `json:"priority"`
	Tenant      string      `json:"tenant,omitempty"`
	UniqueKey   string      `json:"unique_key,omitempty"`
	UniqueUntil *time.Time  `json:"unique_until,omitempty"` // when a finished job stops holding its unique key (enqueued with unique_for)
	OrderingKey string      `json:"ordering_key,omitempty"`
	// HoldKeyWhenDead: once dead, the job keeps its ordering key's line
	// blocked until it is requeued or purged. Absent when false.
	HoldKeyWhenDead bool            `json:"hold_key_when_dead,omitempty"`
	Attempts        int             `json:"attempts"`
	MaxAttempts     int             `json:"max_attempts"`
	Deliveries      int             `json:"deliveries"`
	MaxDeliveries   int             `json:"max_deliveries"`
	RunAt           time.Time       `json:"run_at"`
	CreatedAt       time.Time       `json:"created_at"`
	LockedUntil     *time.Time      `json:"locked_until,omitempty"`
	FinishedAt      *time.Time      `json:"finished_at,omitempty"`
	DeadReason      string          `json:"dead_reason,omitempty"`
	LastError       string          `json:"last_error,omitempty"`
	Payload         json.RawMessage `json:"payload,omitempty"`
	PayloadBase64   string          `json:"payload_base64,omitempty"`
	Result          json.RawMessage `json:"result,omitempty"`
	// LockToken fences the current delivery: a worker that claimed the job
	// passes it back to renew and settle. Only a claim's answer carries it
	// (ClaimedJobOf).
	LockToken    string `json:"lock_token,omitempty"`
	ResultBase64 string `json:"result_base64,omitempty"`
	// Errors is the job's error history, oldest first; only in the view of
	// one job (JobOf with history), not in lists.
	Errors []AttemptError `json:"errors,omitempty"`
	// Metadata is the job's small string map: the producer's trace
	// context (traceparent, tracestate) and what else it attached.
	Metadata map[string]string `json:"metadata,omitempty"`
	// AttemptedAt is when the current (or latest) delivery was claimed;
	// absent before the first claim.
	AttemptedAt *time.Time `json:"attempted_at,omitempty"`
	// LastAttemptSeconds is how long the latest settled delivery took,
	// from its claim to its verdict; absent before one was settled.
	LastAttemptSeconds *float64 `json:"last_attempt_seconds,omitempty"`
}

// AttemptError is one entry of a job's error history.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"` // set for panics
}

// JobOf returns the view of a job; history adds its error history, which
// lists leave out.
func JobOf(j *store.Job, history bool) Job {
	v := Job{
		ID:              j.ID.String(),
		Queue:           j.Queue,
		Kind:            j.Kind,
		State:           j.State,
		Priority:        j.Priority,
		Tenant:          j.Tenant,
		UniqueKey:       j.UniqueKey,
		OrderingKey:     j.OrderingKey,
		HoldKeyWhenDead: j.HoldKeyWhenDead,
		Attempts:        j.Attempts,
		MaxAttempts:     j.MaxAttempts,
		Deliveries:      j.Deliveries,
		MaxDeliveries:   j.MaxDeliveries,
		RunAt:           j.RunAt.UTC(),
		CreatedAt:       j.CreatedAt.UTC(),
		LockedUntil:     timePtr(j.LockedUntil),
		FinishedAt:      timePtr(j.FinishedAt),
		UniqueUntil:     timePtr(j.UniqueUntil),
		DeadReason:      j.DeadReason,
		Metadata:        j.Metadata,
		AttemptedAt:     timePtr(j.AttemptedAt),
	}
	if j.LastAttemptDuration > 0 {
		s := j.LastAttemptDuration.Seconds()
		v.LastAttemptSeconds = &s
	}
	if n := len(j.Errors); n > 0 {
		v.LastError = j.Errors[n-1].Message
	}
	v.Payload, v.PayloadBase64 = bytesView(j.Payload)
	v.Result, v.ResultBase64 = bytesView(j.Result)
	if history {
		v.Errors = make([]AttemptError, len(j.Errors))
		for i, e := range j.Errors {
			v.Errors[i] = AttemptError{At: e.At.UTC(), Attempt: e.Attempt, Message: e.Message, Stack: e.Stack}
		}
	}
	return v
}

// ClaimedJobOf returns the view of a job just claimed: JobOf with its
// error history and its lock token.
func ClaimedJobOf(j *store.Job) Job {
	v := JobOf(j, true)
	v.LockToken = tokenText(j.LockToken)
	return v
}

// JobsOf returns the list views of jobs, without error histories.
func JobsOf(jobs []*store.Job) []Job {
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		out[i] = JobOf(j, false)
	}
	return out
}

// JobPage is one page of a job list: {"jobs": [...], "next": "ID or empty"}.
type JobPage struct {
	Jobs []Job `json:"jobs"`
	// Next is the cursor for the next page (the After of the next list
	// call); empty on the last page.
	Next string `json:"next"`
}

// JobPageOf returns the view of a page of jobs.
func JobPageOf(p *store.ListPage) JobPage {
	v := JobPage{Jobs: JobsOf(p.Jobs)}
	if !p.Next.IsZero() {
		v.Next = p.Next.String()
	}
	return v
}

// EnqueueResult is what an enqueue answers for one job: its ID, whether the
// job holding the same unique key (a live one, or a finished one within its
// unique_for window) was returned instead of a new one, and that job's
// state.
type EnqueueResult struct {
	ID        string      `json:"id"`
	Duplicate bool        `json:"duplicate"`
	State     store.State `json:"state"`
}

// EnqueueResultOf returns the view of an enqueue's result.
func EnqueueResultOf(r store.EnqueueResult) EnqueueResult {
	return EnqueueResult{ID: r.ID.String(), Duplicate: r.Duplicate, State: r.State}
}

// QueueStats is how one queue's statistics look in JSON output: its counts
// for every state (zero included), the finished states whose count stopped
// at store.StatsCountCap (capped: there are at least that many), whether
// it is paused, and how long its oldest available job has waited, in
// seconds.
type QueueStats struct {
	Queue                  string              `json:"queue"`
	Paused                 bool                `json:"paused"`
	Counts                 map[store.State]int `json:"counts"`
	Capped                 []store.State       `json:"capped,omitempty"`
	OldestAvailableSeconds float64             `json:"oldest_available_seconds"`
}

// QueueStatsOf returns the views of queues' statistics.
func QueueStatsOf(stats []store.QueueStats) []QueueStats {
	out := make([]QueueStats, len(stats))
	for i, s := range stats {
		counts := make(map[store.State]int, len(store.States))
		for _, st := range store.States {
			counts[st] = s.Counts[st]
		}
		out[i] = QueueStats{Queue: s.Queue, Paused: s.Paused, Counts: counts, Capped: slices.Clone(s.Capped), OldestAvailableSeconds: s.OldestAvailable.Seconds()}
	}
	return out
}

// timePtr returns t in UTC, or nil for the zero time, for fields left out
// when unset.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// bytesView returns b as raw JSON when it is JSON, else base64.
func bytesView(b []byte) (json.RawMessage, string) {
	if len(b) == 0 {
		return nil, ""
	}
	if json.Valid(b) {
		return json.RawMessage(b), ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// ExactBytes gives the payload and result base64-encoded even when they are
// JSON, for a client that needs the stored bytes exactly (JSON embedded in
// JSON loses its insignificant space and has < > & escaped).
func (v *Job) ExactBytes() {
	v.Payload, v.PayloadBase64 = nil, base64Of(v.Payload)+v.PayloadBase64
	v.Result, v.ResultBase64 = nil, base64Of(v.Result)+v.ResultBase64
}

// StoreJob converts a job's view back into the store's job, as a remote
// store does with the API's answers. The bytes are exact when the view has
// them base64-encoded (ExactBytes; the API does it on request), and the
// error history is there when the view has it (the view of one job, a
// claim's, or a list asked for it). Mistakes of form (an ID, lock token,
// state or base64 that does not parse) are *store.ValidationError, joined.
func (v *Job) StoreJob() (*store.Job, error) {
	j := &store.Job{
		Queue:           v.Queue,
		Kind:            v.Kind,
		Priority:        v.Priority,
		RunAt:           v.RunAt,
		State:           v.State,
		Tenant:          v.Tenant,
		UniqueKey:       v.UniqueKey,
		OrderingKey:     v.OrderingKey,
		Attempts:        v.Attempts,
		MaxAttempts:     v.MaxAttempts,
		Deliveries:      v.Deliveries,
		MaxDeliveries:   v.MaxDeliveries,
		DeadReason:      v.DeadReason,
		HoldKeyWhenDead: v.HoldKeyWhenDead,
		CreatedAt:       v.CreatedAt,
		Errors:          storeAttemptErrors(v.Errors),
		Metadata:        v.Metadata,
	}
	if v.AttemptedAt != nil {
		j.AttemptedAt = *v.AttemptedAt
	}
	if v.LastAttemptSeconds != nil {
		j.LastAttemptDuration = secondsDuration(*v.LastAttemptSeconds)
	}
	if v.LockedUntil != nil {
		j.LockedUntil = *v.LockedUntil
	}
	if v.FinishedAt != nil {
		j.FinishedAt = *v.FinishedAt
	}
	if v.UniqueUntil != nil {
		j.UniqueUntil = *v.UniqueUntil
	}
	errs := make([]error, 5)
	j.ID, errs[0] = store.ParseID(v.ID)
	if v.LockToken != "" {
		j.LockToken, errs[1] = store.ParseLockToken(v.LockToken)
	}
	j.Payload, errs[2] = bytesOf("payload", v.Payload, v.PayloadBase64)
	j.Result, errs[3] = bytesOf("result", v.Result, v.ResultBase64)
	if !v.State.Valid() {
		errs[4] = &store.ValidationError{Field: "state", Reason: fmt.Sprintf("%q is not a job state", v.State)}
	}
	return j, errors.Join(errs...)
}

// StoreStats converts a queue's statistics view back into the store's
// form, as a remote store does.
func (v QueueStats) StoreStats() store.QueueStats {
	counts := make(map[store.State]int, len(v.Counts))
	maps.Copy(counts, v.Counts)
	return store.QueueStats{Queue: v.Queue, Paused: v.Paused, Counts: counts, Capped: slices.Clone(v.Capped),
		OldestAvailable: secondsDuration(v.OldestAvailableSeconds)}
}

// secondsDuration converts a number of seconds from JSON into a duration,
// to the nearest nanosecond (exact for durations of up to about 100 days).
func secondsDuration(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

// attemptErrorsOf returns the wire form of an error history; nil for none.
func attemptErrorsOf(es []store.AttemptError) []AttemptError {
	if len(es) == 0 {
		return nil
	}
	out := make([]AttemptError, len(es))
	for i, e := range es {
		out[i] = AttemptError{At: e.At.UTC(), Attempt: e.Attempt, Message: e.Message, Stack: e.Stack}
	}
	return out
}

// storeAttemptErrors converts an error history's wire form back; nil for
// none.
func storeAttemptErrors(es []AttemptError) []store.AttemptError {
	if len(es) == 0 {
		return nil
	}
	out := make([]store.AttemptError, len(es))
	for i, e := range es {
		out[i] = store.AttemptError{At: e.At, Attempt: e.Attempt, Message: e.Message, Stack: e.Stack}
	}
	return out
}
