package server

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/time/rate"

	"github.com/spoolrun/spool/internal/apikey"

	"github.com/spoolrun/spool/store"
)

// perm is what a route needs of the caller's key.
type perm uint8

const (
	permPublic  perm = iota // no key needed
	permRead                // every role
	permProduce             // producer, admin
	permWork                // worker, admin
	permAdmin               // admin
	// permMetrics is /metrics: an operator's key (every tenant), any role,
	// since the metrics name every tenant's queues; or no key at all when
	// Config.MetricsAccess is MetricsPublic.
	permMetrics
)

func (p perm) String() string {
	return [...]string{"public", "read", "produce", "work", "admin", "metrics"}[p]
}

// roleCan reports whether role has permission p.
func roleCan(role string, p perm) bool {
	switch p {
	case permPublic, permRead, permMetrics:
		return true
	case permProduce:
		return role == store.RoleProducer || role == store.RoleAdmin
	case permWork:
		return role == store.RoleWorker || role == store.RoleAdmin
	}
	return role == store.RoleAdmin
}

// authenticate returns the scope of the request's bearer key: every tenant
// for an insecure server, or ErrUnauthorized when the key is missing,
// unknown, revoked or expired.
func (s *Server) authenticate(r *http.Request) (*scope, error) {
	if s.cfg.Insecure {
		return &scope{tenant: store.AllTenants, role: store.RoleAdmin}, nil
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, fmt.Errorf("%w: send Authorization: Bearer <key>", store.ErrUnauthorized)
	}
	id, secret, err := apikey.Parse(strings.TrimSpace(tok))
	if err != nil {
		return nil, fmt.Errorf("%w: the key is not of the form spool_<id>_<secret>", store.ErrUnauthorized)
	}
	k, err := s.lookupKey(r, id)
	if err != nil {
		return nil, err
	}
	if !apikey.Verify(k, secret) {
		s.cfg.Logger.Warn("spool serve: refused an unknown key", "key", id, "remote", r.RemoteAddr)
		return nil, fmt.Errorf("%w: unknown key", store.ErrUnauthorized)
	}
	if !k.Usable(s.cfg.Clock.Now()) {
		return nil, fmt.Errorf("%w: the key %s is revoked or expired", store.ErrUnauthorized, id)
	}
	return &scope{keyID: k.ID, tenant: k.Tenant, role: k.Role, queues: k.Queues}, nil
}

// lookupKey reads a key through a short cache, so a busy worker's every
// request does not read the key table; nil when there is no such key.
func (s *Server) lookupKey(r *http.Request, id string) (*store.APIKey, error) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	c, ok := s.keyCache[id]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < s.cfg.KeyCacheFor {
		return c.key, nil
	}
	k, err := s.keys.GetKey(r.Context(), id)
	switch {
	case store.Code(err) == "not_found", store.Code(err) == "invalid":
		k = nil
	case err != nil:
		return nil, err
	}
	s.mu.Lock()
	if len(s.keyCache) > 10_000 { // keys are few; a flood of made-up IDs must not grow it
		clear(s.keyCache)
	}
	s.keyCache[id] = cachedKey{key: k, at: now}
	s.mu.Unlock()
	return k, nil
}

// allow takes one request from the key's rate limit.
func (s *Server) allow(sc *scope) error {
	if s.cfg.RateLimit <= 0 {
		return nil
	}
	s.mu.Lock()
	l, ok := s.limiters[sc.keyID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)
		s.limiters[sc.keyID] = l
	}
	s.mu.Unlock()
	if !l.AllowN(s.cfg.Clock.Now(), 1) {
		return store.ErrRateLimited
	}
	return nil
}

// scope is what one request's key may see and touch: one tenant (or all of
// them, for an operator's key) and, when the key names them, some queues.
//
// A tenant's queues and topics are stored under the tenant's prefix: the
// queue "mail" of tenant acme is "acme/mail" in the store, and the
// deliveries of acme's subscription "billing" to its topic "orders" are in
// "sub/acme/orders/billing". The API adds and removes the prefix, so a
// tenant's key never names, nor sees, another tenant's. An operator's key
// uses the stored names as they are.
type scope struct {
	keyID  string
	tenant string
	role   string
	queues []string // the only queues allowed, as the key names them; nil: any
}

func (sc *scope) all() bool { return sc.tenant == store.AllTenants }

// forbidden says the key may not do what was asked.
func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrForbidden, fmt.Sprintf(format, args...))
}

// queueIn returns the stored name of the queue q names for this key, after
// checking the key may use it. "" is the default queue.
func (sc *scope) queueIn(q string) (string, error) {
	q = cmp.Or(q, store.DefaultQueue)
	if sc.queues != nil && !slices.Contains(sc.queues, q) {
		return "", forbidden("the key may use only the queues %s", strings.Join(sc.queues, ", "))
	}
	if sc.all() {
		return q, nil
	}
	if rest, ok := strings.CutPrefix(q, store.SubscriptionQueuePrefix); ok {
		return store.SubscriptionQueuePrefix + sc.tenant + "/" + rest, nil
	}
	return sc.tenant + "/" + q, nil
}

// queueOut returns the name this key knows a stored queue by, and false
// when the queue is not the key's to see.
func (sc *scope) queueOut(stored string) (string, bool) {
	q := stored
	if !sc.all() {
		var ok bool
		if rest, sub := strings.CutPrefix(stored, store.SubscriptionQueuePrefix); sub {
			rest, ok = strings.CutPrefix(rest, sc.tenant+"/")
			q = store.SubscriptionQueuePrefix + rest
		} else {
			q, ok = strings.CutPrefix(stored, sc.tenant+"/")
		}
		if !ok {
			return "", false
		}
	}
	if sc.queues != nil && !slices.Contains(sc.queues, q) {
		return "", false
	}
	return q, true
}

// topicIn returns the stored name of a topic. Keys limited to queues do not
// use topics.
func (sc *scope) topicIn(topic string) (string, error) {
	if sc.queues != nil {
		return "", forbidden("a key limited to queues may not use topics")
	}
	if sc.all() {
		return topic, nil
	}
	return sc.tenant + "/" + topic, nil
}

// topicOut returns the name this key knows a stored topic by.
func (sc *scope) topicOut(stored string) (string, bool) {
	if sc.queues != nil {
		return "", false
	}
	if sc.all() {
		return stored, true
	}
	return strings.CutPrefix(stored, sc.tenant+"/")
}

// tenantIn returns the tenant of something this key creates: its own. A
// tenant's key may name its own tenant or none; an operator's key any.
func (sc *scope) tenantIn(t string) (string, error) {
	switch {
	case sc.all():
		return t, nil
	case t == "" || t == sc.tenant:
		return sc.tenant, nil
	}
	return "", forbidden("the key belongs to tenant %q, not %q", sc.tenant, t)
}

// sees reports whether a job is this key's to see: its tenant's, in a queue
// the key may use.
func (sc *scope) sees(j *store.Job) bool {
	if !sc.all() && j.Tenant != sc.tenant {
		return false
	}
	_, ok := sc.queueOut(j.Queue)
	return ok
}
