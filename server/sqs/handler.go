package sqs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Auth says how the facade authenticates requests.
type Auth string

// The values of Config.Auth.
const (
	// AuthSigV4 (the default) verifies each request's AWS Signature
	// Version 4 against the SQS secret of the API key its access key ID
	// names (spool keys create --sqs).
	AuthSigV4 Auth = "sigv4"
	// AuthOff accepts every request, signed or not, as an admin of the
	// default tenant: for local development only (spool serve then
	// listens on loopback alone).
	AuthOff Auth = "off"
)

// SQS's own limits, the defaults.
const (
	// DefaultMaxMessageBytes is SQS's historical limit on a message: its
	// body and attributes together (256 KiB).
	DefaultMaxMessageBytes = 256 << 10
	// DefaultMaxInflight is how many messages a queue may have received
	// and not yet deleted (SQS's limit for a standard queue).
	DefaultMaxInflight = 120_000
	// MaxBatchEntries is the most entries one batch request takes.
	MaxBatchEntries = 10
	// MaxWaitSeconds is the longest a receive may long-poll.
	MaxWaitSeconds = 20
)

// Config configures a Handler. Zero fields take the defaults given.
type Config struct {
	// Store is where the messages live. Required; it must have the SQS
	// capability, and the Keys capability unless Auth is AuthOff.
	Store store.Store
	// Auth is AuthSigV4 (default) or AuthOff.
	Auth Auth
	// Region names the region in queue ARNs. Default "us-east-1". Clients
	// may sign with any region.
	Region string
	// BaseURL is the scheme and host queue URLs start with, such as
	// "https://sqs.example.com". Default: the request's own.
	BaseURL string
	// MaxMessageBytes is the largest message (body and attributes) the
	// facade takes, and the default and highest MaximumMessageSize of a
	// queue. Default DefaultMaxMessageBytes; at most
	// store.MaxPayloadBytes.
	MaxMessageBytes int
	// MaxInflight is how many messages of one queue may be held by
	// receivers at once; past it, receives fail with OverLimit. It is
	// counted at most once a second per queue. Default DefaultMaxInflight.
	MaxInflight int
	// RequestTimeout bounds each request's work; receives get their wait
	// on top. Default 30s.
	RequestTimeout time.Duration
	// KeyCacheFor is how long a looked-up API key is trusted before it is
	// read again, so a revocation takes effect within it. Default 5s.
	KeyCacheFor time.Duration
	// QueueCacheFor is how long a queue's settings are trusted before they
	// are read again: changes made through another server reach this one
	// within it (this server's own changes at once). Default 1s.
	QueueCacheFor time.Duration
	// UpkeepInterval is how often the upkeep loop (Start) moves dead
	// letters to their dead-letter queues and finishes deleting deleted
	// queues. Default 5s.
	UpkeepInterval time.Duration
	// Logger receives one line per failed request (5xx) and per refused
	// signature. Default: discard.
	Logger *slog.Logger
	// Clock is the clock of signatures, long polls and caches. Default:
	// the real clock.
	Clock clockwork.Clock
}

// Handler serves SQS's AWS JSON 1.0 protocol over a store: requests whose
// X-Amz-Target header is AmazonSQS.<Action>. It is an http.Handler, and a
// background component (Start, Stop) whose loop moves dead letters and
// finishes queue deletions.
type Handler struct {
	cfg      Config
	st       store.Store
	sq       store.SQSStore
	keys     store.KeyStore // nil with AuthOff
	notifier store.Notifier // nil when the store has none
	maxBody  int64

	// draining is closed by Drain: long polls answer at once.
	draining  chan struct{}
	drainOnce sync.Once

	mu       sync.Mutex // guards keyCache, queues and inflight
	keyCache map[string]cachedKey
	queues   map[string]cachedQueue // by stored name
	inflight map[string]cachedCount // by stored name

	base startstop.Base
}

type cachedKey struct {
	key *store.APIKey // nil: no such key
	at  time.Time
}

type cachedQueue struct {
	q  *queue // nil: no such queue (or deleted)
	at time.Time
}

type cachedCount struct {
	n  int
	at time.Time
}

// New returns a Handler over cfg.Store.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, &store.ValidationError{Field: "Store", Reason: "is required"}
	}
	caps := cfg.Store.Capabilities()
	if caps.SQS == nil {
		return nil, errors.Join(store.ErrUnsupported, errors.New("spool: sqs: the store keeps no SQS queues"))
	}
	cfg.Auth = cmp.Or(cfg.Auth, AuthSigV4)
	switch cfg.Auth {
	case AuthSigV4:
		if caps.Keys == nil {
			return nil, errors.Join(store.ErrUnsupported, errors.New("spool: sqs: the store keeps no API keys to verify signatures with; use AuthOff for local development"))
		}
	case AuthOff:
	default:
		return nil, &store.ValidationError{Field: "Auth", Reason: strconv.Quote(string(cfg.Auth)) + " is not sigv4 or off"}
	}
	if cfg.MaxMessageBytes < 0 || cfg.MaxInflight < 0 || cfg.RequestTimeout < 0 || cfg.KeyCacheFor < 0 || cfg.QueueCacheFor < 0 || cfg.UpkeepInterval < 0 {
		return nil, &store.ValidationError{Field: "sqs config", Reason: "limits and intervals may not be negative"}
	}
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	if cfg.MaxMessageBytes < minMessageSize || cfg.MaxMessageBytes > store.MaxPayloadBytes {
		return nil, &store.ValidationError{Field: "MaxMessageBytes", Reason: strconv.Itoa(cfg.MaxMessageBytes) + " is outside " +
			strconv.Itoa(minMessageSize) + ".." + strconv.Itoa(store.MaxPayloadBytes)}
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	cfg.Region = cmp.Or(cfg.Region, "us-east-1")
	cfg.MaxInflight = cmp.Or(cfg.MaxInflight, DefaultMaxInflight)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, 30*time.Second)
	cfg.KeyCacheFor = cmp.Or(cfg.KeyCacheFor, 5*time.Second)
	cfg.QueueCacheFor = cmp.Or(cfg.QueueCacheFor, time.Second)
	cfg.UpkeepInterval = cmp.Or(cfg.UpkeepInterval, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	h := &Handler{cfg: cfg, st: cfg.Store, sq: caps.SQS, notifier: caps.Notifier, draining: make(chan struct{}),
		keyCache: map[string]cachedKey{}, queues: map[string]cachedQueue{}, inflight: map[string]cachedCount{},
		// A batch of the largest messages, JSON-escaped, with room for
		// attributes and the rest of the request.
		maxBody: int64(MaxBatchEntries)*4*int64(cfg.MaxMessageBytes) + 1<<20}
	if cfg.Auth == AuthSigV4 {
		h.keys = caps.Keys
	}
	return h, nil
}

// IsRequest reports whether r is an SQS request: its X-Amz-Target header
// names AmazonSQS. spool serve routes those to the Handler.
func IsRequest(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
}

const (
	targetPrefix = "AmazonSQS."
	contentType  = "application/x-amz-json-1.0"
)

// Drain ends long polls at once, answering them as if their wait ran out:
// call it before http.Server.Shutdown. Idempotent.
func (h *Handler) Drain() { h.drainOnce.Do(func() { close(h.draining) }) }

// perm is what an action needs of the caller's key, as the /v1 API's
// permissions (server/auth.go).
type perm uint8

const (
	permRead    perm = iota // every role
	permProduce             // producer, admin
	permWork                // worker, admin
	permAdmin               // admin
)

func (p perm) String() string { return [...]string{"read", "produce", "work", "admin"}[p] }

// roleCan reports whether role has permission p.
func roleCan(role string, p perm) bool {
	switch p {
	case permRead:
		return true
	case permProduce:
		return role == store.RoleProducer || role == store.RoleAdmin
	case permWork:
		return role == store.RoleWorker || role == store.RoleAdmin
	}
	return role == store.RoleAdmin
}

// action is one SQS action the facade answers.
type action struct {
	perm perm
	// poll marks a long poll, whose timeout is its wait plus the request
	// timeout.
	poll bool
	fn   func(c *call) (any, error)
}

// actions is every action, by name. Every request passes through
// ServeHTTP, which authorizes it by perm before fn runs; a test walks this
// table with every role.
var actions = map[string]action{
	"CreateQueue":                  {perm: permAdmin, fn: (*call).createQueue},
	"GetQueueUrl":                  {perm: permRead, fn: (*call).getQueueURL},
	"ListQueues":                   {perm: permRead, fn: (*call).listQueues},
	"DeleteQueue":                  {perm: permAdmin, fn: (*call).deleteQueue},
	"GetQueueAttributes":           {perm: permRead, fn: (*call).getQueueAttributes},
	"SetQueueAttributes":           {perm: permAdmin, fn: (*call).setQueueAttributes},
	"PurgeQueue":                   {perm: permAdmin, fn: (*call).purgeQueue},
	"ListDeadLetterSourceQueues":   {perm: permRead, fn: (*call).listDeadLetterSourceQueues},
	"TagQueue":                     {perm: permAdmin, fn: (*call).tagQueue},
	"UntagQueue":                   {perm: permAdmin, fn: (*call).untagQueue},
	"ListQueueTags":                {perm: permRead, fn: (*call).listQueueTags},
	"SendMessage":                  {perm: permProduce, fn: (*call).sendMessage},
	"SendMessageBatch":             {perm: permProduce, fn: (*call).sendMessageBatch},
	"ReceiveMessage":               {perm: permWork, poll: true, fn: (*call).receiveMessage},
	"DeleteMessage":                {perm: permWork, fn: (*call).deleteMessage},
	"DeleteMessageBatch":           {perm: permWork, fn: (*call).deleteMessageBatch},
	"ChangeMessageVisibility":      {perm: permWork, fn: (*call).changeMessageVisibility},
	"ChangeMessageVisibilityBatch": {perm: permWork, fn: (*call).changeMessageVisibilityBatch},
	"AddPermission":                {perm: permAdmin, fn: unsupported},
	"RemovePermission":             {perm: permAdmin, fn: unsupported},
	"StartMessageMoveTask":         {perm: permAdmin, fn: unsupported},
	"CancelMessageMoveTask":        {perm: permAdmin, fn: unsupported},
	"ListMessageMoveTasks":         {perm: permRead, fn: unsupported},
}

// Actions lists the actions the facade answers with the permission each
// needs ("read", "produce", "work" or "admin"), for documentation and
// tests.
func Actions() map[string]string {
	out := make(map[string]string, len(actions))
	for name, a := range actions {
		out[name] = a.perm.String()
	}
	return out
}

func unsupported(c *call) (any, error) {
	return nil, newError(errUnsupported, "%s is not supported by Spool's SQS facade (docs/sqs.md).", c.action)
}

// call is one request being answered.
type call struct {
	h      *Handler
	w      http.ResponseWriter
	r      *http.Request
	sc     *scope
	action string
	body   []byte
	// ctx is the request's context, bounded by the request timeout.
	ctx context.Context
}

// ServeHTTP answers one SQS request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-Requestid", store.NewID().String())
	name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok {
		writeError(w, newError(errUnknownOperation, "X-Amz-Target must name an action of AmazonSQS."))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, newError(errMethodNotAllowed, "SQS requests are POSTs, not %s.", r.Method))
		return
	}
	a, ok := actions[name]
	if !ok {
		writeError(w, newError(errUnknownOperation, "Unknown action %q.", name))
		return
	}
	timeout := h.cfg.RequestTimeout
	if a.poll {
		timeout += MaxWaitSeconds * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	// The key is looked up before the body is read, so that a request of
	// no known key does not make the server read a large body; the
	// signature, which covers the body, is checked after.
	sig, k, e := h.identify(ctx, r)
	if e != nil {
		writeError(w, e)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, newError(errTooLarge, "The request body is over %d bytes.", h.maxBody))
			return
		}
		writeError(w, newError(errSerialization, "Could not read the request body: %v", err))
		return
	}
	sc, e := h.verify(r, sig, k, body)
	if e != nil {
		writeError(w, e)
		return
	}
	if !roleCan(sc.role, a.perm) {
		writeError(w, newError(errAccessDenied, "A %s key may not call %s (it needs %s).", sc.role, name, a.perm))
		return
	}
	c := &call{h: h, w: w, r: r, sc: sc, action: name, body: body, ctx: ctx}
	out, err := a.fn(c)
	if err != nil {
		e := asError(err)
		if e.c.status >= 500 {
			if r.Context().Err() != nil {
				return // the client went away: no one reads the answer
			}
			h.cfg.Logger.Error("spool serve: sqs request failed", "action", name, "err", err)
		}
		writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", contentType)
	writeBody(w, out)
}

// writeBody writes v as the JSON body of the answer, with its length.
func writeBody(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		buf.WriteString(`{"__type":"com.amazonaws.sqs#InternalError","message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// decode reads the request body into v.
func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return newError(errSerialization, "The request body is not the JSON %s takes: %v", c.action, err)
	}
	return nil
}

// identify reads the request's signature and looks up the key it names,
// checking the time and the service; with AuthOff it reads nothing.
func (h *Handler) identify(ctx context.Context, r *http.Request) (*sigRequest, *store.APIKey, *Error) {
	if h.cfg.Auth == AuthOff {
		return nil, nil, nil
	}
	s, e := parseAuthorization(r)
	if e != nil {
		return nil, nil, e
	}
	if e := s.checkTime(h.cfg.Clock.Now()); e != nil {
		return nil, nil, e
	}
	if s.service != "sqs" {
		return nil, nil, newError(errSignature, "Credential should be scoped to correct service: 'sqs'.")
	}
	k, err := h.lookupKey(ctx, s.accessKey)
	if err != nil {
		return nil, nil, asError(err)
	}
	if k == nil || k.SQSSecret == "" {
		h.cfg.Logger.Warn("spool serve: sqs: refused an unknown access key", "key", s.accessKey, "remote", r.RemoteAddr)
		return nil, nil, newError(errInvalidClientID, "The security token included in the request is invalid: no API key %q with SQS access (spool keys create --sqs).", s.accessKey)
	}
	return s, k, nil
}

// verify checks the signature of the request and its body against the
// key's SQS secret, then that the key is usable, and returns the key's
// scope: an admin of the default tenant with AuthOff.
func (h *Handler) verify(r *http.Request, s *sigRequest, k *store.APIKey, body []byte) (*scope, *Error) {
	if h.cfg.Auth == AuthOff {
		return &scope{account: DefaultAccount, role: store.RoleAdmin}, nil
	}
	if !s.verify(r, body, k.SQSSecret) {
		h.cfg.Logger.Warn("spool serve: sqs: refused a signature", "key", s.accessKey, "remote", r.RemoteAddr)
		return nil, newError(errSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	if !k.Usable(h.cfg.Clock.Now()) {
		return nil, newError(errInvalidClientID, "The API key %s is revoked or expired.", k.ID)
	}
	return scopeOf(k), nil
}

// lookupKey reads a key through a short cache, so a busy worker's every
// request does not read the key table; nil when there is no such key.
func (h *Handler) lookupKey(ctx context.Context, id string) (*store.APIKey, error) {
	if valid := store.ValidName("key id", id, false) == nil; !valid {
		return nil, nil // no key has such an ID
	}
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	c, ok := h.keyCache[id]
	h.mu.Unlock()
	if ok && now.Sub(c.at) < h.cfg.KeyCacheFor {
		return c.key, nil
	}
	k, err := h.keys.GetKey(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		k = nil
	case err != nil:
		return nil, err
	}
	h.mu.Lock()
	if len(h.keyCache) > 10_000 { // keys are few; a flood of made-up IDs must not grow it
		clear(h.keyCache)
	}
	h.keyCache[id] = cachedKey{key: k, at: now}
	h.mu.Unlock()
	return k, nil
}
