package schedule

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spoolrun/spool/store"
)

// Validate checks a schedule (after store.Schedule.Normalize) and returns every mistake at once (errors.Join): a
// *SpecError for the spec, a *ZoneError for the zone, and *store.ValidationError
// or *store.LimitError for the rest. All of them match store.ErrInvalid.
func Validate(s *store.Schedule) error {
	errs := []error{
		store.ValidName("schedule id", s.ID, false),
		store.ValidName("tenant", s.Tenant, true),
		store.ValidName("queue", s.Queue, true),
		store.ValidName("kind", s.Kind, false),
	}
	spec, err := ParseSpec(s.Spec)
	errs = append(errs, err)
	if !utf8.ValidString(s.Spec) || strings.IndexByte(s.Spec, 0) >= 0 {
		errs = append(errs, &store.ValidationError{Field: "spec", Reason: "is not valid UTF-8 without NUL bytes"})
	}
	if _, err := LoadZone(s.Zone); err != nil {
		errs = append(errs, err)
	}
	if len(s.Payload) > store.MaxPayloadBytes {
		errs = append(errs, &store.LimitError{Field: "payload size", Limit: store.MaxPayloadBytes, Got: len(s.Payload)})
	}
	if s.Priority < store.MinPriority || s.Priority > store.MaxPriority {
		errs = append(errs, &store.ValidationError{Field: "priority", Reason: fmt.Sprintf("%d is outside %d..%d", s.Priority, store.MinPriority, store.MaxPriority)})
	}
	if s.MaxAttempts < 0 {
		errs = append(errs, &store.ValidationError{Field: "max attempts", Reason: fmt.Sprintf("%d is negative", s.MaxAttempts)})
	} else if s.MaxAttempts > store.MaxAttemptsLimit {
		errs = append(errs, &store.LimitError{Field: "max attempts", Limit: store.MaxAttemptsLimit, Got: s.MaxAttempts})
	}
	if s.Overlap < store.OverlapSkip || s.Overlap > store.OverlapAllow {
		errs = append(errs, &store.ValidationError{Field: "overlap policy", Reason: fmt.Sprintf("%d is not a known policy", s.Overlap)})
	}
	if s.Misfire < store.MisfireRunOnce || s.Misfire > store.MisfireCatchUp {
		errs = append(errs, &store.ValidationError{Field: "misfire policy", Reason: fmt.Sprintf("%d is not a known policy", s.Misfire)})
	}
	if s.CatchUpMax < 0 {
		errs = append(errs, &store.ValidationError{Field: "catch-up max", Reason: fmt.Sprintf("%d is negative", s.CatchUpMax)})
	} else if s.CatchUpMax > store.MaxCatchUpMax {
		errs = append(errs, &store.LimitError{Field: "catch-up max", Limit: store.MaxCatchUpMax, Got: s.CatchUpMax})
	}
	if s.CatchUpMax != 0 && s.Misfire != store.MisfireCatchUp {
		errs = append(errs, &store.ValidationError{Field: "catch-up max", Reason: "is set but the misfire policy is " + s.Misfire.String() + ", not catch_up"})
	}
	switch {
	case s.Mode < store.ModeFixedRate || s.Mode > store.ModeFixedDelay:
		errs = append(errs, &store.ValidationError{Field: "mode", Reason: fmt.Sprintf("%d is not a known mode", s.Mode)})
	case s.Mode == store.ModeFixedDelay && err == nil && spec.Interval() == 0:
		errs = append(errs, &store.ValidationError{Field: "mode", Reason: "fixed_delay needs an \"@every <duration>\" spec; a cron spec is fixed_rate"})
	}
	if s.Version < 0 {
		errs = append(errs, &store.ValidationError{Field: "version", Reason: fmt.Sprintf("%d is negative", s.Version)})
	}
	return errors.Join(errs...)
}
