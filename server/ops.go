package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spoolrun/spool/store"
)

// MetricsAccess says who may read GET /metrics.
type MetricsAccess string

// The values of Config.MetricsAccess.
const (
	// MetricsOperator (the default) serves /metrics to an operator's key
	// (tenant *) of any role: the metrics name every tenant's queues, so a
	// tenant's key may not read them.
	MetricsOperator MetricsAccess = "operator"
	// MetricsPublic serves /metrics without a key, for a scraper on a
	// private network.
	MetricsPublic MetricsAccess = "public"
	// MetricsOff answers /metrics 404.
	MetricsOff MetricsAccess = "off"
)

// livez is GET /livez.
func (c *call) livez() (any, error) {
	c.s.health.ServeLive(c.w, c.r)
	return streamed{}, nil
}

// readyz is GET /readyz.
func (c *call) readyz() (any, error) {
	c.s.health.ServeReady(c.w, c.r.WithContext(c.ctx))
	return streamed{}, nil
}

// metrics is GET /metrics.
func (c *call) metrics() (any, error) {
	if c.s.metrics == nil {
		return nil, &store.NotFoundError{Resource: "route", Name: "GET /metrics (metrics are off)"}
	}
	c.s.metrics.ServeHTTP(c.w, c.r)
	return streamed{}, nil
}

// metricsHandler serves cfg.Gatherer, or nil when metrics are off.
func metricsHandler(cfg Config) http.Handler {
	if cfg.Gatherer == nil || cfg.MetricsAccess == MetricsOff {
		return nil
	}
	return promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
}
