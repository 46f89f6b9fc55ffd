package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// The wire forms of the contract's inputs, as the HTTP API takes them and a
// remote store sends them. Bytes (payloads, results) travel as embedded
// JSON ("payload": {...}), kept byte for byte as the request has them, or as
// base64 ("payload_base64"); the encoders here always use base64, so bytes
// arrive exactly as sent. Durations are Go duration strings ("1h30m",
// "250ms"), but a claim's and a renewal's lock and wait are numbers of
// seconds (lock_seconds, wait_seconds), as workers in any language write
// them; times RFC 3339, IDs and lock tokens strings. Conversions to the
// store's types check only the wire's own rules (formats, one of two forms);
// the store validates the values, as it does for Go callers.

// EnqueueParams is the wire form of store.EnqueueParams.
type EnqueueParams struct {
	ID            string          `json:"id,omitempty"`
	Queue         string          `json:"queue,omitempty"`
	Kind          string          `json:"kind"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
	Priority      int             `json:"priority,omitempty"`
	RunAt         string          `json:"run_at,omitempty"`
	Delay         string          `json:"delay,omitempty"`
	Tenant        string          `json:"tenant,omitempty"`
	UniqueKey     string          `json:"unique_key,omitempty"`
	OrderingKey   string          `json:"ordering_key,omitempty"`
	MaxAttempts   int             `json:"max_attempts,omitempty"`
	MaxDeliveries int             `json:"max_deliveries,omitempty"`
	// UniqueFor keeps the unique key held for this long after the job's
	// creation, even once it has finished ("5m"; store.EnqueueParams.UniqueFor).
	UniqueFor string `json:"unique_for,omitempty"`
	// Attempts and Errors start the job with failed attempts already
	// recorded (store.EnqueueParams.Attempts, .Errors): work that failed
	// elsewhere and continues here. Errors are in the form of a job view's
	// error history, oldest first.
	Attempts int            `json:"attempts,omitempty"`
	Errors   []AttemptError `json:"errors,omitempty"`
	// HoldKeyWhenDead makes the job, once dead, keep its ordering key's
	// line blocked until it is requeued or purged.
	HoldKeyWhenDead bool `json:"hold_key_when_dead,omitempty"`
	// Metadata is a small map of strings kept with the job
	// (store.EnqueueParams.Metadata): a W3C trace context under
	// traceparent and tracestate joins the job's handler to the
	// producer's trace. At most 16 entries of 4 KiB in all.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// EnqueueParamsOf returns the wire form of p.
func EnqueueParamsOf(p store.EnqueueParams) EnqueueParams {
	w := EnqueueParams{
		Queue:           p.Queue,
		Kind:            p.Kind,
		PayloadBase64:   base64Of(p.Payload),
		Priority:        p.Priority,
		RunAt:           timeText(p.RunAt),
		Delay:           durationText(p.Delay),
		Tenant:          p.Tenant,
		UniqueKey:       p.UniqueKey,
		OrderingKey:     p.OrderingKey,
		MaxAttempts:     p.MaxAttempts,
		MaxDeliveries:   p.MaxDeliveries,
		UniqueFor:       durationText(p.UniqueFor),
		Attempts:        p.Attempts,
		Errors:          attemptErrorsOf(p.Errors),
		HoldKeyWhenDead: p.HoldKeyWhenDead,
		Metadata:        p.Metadata,
	}
	if !p.ID.IsZero() {
		w.ID = p.ID.String()
	}
	return w
}

// Params converts w to store.EnqueueParams. Mistakes of form are
// *store.ValidationError, joined.
func (w EnqueueParams) Params() (store.EnqueueParams, error) {
	p := store.EnqueueParams{
		Queue:           w.Queue,
		Kind:            w.Kind,
		Priority:        w.Priority,
		Tenant:          w.Tenant,
		UniqueKey:       w.UniqueKey,
		OrderingKey:     w.OrderingKey,
		MaxAttempts:     w.MaxAttempts,
		MaxDeliveries:   w.MaxDeliveries,
		Attempts:        w.Attempts,
		Errors:          storeAttemptErrors(w.Errors),
		HoldKeyWhenDead: w.HoldKeyWhenDead,
		Metadata:        w.Metadata,
	}
	var errs []error
	if w.ID != "" {
		id, err := store.ParseID(w.ID)
		errs = append(errs, err)
		p.ID = id
	}
	var err error
	p.Payload, err = bytesOf("payload", w.Payload, w.PayloadBase64)
	errs = append(errs, err)
	p.RunAt, err = parseTime("run_at", w.RunAt)
	errs = append(errs, err)
	p.Delay, err = parseDuration("delay", w.Delay)
	errs = append(errs, err)
	p.UniqueFor, err = parseDuration("unique_for", w.UniqueFor)
	errs = append(errs, err)
	return p, errors.Join(errs...)
}

// ClaimParams is the body of a claim (POST /v1/queues/{queue}/claim): the
// queue is in the path. Lock and wait are in seconds.
type ClaimParams struct {
	// Limit is how many jobs to take at most: 1..store.MaxClaim, default 1.
	Limit int `json:"limit,omitempty"`
	// LockSeconds is how long the jobs are held unless renewed; default
	// DefaultLockSeconds.
	LockSeconds float64 `json:"lock_seconds,omitempty"`
	// WaitSeconds long-polls: with no job available, the claim waits up to
	// this long (at most MaxWaitSeconds) for one. Default 0: answer at once.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
	// Worker names the claimant, for diagnostics.
	Worker string `json:"worker,omitempty"`
}

// Limits of the wire's lock and wait times.
const (
	DefaultLockSeconds = 30 // a claim's or renewal's lock when not given
	MaxWaitSeconds     = 30 // the longest long poll
)

// ClaimParamsOf returns the body that claims as p does, waiting up to wait.
func ClaimParamsOf(p store.ClaimParams, wait time.Duration) ClaimParams {
	return ClaimParams{Limit: p.Limit, LockSeconds: p.LockFor.Seconds(), WaitSeconds: wait.Seconds(), Worker: p.Worker}
}

// Params converts w to the store.ClaimParams of queue and the wait.
func (w ClaimParams) Params(queue string) (store.ClaimParams, time.Duration, error) {
	lock, e1 := secondsOf("lock_seconds", w.LockSeconds, 0)
	wait, e2 := secondsOf("wait_seconds", w.WaitSeconds, MaxWaitSeconds)
	if lock == 0 {
		lock = DefaultLockSeconds * time.Second
	}
	return store.ClaimParams{Queue: queue, Limit: w.Limit, LockFor: lock, Worker: w.Worker}, wait, errors.Join(e1, e2)
}

// secondsOf converts a number of seconds, refusing negative ones and, when
// most is not 0, more than most.
func secondsOf(field string, s, most float64) (time.Duration, error) {
	if s < 0 || most > 0 && s > most {
		reason := "may not be negative"
		if most > 0 {
			reason = fmt.Sprintf("%v is outside 0..%v", s, most)
		}
		return 0, &store.ValidationError{Field: field, Reason: reason}
	}
	return time.Duration(math.Round(s * float64(time.Second))), nil
}

// Renewal is the wire form of store.Renewal; the lock in seconds.
type Renewal struct {
	ID          string  `json:"id"`
	LockToken   string  `json:"lock_token"`
	LockSeconds float64 `json:"lock_seconds,omitempty"`
}

// RenewalOf returns the wire form of r.
func RenewalOf(r store.Renewal) Renewal {
	return Renewal{ID: r.ID.String(), LockToken: tokenText(r.Token), LockSeconds: r.LockFor.Seconds()}
}

// Params converts w to store.Renewal; no lock is DefaultLockSeconds.
// Mistakes of form are *store.ValidationError, joined.
func (w Renewal) Params() (store.Renewal, error) {
	var r store.Renewal
	var e1, e2, e3 error
	r.ID, e1 = store.ParseID(w.ID)
	r.Token, e2 = parseToken(w.LockToken)
	r.LockFor, e3 = secondsOf("lock_seconds", w.LockSeconds, 0)
	if r.LockFor == 0 {
		r.LockFor = DefaultLockSeconds * time.Second
	}
	return r, errors.Join(e1, e2, e3)
}

// Verdict is the wire form of store.Verdict; the outcome is text (see
// ParseOutcome).
type Verdict struct {
	ID           string          `json:"id"`
	LockToken    string          `json:"lock_token"`
	Outcome      string          `json:"outcome"`
	Result       json.RawMessage `json:"result,omitempty"`
	ResultBase64 string          `json:"result_base64,omitempty"`
	Error        *VerdictError   `json:"error,omitempty"`
	RetryAt      string          `json:"retry_at,omitempty"`
	Delay        string          `json:"delay,omitempty"`
}

// VerdictError is the error a verdict records in the job's history; the
// store fills in the time and the attempt.
type VerdictError struct {
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// VerdictOf returns the wire form of v.
func VerdictOf(v store.Verdict) Verdict {
	w := Verdict{
		ID:           v.ID.String(),
		LockToken:    tokenText(v.Token),
		Outcome:      OutcomeText(v.Outcome),
		ResultBase64: base64Of(v.Result),
		RetryAt:      timeText(v.RetryAt),
		Delay:        durationText(v.Delay),
	}
	if v.Error != nil {
		w.Error = &VerdictError{Message: v.Error.Message, Stack: v.Error.Stack}
	}
	return w
}

// Params converts w to store.Verdict. Mistakes of form are
// *store.ValidationError, joined.
func (w Verdict) Params() (store.Verdict, error) {
	var v store.Verdict
	errs := make([]error, 6)
	v.ID, errs[0] = store.ParseID(w.ID)
	v.Token, errs[1] = parseToken(w.LockToken)
	v.Outcome, errs[2] = ParseOutcome(w.Outcome)
	v.Result, errs[3] = bytesOf("result", w.Result, w.ResultBase64)
	v.RetryAt, errs[4] = parseTime("retry_at", w.RetryAt)
	v.Delay, errs[5] = parseDuration("delay", w.Delay)
	if w.Error != nil {
		v.Error = &store.AttemptError{Message: w.Error.Message, Stack: w.Error.Stack}
	}
	return v, errors.Join(errs...)
}

// outcomes lists the outcomes a verdict may carry, in the store's order.
var outcomes = []store.Outcome{store.Complete, store.Fail, store.DeadLetter, store.Cancel, store.Snooze, store.Release}

// OutcomeText returns an outcome's text form: "complete", "fail",
// "dead_letter", "cancel", "snooze" or "release".
func OutcomeText(o store.Outcome) string { return o.String() }

// ParseOutcome parses an outcome's text form (see OutcomeText). Anything
// else is a *store.ValidationError.
func ParseOutcome(s string) (store.Outcome, error) {
	names := make([]string, len(outcomes))
	for i, o := range outcomes {
		if s == o.String() {
			return o, nil
		}
		names[i] = o.String()
	}
	return 0, &store.ValidationError{Field: "outcome", Reason: fmt.Sprintf("%q is not one of %s", s, strings.Join(names, ", "))}
}

// The request bodies of the batch calls.
type (
	// EnqueueRequest is the body of an enqueue: {"jobs": [...]}.
	EnqueueRequest struct {
		Jobs []EnqueueParams `json:"jobs"`
	}
	// RenewRequest is the body of a renewal: {"renewals": [...]}.
	RenewRequest struct {
		Renewals []Renewal `json:"renewals"`
	}
	// SettleRequest is the body of a settle: {"verdicts": [...]}.
	SettleRequest struct {
		Verdicts []Verdict `json:"verdicts"`
	}
)

// EnqueueRequestOf returns the request body that enqueues ps.
func EnqueueRequestOf(ps []store.EnqueueParams) EnqueueRequest {
	r := EnqueueRequest{Jobs: make([]EnqueueParams, len(ps))}
	for i, p := range ps {
		r.Jobs[i] = EnqueueParamsOf(p)
	}
	return r
}

// RenewRequestOf returns the request body that renews rs.
func RenewRequestOf(rs []store.Renewal) RenewRequest {
	r := RenewRequest{Renewals: make([]Renewal, len(rs))}
	for i, x := range rs {
		r.Renewals[i] = RenewalOf(x)
	}
	return r
}

// SettleRequestOf returns the request body that settles vs.
func SettleRequestOf(vs []store.Verdict) SettleRequest {
	r := SettleRequest{Verdicts: make([]Verdict, len(vs))}
	for i, v := range vs {
		r.Verdicts[i] = VerdictOf(v)
	}
	return r
}

// DecodeEnqueue reads an EnqueueRequest and returns its jobs. It refuses
// unknown fields, trailing data, more than store.MaxBatch jobs (a
// *store.LimitError) and jobs whose fields are not in their wire form (a
// *store.ItemError per bad job, joined, each wrapping
// *store.ValidationError): all match store.ErrInvalid, and nothing of a
// refused request should be enqueued.
func DecodeEnqueue(r io.Reader) ([]store.EnqueueParams, error) {
	var req EnqueueRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return nil, err
	}
	return convertAll(req.Jobs, "jobs", EnqueueParams.Params)
}

// DecodeClaim reads the body of a claim of queue and returns the claim
// and its wait. It refuses unknown fields, trailing data, and negative
// seconds or a wait over MaxWaitSeconds; the store checks the rest.
func DecodeClaim(r io.Reader, queue string) (store.ClaimParams, time.Duration, error) {
	var w ClaimParams
	if err := decodeStrict(r, &w, "request body"); err != nil {
		return store.ClaimParams{}, 0, err
	}
	return w.Params(queue)
}

// DecodeRenew reads a RenewRequest and returns its renewals, refusing what
// DecodeEnqueue refuses.
func DecodeRenew(r io.Reader) ([]store.Renewal, error) {
	var req RenewRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return nil, err
	}
	return convertAll(req.Renewals, "renewals", Renewal.Params)
}

// DecodeSettle reads a SettleRequest and returns its verdicts, refusing
// what DecodeEnqueue refuses and outcomes that are not one of the text
// forms.
func DecodeSettle(r io.Reader) ([]store.Verdict, error) {
	var req SettleRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return nil, err
	}
	return convertAll(req.Verdicts, "verdicts", Verdict.Params)
}

// convertAll converts a batch's items, refusing a missing or oversized batch
// and naming each bad item by its index.
func convertAll[W, P any](items []W, field string, conv func(W) (P, error)) ([]P, error) {
	if items == nil {
		return nil, &store.ValidationError{Field: field, Reason: "is required"}
	}
	if err := store.CheckBatch(len(items)); err != nil {
		return nil, err
	}
	out := make([]P, len(items))
	var errs []error
	for i, w := range items {
		var err error
		if out[i], err = conv(w); err != nil {
			errs = append(errs, &store.ItemError{Index: i, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// bytesOf returns the bytes given as embedded JSON or as base64, refusing
// both at once. JSON null means none.
func bytesOf(field string, raw json.RawMessage, b64 string) ([]byte, error) {
	if string(raw) == "null" {
		raw = nil
	}
	switch {
	case raw != nil && b64 != "":
		return nil, &store.ValidationError{Field: field, Reason: fmt.Sprintf("is given twice: give %s or %s_base64", field, field)}
	case raw != nil:
		return []byte(raw), nil
	case b64 != "":
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, &store.ValidationError{Field: field + "_base64", Reason: "is not standard base64: " + err.Error()}
		}
		return b, nil
	}
	return nil, nil
}

func base64Of(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// parseTime parses an RFC 3339 time; "" is the zero time.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not an RFC 3339 time", s)}
	}
	return t, nil
}

// timeText is the RFC 3339 form of t in UTC, with as many fractional digits
// as it needs; "" for the zero time.
func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseDuration parses a Go duration string ("90s", "1h30m"); "" is zero.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not a duration such as 90s or 1h30m", s)}
	}
	return d, nil
}

// durationText is the Go form of d; "" for zero.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// parseToken parses a lock token's text form.
func parseToken(s string) (store.LockToken, error) {
	if s == "" {
		return 0, &store.ValidationError{Field: "lock_token", Reason: "is required"}
	}
	return store.ParseLockToken(s)
}

// tokenText is the text form of t; "" for the zero token.
func tokenText(t store.LockToken) string {
	if t == 0 {
		return ""
	}
	return t.String()
}
