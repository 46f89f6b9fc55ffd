package wire

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spoolrun/spool/store"
)

// The query string of a job list (GET /v1/jobs): queue, kind, tenant,
// state (comma-separated), unique_key, ordering_key, created_after and
// created_before (RFC 3339), order (oldest, the default, or newest),
// after (the cursor) and limit.

// Orders of a job list.
const (
	OrderOldest = "oldest"
	OrderNewest = "newest"
)

// ListQuery returns the query string of a job list for p. Zero fields are
// left out.
func ListQuery(p store.ListParams) url.Values {
	q := url.Values{}
	for _, kv := range [][2]string{
		{"queue", p.Queue}, {"kind", p.Kind}, {"tenant", p.Tenant},
		{"unique_key", p.UniqueKey}, {"ordering_key", p.OrderingKey},
		{"created_after", timeText(p.CreatedAfter)}, {"created_before", timeText(p.CreatedBefore)},
	} {
		if kv[1] != "" {
			q.Set(kv[0], kv[1])
		}
	}
	if len(p.States) > 0 {
		states := make([]string, len(p.States))
		for i, st := range p.States {
			states[i] = string(st)
		}
		q.Set("state", strings.Join(states, ","))
	}
	if p.Newest {
		q.Set("order", OrderNewest)
	}
	if !p.After.IsZero() {
		q.Set("after", p.After.String())
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	return q
}

// ParseListQuery reads the query string of a job list, as ListQuery writes
// it, and returns every mistake at once, each matching store.ErrInvalid.
// Names are taken as given: the server puts them in the key's tenant.
// Unknown parameters are left to the caller.
func ParseListQuery(q url.Values) (store.ListParams, error) {
	p := store.ListParams{
		Queue: q.Get("queue"), Kind: q.Get("kind"), Tenant: q.Get("tenant"),
		UniqueKey: q.Get("unique_key"), OrderingKey: q.Get("ordering_key"),
	}
	var errs []error
	bad := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for s := range strings.SplitSeq(q.Get("state"), ",") {
		if s == "" {
			continue
		}
		st := store.State(s)
		if !st.Valid() {
			bad(&store.ValidationError{Field: "state", Reason: fmt.Sprintf("%q is not a job state", s)})
			continue
		}
		p.States = append(p.States, st)
	}
	var err error
	p.CreatedAfter, err = parseTime("created_after", q.Get("created_after"))
	bad(err)
	p.CreatedBefore, err = parseTime("created_before", q.Get("created_before"))
	bad(err)
	switch o := q.Get("order"); o {
	case "", OrderOldest:
	case OrderNewest:
		p.Newest = true
	default:
		bad(&store.ValidationError{Field: "order", Reason: fmt.Sprintf("%q is not oldest or newest", o)})
	}
	if a := q.Get("after"); a != "" {
		p.After, err = store.ParseID(a)
		bad(err)
	}
	if l := q.Get("limit"); l != "" {
		if p.Limit, err = strconv.Atoi(l); err != nil {
			bad(&store.ValidationError{Field: "limit", Reason: strconv.Quote(l) + " is not a whole number"})
		}
	}
	if len(errs) > 0 {
		return store.ListParams{}, errors.Join(errs...)
	}
	return p, nil
}
