package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ValidName reports why a queue, kind or tenant name is unacceptable, or nil.
// Names are 1..MaxNameLen bytes of letters, digits and . _ : / -
// (tenants may be empty: pass allowEmpty).
func ValidName(field, s string, allowEmpty bool) error {
	if s == "" {
		if allowEmpty {
			return nil
		}
		return &ValidationError{Field: field, Reason: "is required"}
	}
	if len(s) > MaxNameLen {
		return &LimitError{Field: field + " length", Limit: MaxNameLen, Got: len(s)}
	}
	for _, r := range s {
		if !nameRune(r) {
			return &ValidationError{Field: field, Reason: fmt.Sprintf("%q has %q; use letters, digits and . _ : / -", s, r)}
		}
	}
	return nil
}

// nameRune reports whether r may appear in a name: an ASCII letter or digit,
// or one of . _ : / -.
func nameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:/-", r)
}

func validKey(field, s string) error {
	if len(s) > MaxKeyLen {
		return &LimitError{Field: field + " length", Limit: MaxKeyLen, Got: len(s)}
	}
	if !utf8.ValidString(s) {
		return &ValidationError{Field: field, Reason: "is not valid UTF-8"}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return &ValidationError{Field: field, Reason: "contains a NUL byte"}
	}
	return nil
}

// Normalize fills defaults into p and validates it, returning every mistake at
// once (errors.Join). now is used for a zero RunAt.
func (p *EnqueueParams) Normalize(now time.Time) error {
	if p.ID.IsZero() {
		p.ID = NewID()
	}
	if p.Queue == "" {
		p.Queue = DefaultQueue
	}
	var errs []error
	switch {
	case p.Delay < 0:
		errs = append(errs, &ValidationError{Field: "delay", Reason: fmt.Sprintf("%v is negative", p.Delay)})
	case p.Delay > 0 && !p.RunAt.IsZero():
		errs = append(errs, &ValidationError{Field: "delay", Reason: "is set together with a run-at time; give one"})
	case p.RunAt.IsZero():
		p.RunAt = now.Add(p.Delay)
	}
	p.Delay = 0
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxDeliveries == 0 {
		p.MaxDeliveries = DefaultMaxDeliveries
	}
	errs = append(errs,
		ValidName("queue", p.Queue, false),
		ValidName("kind", p.Kind, false),
		ValidName("tenant", p.Tenant, true),
		validKey("unique key", p.UniqueKey),
		validKey("ordering key", p.OrderingKey),
	)
	if len(p.Payload) > MaxPayloadBytes {
		errs = append(errs, &LimitError{Field: "payload size", Limit: MaxPayloadBytes, Got: len(p.Payload)})
	}
	switch {
	case p.UniqueFor < 0 || p.UniqueFor > MaxUniqueFor:
		errs = append(errs, &ValidationError{Field: "unique for", Reason: fmt.Sprintf("%v is outside 0s..%v", p.UniqueFor, MaxUniqueFor)})
	case p.UniqueFor > 0 && p.UniqueKey == "":
		errs = append(errs, &ValidationError{Field: "unique for", Reason: "needs a unique key"})
	}
	if p.HoldKeyWhenDead && p.OrderingKey == "" {
		errs = append(errs, &ValidationError{Field: "hold key when dead", Reason: "needs an ordering key"})
	}
	if p.Priority < MinPriority || p.Priority > MaxPriority {
		errs = append(errs, &ValidationError{Field: "priority", Reason: fmt.Sprintf("%d is outside %d..%d", p.Priority, MinPriority, MaxPriority)})
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsLimit {
		errs = append(errs, &ValidationError{Field: "max attempts", Reason: fmt.Sprintf("%d is outside 1..%d", p.MaxAttempts, MaxAttemptsLimit)})
	}
	if p.MaxDeliveries < 1 || p.MaxDeliveries > MaxAttemptsLimit {
		errs = append(errs, &ValidationError{Field: "max deliveries", Reason: fmt.Sprintf("%d is outside 1..%d", p.MaxDeliveries, MaxAttemptsLimit)})
	}
	if p.Attempts < 0 || p.Attempts >= max(p.MaxAttempts, 1) {
		errs = append(errs, &ValidationError{Field: "attempts", Reason: fmt.Sprintf("%d is outside 0..max attempts-1", p.Attempts)})
	}
	if len(p.Errors) > MaxErrorHistory {
		errs = append(errs, &LimitError{Field: "errors", Limit: MaxErrorHistory, Got: len(p.Errors)})
	}
	if len(p.Errors) > 0 {
		p.Errors = slices.Clone(p.Errors)
		for i := range p.Errors {
			p.Errors[i].Truncate()
		}
	}
	if len(p.Metadata) == 0 {
		p.Metadata = nil
	} else {
		errs = append(errs, CheckMetadata(p.Metadata))
		p.Metadata = maps.Clone(p.Metadata)
	}
	return errors.Join(errs...)
}

// CheckMetadata reports every reason m cannot be a job's metadata: more
// than MaxMetadata entries or MaxMetadataBytes of names and values (a
// *LimitError), an empty or overlong name, or text that is not UTF-8 or
// holds a NUL byte (a *ValidationError).
func CheckMetadata(m map[string]string) error {
	var errs []error
	if len(m) > MaxMetadata {
		errs = append(errs, &LimitError{Field: "metadata entries", Limit: MaxMetadata, Got: len(m)})
	}
	size, bad := 0, false
	for k, v := range m { // the common case: all is well, nothing to sort
		size += len(k) + len(v)
		bad = bad || k == "" || len(k) > MaxMetadataName || !utf8.ValidString(k) || !utf8.ValidString(v) ||
			strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0
	}
	if size > MaxMetadataBytes {
		errs = append(errs, &LimitError{Field: "metadata size", Limit: MaxMetadataBytes, Got: size})
	}
	if !bad {
		return errors.Join(errs...)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) { // stable messages
		v := m[k]
		switch {
		case k == "":
			errs = append(errs, &ValidationError{Field: "metadata", Reason: "has an empty name"})
		case len(k) > MaxMetadataName:
			errs = append(errs, &LimitError{Field: "metadata name length", Limit: MaxMetadataName, Got: len(k)})
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			errs = append(errs, &ValidationError{Field: "metadata " + strconv.Quote(k), Reason: "is not valid UTF-8"})
		case strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0:
			errs = append(errs, &ValidationError{Field: "metadata " + strconv.Quote(k), Reason: "contains a NUL byte"})
		}
	}
	return errors.Join(errs...)
}

// CheckUniqueKeyLookup checks the arguments of Store.GetByUniqueKey: a
// valid tenant (or none) and a non-empty unique key.
func CheckUniqueKeyLookup(tenant, key string) error {
	var keyErr error
	if key == "" {
		keyErr = &ValidationError{Field: "unique key", Reason: "is required"}
	} else {
		keyErr = validKey("unique key", key)
	}
	return errors.Join(ValidName("tenant", tenant, true), keyErr)
}

// Normalize fills defaults into p and validates it.
func (p *ClaimParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultClaimLimit
	}
	var errs []error
	errs = append(errs, ValidName("queue", p.Queue, false))
	if p.Limit < 1 || p.Limit > MaxClaim {
		errs = append(errs, &ValidationError{Field: "claim limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxClaim)})
	}
	errs = append(errs, ValidLockDuration(p.LockFor))
	return errors.Join(errs...)
}

// ValidLockDuration reports whether d is an acceptable lock duration.
func ValidLockDuration(d time.Duration) error {
	if d < MinLockDuration || d > MaxLockDuration {
		return &ValidationError{Field: "lock duration", Reason: fmt.Sprintf("%v is outside %v..%v", d, MinLockDuration, MaxLockDuration)}
	}
	return nil
}

// Check validates a verdict without touching the store.
func (v *Verdict) Check() error {
	switch v.Outcome {
	case Complete:
		if len(v.Result) > MaxResultBytes {
			return &LimitError{Field: "result size", Limit: MaxResultBytes, Got: len(v.Result)}
		}
	case Fail, DeadLetter, Cancel, Snooze, Release:
	default:
		return &ValidationError{Field: "outcome", Reason: fmt.Sprintf("%d is not a known outcome", v.Outcome)}
	}
	if v.Token == 0 {
		return &ValidationError{Field: "lock token", Reason: "is missing"}
	}
	if v.Delay < 0 {
		return &ValidationError{Field: "retry delay", Reason: fmt.Sprintf("%v is negative", v.Delay)}
	}
	return nil
}

// Normalize checks a verdict and resolves its Delay against now, the
// store's clock: a zero RetryAt becomes now plus Delay.
func (v *Verdict) Normalize(now time.Time) error {
	if err := v.Check(); err != nil {
		return err
	}
	if v.RetryAt.IsZero() {
		v.RetryAt = now.Add(v.Delay)
	}
	v.Delay = 0
	return nil
}

// Normalize fills the default limit and checks it.
func (p *PruneParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultPruneLimit
	}
	if p.Limit < 1 || p.Limit > MaxPruneLimit {
		return &ValidationError{Field: "prune limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxPruneLimit)}
	}
	return nil
}

// CheckReapLimit checks the limit of one ReapExpired call.
func CheckReapLimit(limit int) error {
	if limit < 1 || limit > MaxReapLimit {
		return &ValidationError{Field: "reap limit", Reason: fmt.Sprintf("%d is outside 1..%d", limit, MaxReapLimit)}
	}
	return nil
}

// Check checks purge parameters: the batch size and the queue name.
func (p *PurgeParams) Check() error {
	if err := CheckBatch(len(p.IDs)); err != nil {
		return err
	}
	if p.Queue != "" {
		return ValidName("queue", p.Queue, false)
	}
	return nil
}

// SortClaimed puts claimed jobs in claim order: priority, then run_at, then
// enqueue order. Stores may claim in any order; callers see this one.
func SortClaimed(jobs []*Job) {
	slices.SortFunc(jobs, func(a, b *Job) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
}

// Check validates list parameters and fills the default limit.
func (p *ListParams) Check() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	var errs []error
	if p.Limit < 1 || p.Limit > MaxListLimit {
		errs = append(errs, &ValidationError{Field: "list limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxListLimit)})
	}
	return errors.Join(append(errs, p.CheckFilter())...)
}

// CheckFilter validates the filter fields of p, those that select jobs
// for List and for the bulk actions (all but After, Limit and Newest),
// and returns every mistake at once.
func (p *ListParams) CheckFilter() error {
	var errs []error
	for _, s := range p.States {
		if !s.Valid() {
			errs = append(errs, &ValidationError{Field: "state", Reason: fmt.Sprintf("%q is not a job state", s)})
		}
	}
	errs = append(errs, validKey("unique key", p.UniqueKey), validKey("ordering key", p.OrderingKey))
	if !p.CreatedAfter.IsZero() && !p.CreatedBefore.IsZero() && p.CreatedAfter.After(p.CreatedBefore) {
		errs = append(errs, &ValidationError{Field: "created range",
			Reason: fmt.Sprintf("created after %s is later than created before %s", p.CreatedAfter.Format(time.RFC3339Nano), p.CreatedBefore.Format(time.RFC3339Nano))})
	}
	return errors.Join(errs...)
}

// CheckBatch refuses an empty-safe batch larger than MaxBatch.
func CheckBatch(n int) error {
	if n > MaxBatch {
		return &LimitError{Field: "batch size", Limit: MaxBatch, Got: n}
	}
	return nil
}

// Truncate shortens an attempt error's message and stack to the limits,
// keeping the head of the message and the head of the stack.
func (e *AttemptError) Truncate() {
	e.Message = truncateUTF8(e.Message, MaxErrorMessage)
	e.Stack = truncateUTF8(e.Stack, MaxErrorStack)
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// NormalizeAll normalizes every item and returns the *ItemError of each bad
// one, joined; nil when all are valid.
func NormalizeAll(jobs []EnqueueParams, now time.Time) error {
	if err := CheckBatch(len(jobs)); err != nil {
		return err
	}
	var errs []error
	for i := range jobs {
		if err := jobs[i].Normalize(now); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}
