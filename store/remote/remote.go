// Package remote is a store.Store over spool serve's HTTP API: a Go worker,
// producer or tool in one process works the jobs of a store another process
// serves, as if it held the store itself. Importing the package, even
// blank, registers the URL schemes http and https with store.Open, so
//
//	spool work --store http://127.0.0.1:8080
//
// and store.Open(ctx, "https://spool.example.com", store.OpenOptions{})
// open a remote store.
//
// # URL and API key
//
// The URL is the server's base: scheme, host and port, and a path prefix
// when a proxy serves the API under one (https://example.com/spool). It
// takes no query parameters. The API key (spool keys create) is the first
// of:
//
//   - Options.APIKey;
//   - the URL's password: http://:spool_abc_secret@host:8080 (the user name
//     is ignored; store.RedactURL hides the password in messages and logs,
//     whereas a user name would show, so a URL with a user name and no
//     password is refused);
//   - the environment variable SPOOL_API_KEY.
//
// A server run with --insecure-no-auth needs none.
//
// # What it supports
//
// Every call of store.Store, answered as the served store answers it: each
// whole-call error decodes into an error matching the store's sentinels
// (errors.Is(err, store.ErrNotFound), errors.As into *store.ItemError,
// *store.ValidationError, ...), and per-item answers into one error per
// item. Payloads and results travel base64-encoded, byte for byte. The
// capabilities are Schedules (every call, FireDue included) and Notifier:
// Available is a long poll per watched queue (GET /v1/queues/{queue}/wake),
// Finished a long poll per waited job (GET /v1/jobs/{id}/wait), each run by
// one goroutine of the store's that Close stops. Enqueue in a caller's SQL
// transaction, events and API keys are not available remotely.
//
// Differences a caller may notice: Get and List return a running job's
// lock token only to a key that may work (a worker's or an admin's); a call that fails on the network (the server unreachable, the
// connection lost mid-call) returns an error outside the catalog, and, as
// with any network call, the server may or may not have applied it; and a
// request body is bounded by the server's --max-body (32 MiB by default),
// so an enqueue of many large payloads may have to be split. FireDue needs
// an operator's key: a tenant's key fires nothing and reports nothing due,
// since spool serve fires every tenant's schedules itself. Likewise a
// tenant's key reads GetByUniqueKey in its own tenant only (tenant "" or
// its name; another is ErrForbidden).
//
// A closed store refuses every call with store.ErrClosed, calls in flight
// included.
package remote

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// EnvAPIKey names the environment variable that holds the API key when
// neither Options.APIKey nor the URL gives one.
const EnvAPIKey = "SPOOL_API_KEY"

// Options configures a remote store. The zero value is ready to use.
type Options struct {
	// APIKey is the bearer key sent with every request (spool_<id>_<secret>).
	// Default: the URL's password, else $SPOOL_API_KEY, else none.
	APIKey string
	// HTTPClient sends the requests. Default: a client of the store's own,
	// which keeps connections alive (up to 128 idle ones to the server) and
	// whose idle connections Close closes. A client given here is left
	// open; its Timeout, if any, must leave room for long polls (30s).
	HTTPClient *http.Client
	// TLSConfig configures HTTPS for the default client (a private CA, a
	// client certificate). Default: the system's roots.
	TLSConfig *tls.Config
	// Timeout bounds each call; long polls get their wait on top. Default
	// one minute.
	Timeout time.Duration
	// Logger receives the store's operational messages (a long poll
	// failing and retrying). Default: discard.
	Logger *slog.Logger
}

// DefaultTimeout bounds each call unless Options.Timeout says otherwise.
const DefaultTimeout = time.Minute

// Store is a store.Store over spool serve's HTTP API. It is safe for
// concurrent use.
type Store struct {
	base    string // scheme://host[:port][/prefix], without a trailing slash
	shown   string // the URL for messages, without the key
	key     string
	hc      *http.Client
	own     bool // hc is the store's own: Close closes its idle connections
	timeout time.Duration
	log     *slog.Logger

	// done ends with Close: calls in flight and long polls stop.
	done   context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	polls  sync.WaitGroup // the long-poll goroutines

	mu     sync.Mutex // guards queues and jobs
	queues map[string]*queueWatch
	jobs   map[store.ID]*jobWatch

	// fireRefused is set once the server refused FireDue to this key (a
	// tenant's key): FireDue then fires nothing without asking.
	fireRefused atomic.Bool
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.ScheduleStore = (*Store)(nil)
	_ store.Notifier      = (*Store)(nil)
)

// Open returns a remote store for the spool serve at rawURL (see the
// package documentation for the URL and the API key). It does not connect:
// the first call does.
func Open(rawURL string, opts Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		reason := "is not a URL"
		var ue *url.Error
		if errors.As(err, &ue) {
			reason += ": " + ue.Err.Error() // without the URL, which may hold a key
		}
		return nil, &store.ValidationError{Field: "store URL", Reason: reason}
	}
	scheme := strings.ToLower(u.Scheme)
	// Messages show the URL without its password, query or fragment, any
	// of which may hold a key.
	bare := *u
	bare.RawQuery, bare.Fragment, bare.RawFragment = "", "", ""
	shown := bare.Redacted()
	switch {
	case scheme != "http" && scheme != "https":
		return nil, &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%s: a remote store's URL is http:// or https://", shown)}
	case u.Host == "":
		return nil, &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%s names no host", shown)}
	case u.RawQuery != "" || u.Fragment != "":
		return nil, &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%s: a remote store's URL takes no query or fragment (give the API key as the URL's password or in $%s)", shown, EnvAPIKey)}
	case u.Opaque != "":
		return nil, &store.ValidationError{Field: "store URL", Reason: fmt.Sprintf("%s: write it as %s://HOST:PORT", shown, scheme)}
	}
	key := opts.APIKey
	if u.User != nil {
		pw, has := u.User.Password()
		if !has {
			return nil, &store.ValidationError{Field: "store URL", Reason: "has a user name but no password: give the API key as the password (http://:KEY@host), which messages and logs hide"}
		}
		key = cmp.Or(key, pw)
	}
	key = cmp.Or(key, os.Getenv(EnvAPIKey))
	if opts.Timeout < 0 {
		return nil, &store.ValidationError{Field: "Timeout", Reason: "may not be negative"}
	}
	s := &Store{
		base:    scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
		key:     key,
		hc:      opts.HTTPClient,
		timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		log:     opts.Logger,
		queues:  map[string]*queueWatch{},
		jobs:    map[store.ID]*jobWatch{},
	}
	s.shown = s.base
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.hc == nil {
		s.hc, s.own = &http.Client{Transport: newTransport(opts.TLSConfig)}, true
	}
	s.done, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// newTransport returns the default client's transport: connections kept
// alive and plenty of them idle, for workers that claim and settle from
// many goroutines at once.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConfig,
	}
}

// URL returns the server's base URL, without the API key.
func (s *Store) URL() string { return s.shown }

// Capabilities implements store.Store: schedules, notifications and the
// workers online.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{Schedules: s, Notifier: s, ClaimWaiter: s, Workers: s}
}

// Close stops the store's long polls, ends the calls in flight (they fail
// with store.ErrClosed) and closes its idle connections. Later calls fail
// with store.ErrClosed. It is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	s.mu.Lock()
	for _, w := range s.queues {
		w.stop()
	}
	for _, w := range s.jobs {
		w.stop()
	}
	s.mu.Unlock()
	s.polls.Wait()
	if s.own {
		s.hc.CloseIdleConnections()
	}
	return nil
}

// start refuses a call on a closed store or with an ended context.
func (s *Store) start(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// request is one call to the API.
type request struct {
	method string
	path   string     // escaped, from the API's root: /v1/...
	query  url.Values // may be nil
	body   any        // sent as JSON when not nil
	// wait is a long poll's wait, added to the call's timeout.
	wait time.Duration
}

// do sends r and decodes a successful answer into out (when not nil). An
// error answer is decoded into the error it describes (see wire.Error.Err).
func (s *Store) do(ctx context.Context, r request, out any) error {
	resp, err := s.send(ctx, r)
	if err != nil {
		return err
	}
	defer drain(resp)
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(out); err != nil {
		return s.failed(ctx, r, fmt.Errorf("read the answer: %w", err))
	}
	return nil
}

// send sends r and returns the response of a successful call, whose body
// the caller reads and closes (drain); an error answer is returned as the
// error it describes.
func (s *Store) send(ctx context.Context, r request) (*http.Response, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout+r.wait)
	stop := context.AfterFunc(s.done, cancel) //nolint:contextcheck // Close ends the call: s.done is the store's, not a new root
	var body io.Reader
	if r.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.body); err != nil {
			stop()
			cancel()
			return nil, fmt.Errorf("spool: remote store: encode the request: %w", err)
		}
		body = bytes.NewReader(buf.Bytes())
	}
	target := s.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(callCtx, r.method, target, body)
	if err != nil {
		stop()
		cancel()
		return nil, fmt.Errorf("spool: remote store: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "spool-remote/1")
	req.Header.Set(headerBytes, "base64")
	req.Header.Set(headerLockTokens, "true")
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		stop()
		cancel()
		return nil, s.failed(ctx, r, err)
	}
	// The body is read under callCtx: release it only when the caller is
	// done with the body.
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: func() { stop(); cancel() }}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer drain(resp)
	return nil, s.answerError(ctx, r, resp)
}

// headerBytes asks for payloads and results base64-encoded, so they arrive
// exactly as stored (server.HeaderBytes; not imported, so the package does
// not pull in the server).
const headerBytes = "Spool-Bytes"

// headerLockTokens asks for running jobs' lock tokens in the jobs Get and
// List read, as a store gives them (server.HeaderLockTokens); keys that may
// not work get none.
const headerLockTokens = "Spool-Lock-Tokens"

// cancelBody releases a call's context once its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel func()
	once   sync.Once
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.cancel)
	return err
}

// drain reads what is left of a body, so its connection is reused, and
// closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

// failed returns the error of a call that got no usable answer: ErrClosed
// when the store was closed meanwhile, the caller's context's error when it
// ended, and otherwise err, saying which call failed.
func (s *Store) failed(ctx context.Context, r request, err error) error {
	switch {
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is said below, without the key
	}
	return fmt.Errorf("spool: remote store %s: %s %s: %w", s.shown, r.method, r.path, err)
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// answerError decodes an error answer into the error it describes. An
// answer that is not an error document (a proxy's page) becomes an error
// saying the status, matching the catalog's errors for 401, 403, 413 and
// 429.
func (s *Store) answerError(ctx context.Context, r request, resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return s.failed(ctx, r, fmt.Errorf("read the error answer (HTTP %d): %w", resp.StatusCode, err))
	}
	if e, err := wire.DecodeError(bytes.NewReader(b)); err == nil {
		return e.Err()
	}
	snippet := strings.TrimSpace(string(b))
	if len(snippet) > 200 {
		snippet = snippet[:200] + "…"
	}
	err = fmt.Errorf("spool: remote store %s: %s %s: HTTP %s: %q", s.shown, r.method, r.path, resp.Status, snippet)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		err = errors.Join(store.ErrUnauthorized, err)
	case http.StatusForbidden:
		err = errors.Join(store.ErrForbidden, err)
	case http.StatusRequestEntityTooLarge:
		err = errors.Join(store.ErrTooLarge, err)
	case http.StatusTooManyRequests:
		err = errors.Join(store.ErrRateLimited, err)
	}
	return err
}

// seg escapes one path segment: a queue name, a schedule ID. "/" is
// escaped too (the server takes %2F inside a segment), and so are the
// dots of "." and "..", which would otherwise be resolved away.
func seg(s string) string {
	e := url.PathEscape(s)
	if e == "." || e == ".." {
		e = strings.ReplaceAll(e, ".", "%2E")
	}
	return e
}

// badAnswer says the server answered something this client cannot use.
func (s *Store) badAnswer(r request, format string, args ...any) error {
	return fmt.Errorf("spool: remote store %s: %s %s: unusable answer: %s", s.shown, r.method, r.path, fmt.Sprintf(format, args...))
}
