package server

import (
	"net/url"
	"time"

	"github.com/spoolrun/spool/internal/wire"
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
		if v, ok := filterTime(*t); ok {
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

// listParams reads f as GET /v1/jobs reads its query (wire.ParseListQuery,
// after the times a browser sends are put in RFC 3339) within the scope.
func (sc *scope) listParams(f jobFilter) (store.ListParams, error) {
	p, err := wire.ParseListQuery(f.rfc3339().values())
	if err != nil {
		return p, err
	}
	return sc.scoped(p)
}

// scoped limits p to the scope's tenant and queues, refusing a tenant or a
// queue outside them.
func (sc *scope) scoped(p store.ListParams) (store.ListParams, error) {
	var err error
	if p.Tenant, err = sc.tenantIn(p.Tenant); err != nil {
		return p, err
	}
	if p.Queue != "" || sc.queues != nil {
		if p.Queue, err = sc.queueIn(p.Queue); err != nil {
			return p, err
		}
	}
	return p, nil
}

// filterTimeLayouts are the times a filter takes besides RFC 3339: what a
// browser's datetime-local input sends, read as UTC.
var filterTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

func filterTime(s string) (time.Time, bool) {
	for _, layout := range filterTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
