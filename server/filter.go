package server

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// jobFilter selects jobs, as GET /v1/jobs's query parameters and the
// filter of POST /v1/jobs/bulk name them. Empty fields do not filter.
type jobFilter struct {
	Queue string `json:"queue,omitempty"`
	// State is one state or several, comma-separated.
	State string `json:"state,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Tenant is for an operator's key; a tenant's key filters by its own.
	Tenant      string `json:"tenant,omitempty"`
	UniqueKey   string `json:"unique_key,omitempty"`
	OrderingKey string `json:"ordering_key,omitempty"`
	// CreatedAfter and CreatedBefore bound the jobs' creation: RFC 3339,
	// or a UTC time such as 2026-05-01T12:30.
	CreatedAfter  string `json:"created_after,omitempty"`
	CreatedBefore string `json:"created_before,omitempty"`
}

// filterOf reads a filter from query parameters (or form values).
func filterOf(q url.Values) jobFilter {
	return jobFilter{
		Queue: q.Get("queue"), State: q.Get("state"), Kind: q.Get("kind"), Tenant: q.Get("tenant"),
		UniqueKey: q.Get("unique_key"), OrderingKey: q.Get("ordering_key"),
		CreatedAfter: q.Get("created_after"), CreatedBefore: q.Get("created_before"),
	}
}

// values returns the filter as query parameters, the empty ones left out.
func (f jobFilter) values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"queue", f.Queue}, {"state", f.State}, {"kind", f.Kind}, {"tenant", f.Tenant},
		{"unique_key", f.UniqueKey}, {"ordering_key", f.OrderingKey}, {"created_after", f.CreatedAfter}, {"created_before", f.CreatedBefore}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

// rfc3339 returns the filter with its times in RFC 3339, as every reader
// of GET /v1/jobs's query takes them; a time it cannot read is left as
// it is, to be refused there.
func (f jobFilter) rfc3339() jobFilter {
	for _, t := range []*string{&f.CreatedAfter, &f.CreatedBefore} {
		if v, err := filterTime("", *t); err == nil && !v.IsZero() {
			*t = v.Format(time.RFC3339Nano)
		}
	}
	return f
}

// describe says what the filter selects, for the audit log and the
// confirm step.
func (f jobFilter) describe() string {
	if s := f.values().Encode(); s != "" {
		s, _ = url.QueryUnescape(s)
		return s
	}
	return "every job"
}

// listParams turns a filter into the store's, in the key's scope: its
// tenant, and a queue it may use (a key limited to queues must name one).
func (sc *scope) listParams(f jobFilter) (store.ListParams, error) {
	p := store.ListParams{Kind: f.Kind, UniqueKey: f.UniqueKey, OrderingKey: f.OrderingKey}
	var err error
	if p.Tenant, err = sc.tenantIn(f.Tenant); err != nil {
		return p, err
	}
	if f.Queue != "" || sc.queues != nil {
		if p.Queue, err = sc.queueIn(f.Queue); err != nil {
			return p, err
		}
	}
	for s := range strings.SplitSeq(f.State, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		st := store.State(s)
		if !st.Valid() {
			return p, &store.ValidationError{Field: "state", Reason: fmt.Sprintf("%q is not a job state", s)}
		}
		p.States = append(p.States, st)
	}
	if p.CreatedAfter, err = filterTime("created_after", f.CreatedAfter); err != nil {
		return p, err
	}
	if p.CreatedBefore, err = filterTime("created_before", f.CreatedBefore); err != nil {
		return p, err
	}
	if len(p.UniqueKey) > store.MaxKeyLen || len(p.OrderingKey) > store.MaxKeyLen {
		return p, &store.LimitError{Field: "key length", Limit: store.MaxKeyLen, Got: max(len(p.UniqueKey), len(p.OrderingKey))}
	}
	return p, nil
}

// filterTimeLayouts are the times a filter takes besides RFC 3339: what a
// browser's datetime-local input sends, read as UTC.
var filterTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

func filterTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range filterTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not a time such as 2026-05-01T12:30:00Z", s)}
}
