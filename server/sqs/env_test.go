package sqs_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestMain gives the package a PostgreSQL database of its own (see
// internal/pgtest) and fails it if a test leaves a goroutine behind.
func TestMain(m *testing.M) { os.Exit(pgtest.MainLeakChecked(m)) }

// backend opens a fresh store with clock now.
type backend struct {
	name string
	open func(t *testing.T, now func() time.Time) store.Store
}

// backends are the stores every test runs against: SQLite, and PostgreSQL
// when there is one (else the PostgreSQL half skips, and fails under CI).
var backends = []backend{
	{"sqlite", func(t *testing.T, now func() time.Time) store.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T, now func() time.Time) store.Store {
		s, err := postgres.Open(t.Context(), pgtest.URL(t), postgres.Config{Now: now, Schema: pgtest.Schema(t), MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// each runs fn as a parallel subtest per backend.
func each(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// env is spool serve with its SQS facade over a fresh store, on a loopback
// port, with keys of tenant acme (every role), of tenant globex, and
// clients of the real AWS SDK for them. The store and the facade share a
// fake clock, which tests move.
type env struct {
	t     *testing.T
	st    store.Store
	clock *clockwork.FakeClock
	h     *sqs.Handler
	srv   *httptest.Server
	http  *http.Client
	creds map[string]aws.Credentials // "acme/admin", "globex/admin", ... → credentials
	keys  map[string]string          // the same names → tokens
}

// roles are every key role, least able first.
var roles = []string{store.RoleReader, store.RoleProducer, store.RoleWorker, store.RoleAdmin}

// newEnv starts an env; cfg's Store is filled in, and its Clock when it
// has none: a fake one, which the store shares.
func newEnv(t *testing.T, b backend, cfg sqs.Config) *env {
	t.Helper()
	var clock *clockwork.FakeClock
	if cfg.Clock == nil {
		clock = clockwork.NewFakeClockAt(time.Now().UTC().Truncate(time.Second))
		cfg.Clock = clock
	}
	st := b.open(t, cfg.Clock.Now)
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, clock: clock, creds: map[string]aws.Credentials{}, keys: map[string]string{}}
	for _, tenant := range []string{"acme", "globex"} {
		for _, role := range roles {
			e.addKey(tenant+"/"+role, apikey.Params{Tenant: tenant, Role: role, SQS: true})
		}
	}
	e.addKey("*/admin", apikey.Params{Tenant: store.AllTenants, Role: store.RoleAdmin, SQS: true})
	e.addKey("acme/nosqs", apikey.Params{Tenant: "acme", Role: store.RoleAdmin})
	e.addKey("acme/worker:jobs", apikey.Params{Tenant: "acme", Role: store.RoleWorker, Queues: []string{"jobs"}, SQS: true})

	cfg.Store = st
	h, err := sqs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, SQS: h, Clock: cfg.Clock})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv = httptest.NewServer(srv)
	tr := &http.Transport{}
	e.http = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.srv.Close()
	})
	return e
}

// addKey makes a key and remembers its token and AWS credentials.
func (e *env) addKey(name string, p apikey.Params) {
	e.t.Helper()
	token, k, err := apikey.New(p, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Capabilities().Keys.CreateKey(e.t.Context(), k); err != nil {
		e.t.Fatal(err)
	}
	id, secret, _ := apikey.Parse(token)
	e.keys[name] = token
	e.creds[name] = aws.Credentials{AccessKeyID: id, SecretAccessKey: apikey.SQSSecret(id, secret), Source: "test"}
}

// client is an AWS SDK client signing as key name. It does not retry, so
// every error reaches the test; it checks MD5s (the SDK's default).
func (e *env) client(name string) *awssqs.Client {
	e.t.Helper()
	c, ok := e.creds[name]
	if !ok {
		e.t.Fatalf("no key %q", name)
	}
	return e.clientWith(c)
}

func (e *env) clientWith(c aws.Credentials) *awssqs.Client {
	return awssqs.New(awssqs.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(e.srv.URL),
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil }),
		HTTPClient:   e.http,
		Retryer:      aws.NopRetryer{},
	})
}

// admin is acme's admin client.
func (e *env) admin() *awssqs.Client { return e.client("acme/admin") }

// createQueue makes a queue with acme's admin key and returns its URL.
func (e *env) createQueue(name string, attrs map[string]string) string {
	e.t.Helper()
	out, err := e.admin().CreateQueue(e.t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		e.t.Fatalf("CreateQueue(%s): %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// send sends a message with acme's admin key and returns its ID.
func (e *env) send(url, body string) string {
	e.t.Helper()
	out, err := e.admin().SendMessage(e.t.Context(), &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)})
	if err != nil {
		e.t.Fatalf("SendMessage: %v", err)
	}
	return aws.ToString(out.MessageId)
}

// receive receives up to max messages without waiting, with every system
// and message attribute.
func (e *env) receive(url string, max int32, opts ...func(*awssqs.ReceiveMessageInput)) []types.Message {
	e.t.Helper()
	in := &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: max,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"}}
	for _, o := range opts {
		o(in)
	}
	out, err := e.admin().ReceiveMessage(e.t.Context(), in)
	if err != nil {
		e.t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// receiveOne receives exactly one message.
func (e *env) receiveOne(url string, opts ...func(*awssqs.ReceiveMessageInput)) types.Message {
	e.t.Helper()
	ms := e.receive(url, 1, opts...)
	if len(ms) != 1 {
		e.t.Fatalf("ReceiveMessage returned %d messages, want 1", len(ms))
	}
	return ms[0]
}

// receiveNone fails unless a receive finds nothing.
func (e *env) receiveNone(url string) {
	e.t.Helper()
	if ms := e.receive(url, 10); len(ms) != 0 {
		e.t.Fatalf("ReceiveMessage returned %d messages (first %q), want none", len(ms), aws.ToString(ms[0].Body))
	}
}

// reap returns expired locks, as spool serve's upkeep does every second.
func (e *env) reap() {
	e.t.Helper()
	if _, err := e.st.ReapExpired(e.t.Context(), store.MaxReapLimit); err != nil {
		e.t.Fatal(err)
	}
}

// wantAPIError fails unless err is an SQS error with code (the SDK's
// ErrorCode: the query-compatible code when SQS sends one) and, when
// typed is not nil, of that modeled type.
func wantAPIError[T error](t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: error %v (%T), want an SQS error %s", what, err, err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("%s: error code %q (%v), want %q", what, ae.ErrorCode(), err, code)
	}
	var typed T
	if _, generic := any(typed).(*smithy.GenericAPIError); !generic && !errors.As(err, &typed) {
		t.Fatalf("%s: error %v is a %T, want a %T", what, err, err, typed)
	}
}

// generic is the type wantAPIError takes for errors SQS's model does not
// type (InvalidParameterValue, AccessDenied, ...).
type generic = *smithy.GenericAPIError
