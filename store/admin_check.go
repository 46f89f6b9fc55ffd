package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of an audit entry. A longer Target is refused; a longer Detail is
// cut to MaxAuditText, as error messages are.
const (
	MaxAuditText = 4 << 10 // bytes of AuditEntry.Target and AuditEntry.Detail
)

// Check validates a bulk action.
func (a BulkAction) Check() error {
	switch a {
	case BulkCancel, BulkRequeue, BulkDelete:
		return nil
	}
	return &ValidationError{Field: "bulk action", Reason: fmt.Sprintf("%q is not one of cancel, requeue, delete", string(a))}
}

// CheckCount validates the filter and cap of BulkStore.CountJobs: the
// filter as CheckFilter does, and a cap (Limit) that is not negative.
func (p *ListParams) CheckCount() error {
	var errs []error
	if p.Limit < 0 {
		errs = append(errs, &ValidationError{Field: "count limit", Reason: fmt.Sprintf("%d is negative (0 counts every job)", p.Limit)})
	}
	return errors.Join(append(errs, p.CheckFilter())...)
}

// Check validates the counts of one queue for ActivityStore.AddActivity.
func (a *QueueActivity) Check() error {
	if err := ValidName("queue", a.Queue, false); err != nil {
		return err
	}
	negative := a.Completed < 0 || a.Failed < 0 || a.Dead < 0
	for _, n := range a.Pickup {
		negative = negative || n < 0
	}
	if negative {
		return &ValidationError{Field: "activity", Reason: fmt.Sprintf("queue %q has a negative count", a.Queue)}
	}
	return nil
}

// Add adds b's counts to a's (their queues are not compared).
func (a *QueueActivity) Add(b *QueueActivity) {
	a.Completed += b.Completed
	a.Failed += b.Failed
	a.Dead += b.Dead
	for i := range a.Pickup {
		a.Pickup[i] += b.Pickup[i]
	}
}

// PickupBucket returns the index in QueueActivity.Pickup of a pickup
// latency of d (negative counts as 0): the first bucket whose bound is at
// least d, else the last.
func PickupBucket(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, b := range PickupBounds {
		if ms <= b {
			return i
		}
	}
	return len(PickupBounds)
}

// ActivityPrefixes returns the prefixes of the queue names that belong to
// tenant: its own queues ("tenant/...") and its subscriptions' delivery
// queues ("sub/tenant/..."); nil for AllTenants. The tenant is checked as
// a name (it may be empty).
func ActivityPrefixes(tenant string) ([]string, error) {
	if tenant == AllTenants {
		return nil, nil
	}
	if err := ValidName("tenant", tenant, true); err != nil {
		return nil, err
	}
	return []string{tenant + "/", SubscriptionQueuePrefix + tenant + "/"}, nil
}

// Normalize checks an audit entry before it is recorded and cuts its
// Detail to MaxAuditText; ID and At are the store's to set. It returns
// every mistake at once.
func (e *AuditEntry) Normalize() error {
	var errs []error
	if err := ValidName("audit action", e.Action, false); err != nil {
		errs = append(errs, err)
	}
	if err := ValidName("tenant", e.Tenant, true); err != nil {
		errs = append(errs, err)
	}
	if err := ValidName("key id", e.KeyID, true); err != nil {
		errs = append(errs, err)
	}
	if e.Count < 0 {
		errs = append(errs, &ValidationError{Field: "audit count", Reason: fmt.Sprintf("%d is negative", e.Count)})
	}
	if len(e.Target) > MaxAuditText {
		errs = append(errs, &LimitError{Field: "audit target length", Limit: MaxAuditText, Got: len(e.Target)})
	}
	for _, f := range []struct{ name, s string }{{"audit target", e.Target}, {"audit detail", e.Detail}} {
		if !utf8.ValidString(f.s) || strings.IndexByte(f.s, 0) >= 0 {
			errs = append(errs, &ValidationError{Field: f.name, Reason: "is not UTF-8 text without NUL bytes"})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	e.Detail = truncateUTF8(e.Detail, MaxAuditText)
	return nil
}

// Normalize fills the default limit of AuditListParams and checks them.
func (p *AuditListParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	var errs []error
	if p.Limit < 1 || p.Limit > MaxListLimit {
		errs = append(errs, &ValidationError{Field: "audit list limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxListLimit)})
	}
	if p.Before < 0 {
		errs = append(errs, &ValidationError{Field: "audit cursor", Reason: fmt.Sprintf("%d is negative", p.Before)})
	}
	if p.Tenant != AllTenants {
		if err := ValidName("tenant", p.Tenant, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
