package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// evEnv is a server over a fresh SQLite store.
type evEnv struct {
	t   *testing.T
	url string
	st  store.Store
}

// newEvEnv serves a new store over httptest, with keys (insecure false)
// or without (insecure true).
func newEvEnv(t *testing.T, insecure bool) *evEnv {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{Store: st, Insecure: insecure})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Drain()
		hs.Close()
	})
	return &evEnv{t: t, url: hs.URL, st: st}
}

// key makes a key in the store and returns a client that sends it.
func (e *evEnv) key(tenant, role string, queues ...string) *evClient {
	token, key, err := apikey.New(apikey.Params{Tenant: tenant, Role: role, Queues: queues}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Capabilities().Keys.CreateKey(context.Background(), key); err != nil {
		e.t.Fatal(err)
	}
	return &evClient{t: e.t, url: e.url, token: token}
}

// anon is a client without a key (for an insecure server).
func (e *evEnv) anon() *evClient { return &evClient{t: e.t, url: e.url} }

type evClient struct {
	t     *testing.T
	url   string
	token string
}

// answer is one response: its status and body.
type answer struct {
	status int
	body   []byte
}

// into decodes the body into v.
func (a answer) into(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d %s: %v", a.status, a.body, err)
	}
}

// code is the error code of an error answer.
func (a answer) code(t *testing.T) string {
	t.Helper()
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	a.into(t, &b)
	return b.Error.Code
}

// do sends a request; body is JSON-encoded unless it is a string; hdr
// are header name, value pairs.
func (c *evClient) do(method, path string, body any, hdr ...string) answer {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{status: res.StatusCode, body: b}
}

// want checks an answer's status.
func (c *evClient) want(a answer, status int, what string) answer {
	c.t.Helper()
	if a.status != status {
		c.t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
	return a
}

type publishResult struct {
	Topic     string `json:"topic"`
	ID        string `json:"id"`
	Position  int64  `json:"position"`
	Version   int64  `json:"version"`
	Duplicate bool   `json:"duplicate"`
}

type claimed struct {
	Jobs []struct {
		ID        string          `json:"id"`
		Queue     string          `json:"queue"`
		Kind      string          `json:"kind"`
		Tenant    string          `json:"tenant"`
		LockToken string          `json:"lock_token"`
		Payload   json.RawMessage `json:"payload"`
	} `json:"jobs"`
}

type itemsAnswer struct {
	Results []struct {
		Index int  `json:"index"`
		OK    bool `json:"ok"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"results"`
}

func TestEventsPublishReadAndStreams(t *testing.T) {
	t.Parallel()
	c := newEvEnv(t, true).anon()

	// One event, with an Idempotency-Key for its ID: 201, then 200 duplicate.
	ev := map[string]any{"kind": "order.placed", "payload": map[string]any{"order": "o-1"}, "key": "o-1", "headers": map[string]string{"trace": "t1"}}
	var r1 publishResult
	c.want(c.do("POST", "/v1/topics/orders/events", ev, "Idempotency-Key", "placed-o-1"), 201, "publish").into(t, &r1)
	if r1.ID != "placed-o-1" || r1.Position != 1 || r1.Version != 1 || r1.Topic != "orders" || r1.Duplicate {
		t.Fatalf("publish answered %+v", r1)
	}
	var again publishResult
	c.want(c.do("POST", "/v1/topics/orders/events", ev, "Idempotency-Key", "placed-o-1"), 200, "publish again").into(t, &again)
	if !again.Duplicate || again.Position != 1 {
		t.Fatalf("publish again answered %+v", again)
	}
	if a := c.do("POST", "/v1/topics/orders/events", map[string]any{"id": "other", "kind": "k"}, "Idempotency-Key", "x"); a.status != 400 || a.code(t) != "invalid" {
		t.Fatalf("id and a different Idempotency-Key: %d %s", a.status, a.body)
	}

	// Many, all or nothing: a bad item is a 422 naming its index, and
	// nothing is written.
	a := c.want(c.do("POST", "/v1/topics/orders/events", map[string]any{"events": []any{
		map[string]any{"kind": "order.paid", "key": "o-1"},
		map[string]any{"kind": ""},
		map[string]any{"kind": "x", "payload": map[string]any{}, "payload_base64": "AA=="},
	}}), 422, "a batch with bad items")
	if !strings.Contains(string(a.body), `"index":2`) || !strings.Contains(string(a.body), `"field":"payload"`) {
		t.Fatalf("batch refusal does not name the item: %s", a.body)
	}
	a = c.want(c.do("POST", "/v1/topics/orders/events", map[string]any{"events": []any{
		map[string]any{"kind": "order.paid", "key": "o-1"},
		map[string]any{"kind": ""},
	}}), 422, "a batch with a bad item")
	if !strings.Contains(string(a.body), `"index":1`) || !strings.Contains(string(a.body), `"field":"kind"`) {
		t.Fatalf("batch refusal does not name the item: %s", a.body)
	}
	var batch struct{ Results []publishResult }
	c.want(c.do("POST", "/v1/topics/orders/events", map[string]any{"events": []any{
		map[string]any{"kind": "order.paid", "key": "o-1"},
		map[string]any{"kind": "order.placed", "key": "o-2", "payload_base64": "AAE="},
	}}), 201, "a batch").into(t, &batch)
	if len(batch.Results) != 2 || batch.Results[0].Position != 2 || batch.Results[0].Version != 2 || batch.Results[1].Position != 3 {
		t.Fatalf("batch answered %+v", batch)
	}
	if a := c.do("POST", "/v1/topics/orders/events", map[string]any{"events": []any{}}, "Idempotency-Key", "k"); a.status != 400 {
		t.Fatalf("Idempotency-Key on a batch: %d %s", a.status, a.body)
	}
	if a := c.do("POST", "/v1/topics/orders/events", `{"kind": "k", "extra": 1}`); a.status != 400 || a.code(t) != "invalid" {
		t.Fatalf("an unknown field: %d %s", a.status, a.body)
	}
	if a := c.do("POST", "/v1/topics/bad%20topic/events", map[string]any{"kind": "k"}); a.status != 400 {
		t.Fatalf("a bad topic: %d %s", a.status, a.body)
	}

	// Append with an expected version; a stale one is 409 conflict with the
	// stream's version.
	var app struct{ Results []publishResult }
	c.want(c.do("POST", "/v1/topics/orders/streams/o-1/events", map[string]any{"expected_version": 2, "events": []any{map[string]any{"kind": "order.shipped"}}}),
		201, "append").into(t, &app)
	if app.Results[0].Version != 3 || app.Results[0].Position != 4 {
		t.Fatalf("append answered %+v", app)
	}
	a = c.want(c.do("POST", "/v1/topics/orders/streams/o-1/events", map[string]any{"expected_version": 2, "events": []any{map[string]any{"kind": "order.shipped"}}}),
		409, "a stale append")
	var conflict struct {
		Error struct {
			Code    string `json:"code"`
			Current int64  `json:"current"`
			Want    int64  `json:"want"`
		} `json:"error"`
	}
	a.into(t, &conflict)
	if conflict.Error.Code != "conflict" || conflict.Error.Current != 3 || conflict.Error.Want != 2 {
		t.Fatalf("conflict answered %s", a.body)
	}
	c.want(c.do("POST", "/v1/topics/orders/streams/o-9/events", map[string]any{"events": []any{map[string]any{"kind": "k"}}}), 400, "append without expected_version")
	// A key with "/" travels escaped.
	c.want(c.do("POST", "/v1/topics/orders/streams/eu%2Fo-3/events", map[string]any{"expected_version": 0, "events": []any{map[string]any{"kind": "order.placed"}}}), 201, "append to eu/o-3")

	// Read: pages in position order, a stream in version order.
	var page struct {
		Events []struct {
			Topic    string          `json:"topic"`
			Position int64           `json:"position"`
			ID       string          `json:"id"`
			Kind     string          `json:"kind"`
			Key      string          `json:"key"`
			Version  int64           `json:"version"`
			Payload  json.RawMessage `json:"payload"`
			Payload6 string          `json:"payload_base64"`
		}
		Next int64
	}
	c.want(c.do("GET", "/v1/topics/orders/events?limit=2", nil), 200, "read").into(t, &page)
	if len(page.Events) != 2 || page.Next != 2 || page.Events[0].ID != "placed-o-1" || string(page.Events[0].Payload) != `{"order":"o-1"}` {
		t.Fatalf("first page: %+v", page)
	}
	c.want(c.do("GET", "/v1/topics/orders/events?after=2&limit=10", nil), 200, "read on").into(t, &page)
	if len(page.Events) != 3 || page.Next != 0 || page.Events[0].Payload6 != "AAE=" {
		t.Fatalf("second page: %+v", page)
	}
	c.want(c.do("GET", "/v1/topics/orders/events?key=o-1", nil), 200, "read a stream by query").into(t, &page)
	if len(page.Events) != 3 || page.Events[2].Kind != "order.shipped" {
		t.Fatalf("stream o-1: %+v", page)
	}
	c.want(c.do("GET", "/v1/topics/orders/streams/o-1/events?after=1", nil), 200, "read a stream").into(t, &page)
	if len(page.Events) != 2 || page.Events[0].Version != 2 {
		t.Fatalf("stream o-1 after version 1: %+v", page)
	}
	c.want(c.do("GET", "/v1/topics/orders/streams/eu%2Fo-3/events", nil), 200, "read stream eu/o-3").into(t, &page)
	if len(page.Events) != 1 || page.Events[0].Key != "eu/o-3" {
		t.Fatalf("stream eu/o-3: %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=x", "after=-1", "kind=order.paid"} {
		if a := c.do("GET", "/v1/topics/orders/events?"+q, nil); a.status/100 != 4 {
			t.Errorf("read ?%s: %d %s", q, a.status, a.body)
		}
	}

	var one struct {
		Kind    string            `json:"kind"`
		Headers map[string]string `json:"headers"`
	}
	c.want(c.do("GET", "/v1/topics/orders/events/placed-o-1", nil), 200, "get").into(t, &one)
	if one.Kind != "order.placed" || one.Headers["trace"] != "t1" {
		t.Fatalf("get: %v", one)
	}
	c.want(c.do("GET", "/v1/events/placed-o-1", nil), 200, "find")
	if a := c.do("GET", "/v1/topics/orders/events/nope", nil); a.status != 404 || a.code(t) != "not_found" {
		t.Fatalf("get a missing event: %d %s", a.status, a.body)
	}

	// Topics, and retention.
	var topics struct {
		Topics []struct {
			Name             string   `json:"name"`
			Head             int64    `json:"head"`
			RetentionSeconds *float64 `json:"retention_seconds"`
		}
	}
	c.want(c.do("GET", "/v1/topics", nil), 200, "topics").into(t, &topics)
	if len(topics.Topics) != 1 || topics.Topics[0].Name != "orders" || topics.Topics[0].Head != 5 || topics.Topics[0].RetentionSeconds != nil {
		t.Fatalf("topics: %+v", topics)
	}
	var topic struct {
		Name             string   `json:"name"`
		Head             int64    `json:"head"`
		RetentionSeconds *float64 `json:"retention_seconds"`
	}
	c.want(c.do("PUT", "/v1/topics/orders/retention", map[string]string{"retention": "168h"}), 200, "retention").into(t, &topic)
	if topic.Name != "orders" || topic.Head != 5 || topic.RetentionSeconds == nil || *topic.RetentionSeconds != 168*3600 {
		t.Fatalf("retention answered %+v", topic)
	}
	c.want(c.do("PUT", "/v1/topics/orders/retention", map[string]string{"retention": "forever"}), 200, "retention forever").into(t, &topic)
	if topic.RetentionSeconds != nil {
		t.Fatalf("forever answered %+v", topic)
	}
	c.want(c.do("PUT", "/v1/topics/orders/retention", map[string]string{"retention": "-1h"}), 400, "a negative retention")
}

type subscriptionView struct {
	Topic   string   `json:"topic"`
	Name    string   `json:"name"`
	Queue   string   `json:"queue"`
	Kinds   []string `json:"kinds"`
	Ordered bool     `json:"ordered"`
	Paused  bool     `json:"paused"`
	Cursor  int64    `json:"cursor"`
	Created *bool    `json:"created"`
	Lag     struct {
		Head    int64 `json:"head"`
		Pending int   `json:"pending"`
		Behind  int64 `json:"behind"`
	} `json:"lag"`
	InboxForgotten *int `json:"inbox_forgotten"`
}

func TestSubscriptionsOverHTTP(t *testing.T) {
	t.Parallel()
	c := newEvEnv(t, true).anon()
	for i := range 3 {
		c.want(c.do("POST", "/v1/topics/orders/events", map[string]any{"kind": "order.placed", "key": "o-" + string(rune('1'+i))}), 201, "publish")
	}

	def := map[string]any{"from": "start", "kinds": []string{"order.placed"}, "max_attempts": 3, "retry_base": "100ms"}
	var sub subscriptionView
	c.want(c.do("PUT", "/v1/topics/orders/subscriptions/billing", def), 201, "create").into(t, &sub)
	if sub.Topic != "orders" || sub.Name != "billing" || sub.Queue != "sub/orders/billing" || sub.Created == nil || !*sub.Created || sub.Lag.Head != 3 {
		t.Fatalf("create answered %+v", sub)
	}
	c.want(c.do("PUT", "/v1/topics/orders/subscriptions/billing", def), 200, "create again").into(t, &sub)
	if *sub.Created {
		t.Fatalf("create again answered %+v", sub)
	}
	def["ordered"] = true
	if a := c.do("PUT", "/v1/topics/orders/subscriptions/billing", def); a.status != 409 || a.code(t) != "conflict" {
		t.Fatalf("another definition: %d %s", a.status, a.body)
	}
	c.want(c.do("PUT", "/v1/topics/orders/subscriptions/audit", nil), 201, "create with every default")
	c.want(c.do("PUT", "/v1/topics/orders/subscriptions/bad", map[string]any{"from": "yesterday"}), 400, "a bad start")
	c.want(c.do("PUT", "/v1/topics/orders/subscriptions/bad", map[string]any{"on_dead_head": "block"}), 400, "block without ordered")

	var list struct{ Subscriptions []subscriptionView }
	c.want(c.do("GET", "/v1/topics/orders/subscriptions", nil), 200, "list").into(t, &list)
	if len(list.Subscriptions) != 2 || list.Subscriptions[0].Name != "audit" || list.Subscriptions[1].Name != "billing" {
		t.Fatalf("list: %+v", list)
	}
	c.want(c.do("GET", "/v1/subscriptions", nil), 200, "list all").into(t, &list)
	if len(list.Subscriptions) != 2 {
		t.Fatalf("list all: %+v", list)
	}
	c.want(c.do("GET", "/v1/topics/orders/subscriptions/billing", nil), 200, "get").into(t, &sub)
	if sub.Lag.Behind != 3 || sub.Cursor != 0 {
		t.Fatalf("get: %+v", sub)
	}

	// The deliveries of a subscription created from the start are routed
	// by the claims themselves: no Go worker routes them here.
	queue := "/v1/queues/" + url.PathEscape("sub/orders/billing")
	var cl claimed
	c.want(c.do("POST", queue+"/claim", map[string]any{"limit": 10}), 200, "claim").into(t, &cl)
	if len(cl.Jobs) != 3 || cl.Jobs[0].Queue != "sub/orders/billing" || cl.Jobs[0].Kind != "order.placed" {
		t.Fatalf("claim answered %+v", cl)
	}
	var env struct {
		Topic    string `json:"topic"`
		Position int64  `json:"position"`
		Key      string `json:"key"`
	}
	if err := json.Unmarshal(cl.Jobs[0].Payload, &env); err != nil || env.Topic != "orders" || env.Position != 1 || env.Key != "o-1" {
		t.Fatalf("delivery payload %s: %v", cl.Jobs[0].Payload, err)
	}
	var verdicts []map[string]any
	for _, j := range cl.Jobs {
		verdicts = append(verdicts, map[string]any{"id": j.ID, "lock_token": j.LockToken, "outcome": "complete"})
	}
	var items itemsAnswer
	c.want(c.do("POST", "/v1/settle", map[string]any{"verdicts": verdicts}), 200, "settle").into(t, &items)
	for _, it := range items.Results {
		if !it.OK {
			t.Fatalf("settle: %+v", items)
		}
	}
	c.want(c.do("GET", "/v1/topics/orders/subscriptions/billing", nil), 200, "get after").into(t, &sub)
	if sub.Lag.Behind != 0 || sub.Cursor != 3 {
		t.Fatalf("after the deliveries: %+v", sub)
	}

	// Pause, resume, rewind.
	var pr map[string]any
	c.want(c.do("POST", "/v1/topics/orders/subscriptions/billing/pause", nil), 200, "pause").into(t, &pr)
	if pr["paused"] != true || pr["name"] != "billing" {
		t.Fatalf("pause answered %v", pr)
	}
	c.want(c.do("GET", "/v1/topics/orders/subscriptions/billing", nil), 200, "get paused").into(t, &sub)
	if !sub.Paused {
		t.Fatalf("not paused: %+v", sub)
	}
	c.want(c.do("POST", "/v1/topics/orders/subscriptions/billing/resume", nil), 200, "resume").into(t, &pr)
	if pr["paused"] != false {
		t.Fatalf("resume answered %v", pr)
	}
	c.want(c.do("POST", "/v1/topics/orders/subscriptions/billing/rewind", map[string]any{"to": 2, "forget_inbox": true}), 200, "rewind").into(t, &sub)
	if sub.Cursor != 1 || sub.InboxForgotten == nil || *sub.InboxForgotten != 0 {
		t.Fatalf("rewind answered %+v", sub)
	}
	c.want(c.do("POST", "/v1/topics/orders/subscriptions/billing/rewind", map[string]any{}), 400, "rewind without to")
	c.want(c.do("POST", queue+"/claim", map[string]any{"limit": 10}), 200, "claim again").into(t, &cl)
	if len(cl.Jobs) != 2 {
		t.Fatalf("claim after the rewind: %+v", cl)
	}

	// Delete: the subscription and its deliveries go.
	c.want(c.do("DELETE", "/v1/topics/orders/subscriptions/billing", nil), 200, "delete").into(t, &pr)
	if pr["deleted"] != true {
		t.Fatalf("delete answered %v", pr)
	}
	if a := c.do("GET", "/v1/topics/orders/subscriptions/billing", nil); a.status != 404 || a.code(t) != "not_found" {
		t.Fatalf("get a deleted subscription: %d %s", a.status, a.body)
	}
	c.want(c.do("DELETE", "/v1/topics/orders/subscriptions/billing", nil), 404, "delete again")
	c.want(c.do("POST", "/v1/topics/orders/subscriptions/nope/pause", nil), 404, "pause a missing one")
}

func TestSubscriptionClaimLongPollsForEvents(t *testing.T) {
	t.Parallel()
	c := newEvEnv(t, true).anon()
	c.want(c.do("PUT", "/v1/topics/t%2Fx/subscriptions/s", nil), 201, "create")
	published := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		res, err := http.Post(c.url+"/v1/topics/t%2Fx/events", "application/json", strings.NewReader(`{"kind": "k"}`))
		if err == nil {
			res.Body.Close()
		}
		published <- err
	}()
	start := time.Now()
	var cl claimed
	c.want(c.do("POST", "/v1/queues/sub%2Ft%2Fx%2Fs/claim", map[string]any{"wait_seconds": 10}), 200, "claim").into(t, &cl)
	if len(cl.Jobs) != 1 || cl.Jobs[0].Queue != "sub/t/x/s" {
		t.Fatalf("claim answered %+v", cl)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the claim took %v", d)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	// A stale lock token is refused per item.
	var items itemsAnswer
	c.want(c.do("POST", "/v1/settle", map[string]any{"verdicts": []any{
		map[string]any{"id": cl.Jobs[0].ID, "lock_token": "1", "outcome": "complete"},
		map[string]any{"id": cl.Jobs[0].ID, "lock_token": cl.Jobs[0].LockToken, "outcome": "complete"},
	}}), 200, "settle").into(t, &items)
	if items.Results[0].Error == nil || items.Results[0].Error.Code != "lock_lost" || !items.Results[1].OK {
		t.Fatalf("settle answered %+v", items)
	}
}

func TestEventsTenantKeys(t *testing.T) {
	t.Parallel()
	env := newEvEnv(t, false)
	acme := env.key("acme", store.RoleAdmin)
	acmeProd := env.key("acme", store.RoleProducer)
	acmeWork := env.key("acme", store.RoleWorker)
	acmeRead := env.key("acme", store.RoleReader)
	acmeMail := env.key("acme", store.RoleAdmin, "mail")
	globex := env.key("globex", store.RoleAdmin)
	globexWork := env.key("globex", store.RoleWorker)
	op := env.key(store.AllTenants, store.RoleAdmin)

	// Roles.
	acmeRead.want(acmeRead.do("POST", "/v1/topics/orders/events", map[string]any{"kind": "k"}), 403, "a reader publishes")
	acmeProd.want(acmeProd.do("PUT", "/v1/topics/orders/subscriptions/billing", nil), 403, "a producer subscribes")
	acmeWork.want(acmeWork.do("PUT", "/v1/topics/orders/retention", map[string]string{"retention": "1h"}), 403, "a worker sets retention")
	env.anon().want(env.anon().do("GET", "/v1/topics", nil), 401, "no key")
	acmeMail.want(acmeMail.do("GET", "/v1/topics/orders/events", nil), 403, "a key limited to queues reads a topic")

	// Both tenants have a topic "orders" and a subscription "billing".
	var sub subscriptionView
	acme.want(acme.do("PUT", "/v1/topics/orders/subscriptions/billing", nil), 201, "acme subscribes").into(t, &sub)
	if sub.Topic != "orders" || sub.Queue != "sub/orders/billing" {
		t.Fatalf("acme's subscription: %+v", sub)
	}
	globex.want(globex.do("PUT", "/v1/topics/orders/subscriptions/billing", map[string]any{"ordered": true}), 201, "globex subscribes")

	var r, r2 publishResult
	acmeProd.want(acmeProd.do("POST", "/v1/topics/orders/events", map[string]any{"kind": "order.placed", "key": "o-1", "payload": map[string]any{"n": 1}}), 201, "acme publishes").into(t, &r)
	if r.Topic != "orders" || r.Position != 1 {
		t.Fatalf("acme's publish: %+v", r)
	}
	acmeProd.want(acmeProd.do("POST", "/v1/topics/orders/streams/o-1/events", map[string]any{"expected_version": 1, "events": []any{map[string]any{"kind": "order.paid"}}}), 201, "acme appends")
	// An event may not name another tenant.
	a := acmeProd.want(acmeProd.do("POST", "/v1/topics/orders/events", map[string]any{"kind": "k", "tenant": "globex"}), 422, "acme publishes as globex")
	if !strings.Contains(string(a.body), "forbidden") {
		t.Fatalf("publish as another tenant: %s", a.body)
	}

	// globex sees none of it: its "orders" is another topic.
	globex.want(globex.do("POST", "/v1/topics/orders/events", map[string]any{"kind": "order.placed"}), 201, "globex publishes").into(t, &r2)
	if r2.Position != 1 {
		t.Fatalf("globex's publish: %+v", r2)
	}
	var page struct {
		Events []map[string]any
	}
	globex.want(globex.do("GET", "/v1/topics/orders/events", nil), 200, "globex reads").into(t, &page)
	if len(page.Events) != 1 || page.Events[0]["id"] != r2.ID || page.Events[0]["tenant"] != "globex" {
		t.Fatalf("globex reads: %+v", page)
	}
	globex.want(globex.do("GET", "/v1/events/"+r.ID, nil), 404, "globex finds acme's event")
	globex.want(globex.do("GET", "/v1/topics/orders/events/"+r.ID, nil), 404, "globex gets acme's event")
	var topics struct{ Topics []struct{ Name string } }
	globex.want(globex.do("GET", "/v1/topics", nil), 200, "globex's topics").into(t, &topics)
	if len(topics.Topics) != 1 || topics.Topics[0].Name != "orders" {
		t.Fatalf("globex's topics: %+v", topics)
	}
	var gsub subscriptionView
	globex.want(globex.do("GET", "/v1/topics/orders/subscriptions/billing", nil), 200, "globex's subscription").into(t, &gsub)
	if gsub.Lag.Head != 1 || !gsub.Ordered {
		t.Fatalf("globex's subscription: %+v", gsub)
	}

	// acme reads its own in its own names.
	acmeRead.want(acmeRead.do("GET", "/v1/topics/orders/events", nil), 200, "acme reads").into(t, &page)
	if len(page.Events) != 2 || page.Events[0]["topic"] != "orders" || page.Events[0]["tenant"] != "acme" {
		t.Fatalf("acme's events: %+v", page)
	}
	var found map[string]any
	acmeRead.want(acmeRead.do("GET", "/v1/events/"+r.ID, nil), 200, "acme finds").into(t, &found)
	if found["topic"] != "orders" {
		t.Fatalf("acme finds %v", found)
	}
	var list struct{ Subscriptions []subscriptionView }
	acmeRead.want(acmeRead.do("GET", "/v1/subscriptions", nil), 200, "acme's subscriptions").into(t, &list)
	if len(list.Subscriptions) != 1 || list.Subscriptions[0].Topic != "orders" || list.Subscriptions[0].Queue != "sub/orders/billing" || list.Subscriptions[0].Ordered {
		t.Fatalf("acme's subscriptions: %+v", list)
	}

	// The operator sees both, under the stored names.
	op.want(op.do("GET", "/v1/topics", nil), 200, "the operator's topics").into(t, &topics)
	if len(topics.Topics) != 2 || topics.Topics[0].Name != "acme/orders" || topics.Topics[1].Name != "globex/orders" {
		t.Fatalf("the operator's topics: %+v", topics)
	}

	// acme's worker claims its deliveries as "sub/orders/billing"; globex's
	// gets none of them from the same name.
	q := "/v1/queues/" + url.PathEscape("sub/orders/billing") + "/claim"
	var cl claimed
	globexWork.want(globexWork.do("POST", q, map[string]any{"limit": 10}), 200, "globex claims").into(t, &cl)
	if len(cl.Jobs) != 1 || cl.Jobs[0].Tenant != "globex" || !strings.Contains(string(cl.Jobs[0].Payload), r2.ID) {
		t.Fatalf("globex claimed more than its own delivery: %+v", cl)
	}
	acmeWork.want(acmeWork.do("POST", q, map[string]any{"limit": 10}), 200, "acme claims").into(t, &cl)
	if len(cl.Jobs) != 2 || cl.Jobs[0].Queue != "sub/orders/billing" || cl.Jobs[0].Tenant != "acme" {
		t.Fatalf("acme's claim: %+v", cl)
	}
	var env0 struct {
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(cl.Jobs[0].Payload, &env0); err != nil || env0.Topic != "orders" || string(env0.Payload) != `{"n":1}` {
		t.Fatalf("acme's delivery names its topic by its stored name: %s (%v)", cl.Jobs[0].Payload, err)
	}
	var job map[string]any
	acmeRead.want(acmeRead.do("GET", "/v1/jobs/"+cl.Jobs[0].ID, nil), 200, "acme's delivery job").into(t, &job)
	if job["queue"] != "sub/orders/billing" || !strings.Contains(string(mustJSON(t, job["payload"])), `"topic":"orders"`) {
		t.Fatalf("acme's delivery job: %v", job)
	}
	globex.want(globex.do("GET", "/v1/jobs/"+cl.Jobs[0].ID, nil), 404, "globex reads acme's delivery")
	var items itemsAnswer
	globexWork.want(globexWork.do("POST", "/v1/settle", map[string]any{"verdicts": []any{
		map[string]any{"id": cl.Jobs[0].ID, "lock_token": cl.Jobs[0].LockToken, "outcome": "complete"},
	}}), 200, "globex settles acme's").into(t, &items)
	if items.Results[0].Error == nil || items.Results[0].Error.Code != "not_found" {
		t.Fatalf("globex settled acme's delivery: %+v", items)
	}
	acmeWork.want(acmeWork.do("POST", "/v1/settle", map[string]any{"verdicts": []any{
		map[string]any{"id": cl.Jobs[0].ID, "lock_token": cl.Jobs[0].LockToken, "outcome": "complete"},
		map[string]any{"id": cl.Jobs[1].ID, "lock_token": cl.Jobs[1].LockToken, "outcome": "complete"},
	}}), 200, "acme settles").into(t, &items)
	if !items.Results[0].OK || !items.Results[1].OK {
		t.Fatalf("acme's settle: %+v", items)
	}

	// Errors name things as the key does.
	a = acme.want(acme.do("GET", "/v1/topics/orders/subscriptions/nope", nil), 404, "a missing subscription")
	if strings.Contains(string(a.body), "acme/") {
		t.Fatalf("the error names the stored topic: %s", a.body)
	}
	a = acmeProd.want(acmeProd.do("POST", "/v1/topics/orders/streams/o-1/events", map[string]any{"expected_version": 0, "events": []any{map[string]any{"kind": "k"}}}), 409, "a stale append")
	if strings.Contains(string(a.body), "acme/") || !strings.Contains(string(a.body), "orders/o-1") {
		t.Fatalf("the conflict names the stored topic: %s", a.body)
	}

	// globex cannot touch acme's subscription, which it cannot name.
	globex.want(globex.do("DELETE", "/v1/topics/orders/subscriptions/billing", nil), 200, "globex deletes its own")
	acme.want(acme.do("GET", "/v1/topics/orders/subscriptions/billing", nil), 200, "acme's is still there")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventRoutesNeedEvents(t *testing.T) {
	t.Parallel()
	// A store without events answers 501 unsupported.
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(server.Config{Store: noEvents{st}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/topics", nil))
	if rec.Code != 501 || !strings.Contains(rec.Body.String(), "unsupported") {
		t.Fatalf("GET /v1/topics without events: %d %s", rec.Code, rec.Body)
	}
}

type noEvents struct{ store.Store }

func (n noEvents) Capabilities() store.Capabilities {
	c := n.Store.Capabilities()
	c.Events, c.EventsSQLTx = nil, nil
	return c
}

// A subscription's name may hold "/" too: its queue "sub/t/a/b" is found
// to be topic "t", name "a/b" (not topic "t/a", name "b"), and its events
// are routed by the claim.
func TestSubscriptionNameWithSlash(t *testing.T) {
	t.Parallel()
	c := newEvEnv(t, true).anon()
	c.want(c.do("POST", "/v1/topics/t/events", map[string]any{"events": []any{map[string]any{"kind": "k"}, map[string]any{"kind": "k"}}}), 201, "publish")
	var sub subscriptionView
	c.want(c.do("PUT", "/v1/topics/t/subscriptions/a%2Fb", map[string]any{"from": 1}), 201, "create").into(t, &sub)
	if sub.Name != "a/b" || sub.Queue != "sub/t/a/b" {
		t.Fatalf("create answered %+v", sub)
	}
	var cl claimed
	c.want(c.do("POST", "/v1/queues/sub%2Ft%2Fa%2Fb/claim", map[string]any{"limit": 10}), 200, "claim").into(t, &cl)
	if len(cl.Jobs) != 2 {
		t.Fatalf("claim answered %+v", cl)
	}
	c.want(c.do("POST", "/v1/queues/sub%2Ft%2Fnone/claim", map[string]any{"limit": 10}), 200, "claim a queue of no subscription").into(t, &cl)
	if len(cl.Jobs) != 0 {
		t.Fatalf("claim answered %+v", cl)
	}
	// Unescaped, the slashes are path segments: no such route.
	if a := c.do("POST", "/v1/queues/sub/t/a/b/claim", map[string]any{}); a.status != 404 || a.code(t) != "not_found" {
		t.Fatalf("unescaped: %d %s", a.status, a.body)
	}
}
