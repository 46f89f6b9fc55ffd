package remote

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The calls of store.ScheduleStore, over /v1/schedules.

// UpsertSchedules implements store.ScheduleStore (POST /v1/schedules).
func (s *Store) UpsertSchedules(ctx context.Context, scs []store.Schedule) ([]store.ScheduleUpsertResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(scs)); err != nil {
		return nil, err
	}
	if len(scs) == 0 {
		return []store.ScheduleUpsertResult{}, nil
	}
	r := request{method: http.MethodPost, path: "/v1/schedules", body: wire.UpsertSchedulesRequestOf(scs)}
	var out struct {
		Results []wire.ScheduleUpsertItem `json:"results"`
	}
	if err := s.do(ctx, r, &out); err != nil {
		return nil, err
	}
	res, err := wire.ScheduleUpsertResults(out.Results, len(scs))
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return res, nil
}

// GetSchedule implements store.ScheduleStore (GET /v1/schedules/{id}).
func (s *Store) GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs([]store.ScheduleRef{ref}); err != nil {
		return nil, err
	}
	q := url.Values{"next": {"0"}, "states": {"false"}}
	if ref.Tenant != "" {
		q.Set("tenant", ref.Tenant)
	}
	r := request{method: http.MethodGet, path: "/v1/schedules/" + seg(ref.ID), query: q}
	var v wire.ScheduleDetail
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	return s.schedule(r, &v.Schedule, v.LastRuns)
}

// schedule converts a schedule's view and its last runs back.
func (s *Store) schedule(r request, v *wire.Schedule, runs []wire.ScheduleRun) (*store.Schedule, error) {
	sc, err := v.StoreSchedule()
	if err == nil {
		sc.Recent, err = wire.StoreRuns(runs)
	}
	if err != nil {
		return nil, s.badAnswer(r, "schedule %q: %v", v.ID, err)
	}
	return sc, nil
}

// ListSchedules implements store.ScheduleStore (GET /v1/schedules).
func (s *Store) ListSchedules(ctx context.Context, p store.ScheduleListParams) (*store.SchedulePage, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	q := url.Values{"limit": {strconv.Itoa(p.Limit)}}
	if p.Tenant != "" {
		q.Set("tenant", p.Tenant)
	}
	if p.After != "" {
		q.Set("after", p.After)
	}
	r := request{method: http.MethodGet, path: "/v1/schedules", query: q}
	var v wire.ListedSchedulePage
	if err := s.do(ctx, r, &v); err != nil {
		return nil, err
	}
	page := &store.SchedulePage{Schedules: make([]*store.Schedule, len(v.Schedules)), Next: v.Next}
	for i := range v.Schedules {
		sc, err := s.schedule(r, &v.Schedules[i].Schedule, v.Schedules[i].LastRuns)
		if err != nil {
			return nil, err
		}
		page.Schedules[i] = sc
	}
	return page, nil
}

// PauseSchedules implements store.ScheduleStore (POST /v1/schedules/pause).
func (s *Store) PauseSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, "pause", refs)
}

// ResumeSchedules implements store.ScheduleStore (POST /v1/schedules/resume).
func (s *Store) ResumeSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, "resume", refs)
}

// DeleteSchedules implements store.ScheduleStore (POST /v1/schedules/delete).
func (s *Store) DeleteSchedules(ctx context.Context, refs []store.ScheduleRef) ([]error, error) {
	return s.perRef(ctx, "delete", refs)
}

func (s *Store) perRef(ctx context.Context, verb string, refs []store.ScheduleRef) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return []error{}, nil
	}
	r := request{method: http.MethodPost, path: "/v1/schedules/" + verb, body: wire.ScheduleRefsRequestOf(refs)}
	return s.items(ctx, r, len(refs))
}

// TriggerSchedules implements store.ScheduleStore (POST /v1/schedules/trigger).
func (s *Store) TriggerSchedules(ctx context.Context, refs []store.ScheduleRef) ([]store.TriggerResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckScheduleRefs(refs); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return []store.TriggerResult{}, nil
	}
	r := request{method: http.MethodPost, path: "/v1/schedules/trigger", body: wire.ScheduleRefsRequestOf(refs)}
	var out struct {
		Results []wire.TriggerItem `json:"results"`
	}
	if err := s.do(ctx, r, &out); err != nil {
		return nil, err
	}
	res, err := wire.TriggerResults(out.Results, len(refs))
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return res, nil
}

// FireDue implements store.ScheduleStore (POST /v1/schedules/fire). Firing
// spans every tenant, so the server lets only an operator's key do it; with
// a tenant's key FireDue fires nothing and reports nothing due (spool serve
// fires every tenant's schedules itself), and stops asking.
func (s *Store) FireDue(ctx context.Context, p store.FireParams) (*store.FireResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	if s.fireRefused.Load() {
		return &store.FireResult{Now: time.Now()}, nil
	}
	r := request{method: http.MethodPost, path: "/v1/schedules/fire", body: wire.FireRequest{Limit: p.Limit}}
	var v wire.FireResult
	if err := s.do(ctx, r, &v); err != nil {
		if errors.Is(err, store.ErrForbidden) {
			s.fireRefused.Store(true)
			s.log.Info("spool: remote store: the API key may not fire schedules; leaving that to the server", "url", s.shown, "err", err)
			return &store.FireResult{Now: time.Now()}, nil
		}
		return nil, err
	}
	res, err := v.StoreResult()
	if err != nil {
		return nil, s.badAnswer(r, "%v", err)
	}
	return res, nil
}
