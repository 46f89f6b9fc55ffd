package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// route is one row of the API's table: every request passes through
// Server.handle, which authorizes it by perm before fn runs.
type route struct {
	method, path string
	perm         perm
	// doc says what the route does, for the OpenAPI document; in and out
	// are values of its request body's and answer's types.
	doc     string
	in, out any
	// poll marks a long poll, whose timeout is its wait plus the request
	// timeout.
	poll bool
	fn   func(c *call) (any, error)
}

// call is one request being answered.
type call struct {
	s  *Server
	w  http.ResponseWriter
	r  *http.Request
	sc *scope
	// ctx is the request's context, bounded by the request timeout.
	ctx context.Context
	// status answers a success; default 200.
	status int
	// statsFor is how old the queue statistics may be (storeStats); 0 for
	// the API, which reads them afresh.
	statsFor time.Duration
}

// exactBytes says the client wants payloads and results base64-encoded,
// byte for byte as stored (store/remote does).
func (c *call) exactBytes() bool { return c.r.Header.Get(HeaderBytes) == "base64" }

// HeaderBytes asks, with the value "base64", for payloads and results as
// base64 even when they are JSON, so they arrive byte for byte as stored.
const HeaderBytes = "Spool-Bytes"

// handle runs rt for one request: authenticate, authorize, rate-limit,
// bound the body and the time, answer in JSON.
func (s *Server) handle(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{s: s, w: w, r: r, status: http.StatusOK}
		if rt.perm != permPublic && (rt.perm != permMetrics || s.cfg.MetricsAccess != MetricsPublic) {
			sc, err := s.authenticate(r)
			if err != nil {
				writeError(w, r, err)
				return
			}
			if !roleCan(sc.role, rt.perm) {
				writeError(w, r, forbidden("a %s key may not %s", sc.role, rt.perm))
				return
			}
			if rt.perm == permMetrics && !sc.all() {
				writeError(w, r, forbidden("the metrics name every tenant's queues: read them with an operator's key (tenant *)"))
				return
			}
			if err := s.allow(sc); err != nil {
				writeError(w, r, err)
				return
			}
			c.sc = sc
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		timeout := s.cfg.RequestTimeout
		if rt.poll {
			timeout += MaxWait
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		c.ctx = ctx
		v, err := rt.fn(c)
		if err != nil {
			if status := wire.Status(err); status >= 500 && status != http.StatusNotImplemented {
				s.cfg.Logger.Error("spool serve: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, r, err)
			return
		}
		if _, ok := v.(streamed); ok {
			return // the route wrote its answer itself
		}
		writeJSON(w, c.status, v)
	})
}

// streamed is the answer of a route that wrote its response itself, such
// as a long poll that sends its headers before its body.
type streamed struct{}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status, buf = http.StatusInternalServerError, *bytes.NewBufferString(`{"error":{"code":"internal","message":"spool: internal error"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError answers err as {"error": {...}} with its catalog status; a
// request whose client went away gets nothing, as no one reads it.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = &store.LimitError{Field: "request body size", Limit: int(mbe.Limit), Got: int(mbe.Limit) + 1}
	}
	if store.Code(err) == "unauthorized" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
	}
	if store.Code(err) == "rate_limited" {
		w.Header().Set("Retry-After", "1")
	}
	status := wire.Status(err)
	var ie *store.ItemError
	if errors.As(err, &ie) && status < 500 {
		status = http.StatusUnprocessableEntity // items of the request were refused
	}
	writeJSON(w, status, wire.ErrorBody{Error: wire.ErrorOf(err)})
}

// body reads the whole request body (bounded by MaxBodyBytes).
func (c *call) body() ([]byte, error) {
	return io.ReadAll(c.r.Body) // *http.MaxBytesError past the limit
}

// decode reads the request body strictly into v (see decodeFrom).
func (c *call) decode(v any) error {
	raw, err := c.body()
	if err != nil {
		return err
	}
	return c.decodeFrom(raw, v)
}

// decodeFrom reads raw strictly into v: unknown fields and anything after
// the value are refused as invalid.
func (c *call) decodeFrom(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &store.ValidationError{Field: "request body", Reason: jsonReason(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &store.ValidationError{Field: "request body", Reason: "has more after its JSON value"}
	}
	return nil
}

func jsonReason(err error) string {
	msg := err.Error()
	return strings.TrimPrefix(msg, "json: ")
}

// query returns URL query parameter name.
func (c *call) query(name string) string { return c.r.URL.Query().Get(name) }

// intQuery parses an integer query parameter; def when absent.
func (c *call) intQuery(name string, def int) (int, error) {
	v := c.query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &store.ValidationError{Field: name, Reason: strconv.Quote(v) + " is not a whole number"}
	}
	return n, nil
}

// durationQuery parses a duration query parameter ("30s", or a number of
// seconds); def when absent.
func (c *call) durationQuery(name string, def time.Duration) (time.Duration, error) {
	v := c.query(name)
	if v == "" {
		return def, nil
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &store.ValidationError{Field: name, Reason: strconv.Quote(v) + " is not a duration such as 30s"}
	}
	return d, nil
}

// jobID parses the {id} of the path.
func (c *call) jobID() (store.ID, error) {
	return store.ParseID(c.r.PathValue("id"))
}

// batchBody reads the request body and reports whether it is a batch: an
// object with the field named ({"jobs": [...]}), rather than one item.
func (c *call) batchBody(field string) (raw []byte, batch bool, err error) {
	if raw, err = c.body(); err != nil {
		return nil, false, err
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(raw, &probe) // not an object: decoding it as one item says why
	_, batch = probe[field]
	return raw, batch, nil
}

// perItem answers a batch item by item: conv converts and checks each
// item, and apply takes the items that passed in one call; an item conv
// refused is answered refused(its error) and is not applied.
func perItem[W, P, R any](items []W, conv func(W) (P, error), apply func([]P) ([]R, error), refused func(error) R) ([]R, error) {
	out := make([]R, len(items))
	var ok []P
	var at []int
	for i, w := range items {
		p, err := conv(w)
		if err != nil {
			out[i] = refused(err)
			continue
		}
		ok = append(ok, p)
		at = append(at, i)
	}
	if len(ok) > 0 {
		res, err := apply(ok)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			out[i] = res[k]
		}
	}
	return out, nil
}

// asIs answers a refused item with its error.
func asIs(err error) error { return err }
