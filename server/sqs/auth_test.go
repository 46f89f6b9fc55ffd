package sqs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
)

// raw sends one SQS request signed by the SDK's own SigV4 signer, as key
// name (unsigned when name is ""), and returns the answer's status,
// headers and JSON body.
func (e *env) raw(name, action string, body any, opts ...func(*http.Request)) (int, http.Header, map[string]any) {
	e.t.Helper()
	var payload []byte
	switch b := body.(type) {
	case string:
		payload = []byte(b)
	default:
		var err error
		if payload, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.srv.URL+"/", bytes.NewReader(payload))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
	if name != "" {
		sum := sha256.Sum256(payload)
		if err := v4.NewSigner().SignHTTP(e.t.Context(), e.creds[name], req, hex.EncodeToString(sum[:]), "sqs", "eu-west-1", time.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			e.t.Fatalf("%s answered %d with a body that is not JSON: %q", action, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, out
}

// wantRawError fails unless an answer is SQS's error shape: the status,
// __type com.amazonaws.sqs#<shape>, a message, and x-amzn-query-error
// <query>;Sender.
func wantRawError(t *testing.T, what string, status int, h http.Header, body map[string]any, wantStatus int, shape, query string) {
	t.Helper()
	if status != wantStatus || body["__type"] != "com.amazonaws.sqs#"+shape || body["message"] == "" || h.Get("X-Amzn-Query-Error") != query+";Sender" ||
		h.Get("Content-Type") != "application/x-amz-json-1.0" || h.Get("X-Amzn-Requestid") == "" {
		t.Fatalf("%s: %d %v %v, want %d %s (%s)", what, status, body, h, wantStatus, shape, query)
	}
}

func TestSigV4(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{KeyCacheFor: time.Second})
		ctx := t.Context()
		url := e.createQueue("q", nil)

		bad := func(what string, c aws.Credentials, code string) {
			t.Helper()
			_, err := e.clientWith(c).SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")})
			wantAPIError[generic](t, what, err, code)
		}
		good := e.creds["acme/admin"]
		wrong := good
		wrong.SecretAccessKey = strings.Repeat("x", 40)
		bad("a wrong secret", wrong, "SignatureDoesNotMatch")
		unknown := good
		unknown.AccessKeyID = "k0000000000"
		bad("an unknown access key", unknown, "InvalidClientTokenId")
		// A key made without --sqs has no SQS secret: its token's derived
		// secret does not work.
		bad("a key without SQS access", e.creds["acme/nosqs"], "InvalidClientTokenId")
		// Nor does the token's secret part itself.
		id, secret, _ := strings.Cut(strings.TrimPrefix(e.keys["acme/admin"], "spool_"), "_")
		bad("the /v1 token's secret", aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, "SignatureDoesNotMatch")
		e.receiveNone(url) // nothing was sent

		// Unsigned, or signed for another service: refused.
		status, h, body := e.raw("", "ListQueues", map[string]any{})
		wantRawError(t, "an unsigned request", status, h, body, 403, "MissingAuthenticationToken", "MissingAuthenticationToken")
		status, h, body = e.raw("acme/admin", "ListQueues", map[string]any{}, func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/sqs/", "/s3/", 1))
		})
		wantRawError(t, "a request scoped to s3", status, h, body, 403, "SignatureDoesNotMatch", "SignatureDoesNotMatch")
		// A body changed after signing.
		status, h, body = e.raw("acme/admin", "SendMessage", map[string]any{"QueueUrl": url, "MessageBody": "signed"}, func(r *http.Request) {
			tampered := []byte(`{"QueueUrl":"` + url + `","MessageBody":"forged"}`)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered))
		})
		wantRawError(t, "a tampered body", status, h, body, 403, "SignatureDoesNotMatch", "SignatureDoesNotMatch")
		e.receiveNone(url)

		// A revoked key stops working once its cached copy ages out.
		if err := e.st.Capabilities().Keys.RevokeKey(ctx, e.creds["acme/producer"].AccessKeyID); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Second)
		bad("a revoked key", e.creds["acme/producer"], "InvalidClientTokenId")

		// A clock 20 minutes off: the signature has expired.
		e.clock.Advance(20 * time.Minute)
		_, err := e.admin().ListQueues(ctx, &awssqs.ListQueuesInput{})
		wantAPIError[generic](t, "a request signed 20 minutes ago", err, "RequestExpired")
	})
}

func TestAuthOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backends[0], sqs.Config{Auth: sqs.AuthOff})
	// Any credentials, or none: an admin of the default tenant, whose
	// queues have no prefix and whose account is 000000000000.
	c := e.clientWith(aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"})
	out, err := c.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String("dev")})
	if err != nil || aws.ToString(out.QueueUrl) != e.srv.URL+"/000000000000/dev" {
		t.Fatalf("CreateQueue with auth off = %v, %v", out, err)
	}
	if status, _, body := e.raw("", "ListQueues", map[string]any{}); status != 200 || fmt.Sprint(body["QueueUrls"]) != "["+e.srv.URL+"/000000000000/dev]" {
		t.Fatalf("an unsigned ListQueues with auth off: %d %v", status, body)
	}
	if _, err := e.st.Capabilities().SQS.GetSQSQueue(t.Context(), "dev"); err != nil {
		t.Fatalf("the queue is not the default tenant's: %v", err)
	}
}

func TestRolesAndTenants(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		url := e.createQueue("jobs", nil)
		e.createQueue("other", nil)
		e.send(url, "x")

		// Every action, by every role: refused with AccessDenied exactly
		// when the role lacks what the action needs, as the /v1 API's
		// roles go.
		can := map[string][]string{
			"read":    {store.RoleReader, store.RoleProducer, store.RoleWorker, store.RoleAdmin},
			"produce": {store.RoleProducer, store.RoleAdmin},
			"work":    {store.RoleWorker, store.RoleAdmin},
			"admin":   {store.RoleAdmin},
		}
		actions := sqs.Actions()
		if len(actions) < 18 {
			t.Fatalf("only %d actions", len(actions))
		}
		for _, action := range slices.Sorted(maps.Keys(actions)) {
			perm := actions[action]
			for _, role := range roles {
				status, _, body := e.raw("acme/"+role, action, map[string]any{"QueueUrl": url + "-none"})
				denied := status == 403 && body["__type"] == "com.amazonaws.sqs#AccessDenied"
				if want := !slices.Contains(can[perm], role); denied != want {
					t.Errorf("%s by a %s key: %d %v; want denied %v", action, role, status, body["__type"], want)
				}
			}
		}

		// Tenants: globex sees none of acme's queues, by name or by URL,
		// and has its own of the same name.
		g := e.client("globex/admin")
		_, err := g.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
		wantAPIError[*types.QueueDoesNotExist](t, "globex's GetQueueUrl of acme's queue", err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = g.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		wantAPIError[*types.QueueDoesNotExist](t, "globex's receive with acme's queue URL", err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = g.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs"), QueueOwnerAWSAccountId: aws.String("acme")})
		wantAPIError[*types.QueueDoesNotExist](t, "globex's GetQueueUrl naming acme's account", err, "AWS.SimpleQueueService.NonExistentQueue")
		gurl, err := g.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("jobs")})
		if err != nil || aws.ToString(gurl.QueueUrl) != e.srv.URL+"/globex/jobs" {
			t.Fatalf("globex's own queue jobs: %v, %v", gurl, err)
		}
		if out, err := g.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: gurl.QueueUrl}); err != nil || len(out.Messages) != 0 {
			t.Fatalf("globex's jobs holds acme's messages: %v, %v", out, err)
		}
		// A receipt handle of acme's queue does nothing on globex's.
		m := e.receiveOne(url)
		_, err = g.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: gurl.QueueUrl, ReceiptHandle: m.ReceiptHandle})
		wantAPIError[*types.ReceiptHandleIsInvalid](t, "globex deleting with acme's handle", err, "ReceiptHandleIsInvalid")

		// An operator's key is the default tenant in SQS: acme's queues
		// are not its.
		op := e.client("*/admin")
		if out, err := op.ListQueues(ctx, &awssqs.ListQueuesInput{}); err != nil || len(out.QueueUrls) != 0 {
			t.Fatalf("the operator's ListQueues = %v, %v", out, err)
		}

		// A key limited to queues uses only those, and lists only those.
		lim := e.client("acme/worker:jobs")
		if out, err := lim.ListQueues(ctx, &awssqs.ListQueuesInput{}); err != nil || !slices.Equal(out.QueueUrls, []string{url}) {
			t.Fatalf("the limited key's ListQueues = %v, %v", out, err)
		}
		_, err = lim.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(e.srv.URL + "/acme/other")})
		wantAPIError[generic](t, "the limited key on another queue", err, "AccessDenied")
	})
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backends[0], sqs.Config{})
	url := e.createQueue("q", nil)
	for _, c := range []struct {
		what, action string
		body         any
		status       int
		shape, query string
	}{
		{"an unknown action", "Dance", map[string]any{}, 400, "UnknownOperationException", "InvalidAction"},
		{"a body that is not JSON", "SendMessage", "{nope", 400, "SerializationException", "MalformedQueryString"},
		{"a field of the wrong type", "SendMessage", map[string]any{"QueueUrl": url, "MessageBody": 7}, 400, "SerializationException", "MalformedQueryString"},
		{"no queue URL", "SendMessage", map[string]any{"MessageBody": "x"}, 400, "MissingParameter", "MissingParameter"},
		{"no body", "SendMessage", map[string]any{"QueueUrl": url}, 400, "MissingParameter", "MissingParameter"},
		{"no queue name", "CreateQueue", map[string]any{}, 400, "MissingParameter", "MissingParameter"},
		{"no receipt handle", "DeleteMessage", map[string]any{"QueueUrl": url}, 400, "MissingParameter", "MissingParameter"},
		{"no visibility", "ChangeMessageVisibility", map[string]any{"QueueUrl": url, "ReceiptHandle": "AQ"}, 404, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid"},
		{"a malformed queue URL", "SendMessage", map[string]any{"QueueUrl": "::::", "MessageBody": "x"}, 400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"},
		{"an unknown queue", "SendMessage", map[string]any{"QueueUrl": e.srv.URL + "/acme/none", "MessageBody": "x"}, 400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"},
		{"a permissions action", "AddPermission", map[string]any{"QueueUrl": url}, 400, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"},
		{"a message move task", "StartMessageMoveTask", map[string]any{}, 400, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"},
		{"list values", "SendMessage", map[string]any{"QueueUrl": url, "MessageBody": "x", "MessageAttributes": map[string]any{
			"l": map[string]any{"DataType": "String", "StringListValues": []string{"a"}}}}, 400, "InvalidParameterValue", "InvalidParameterValue"},
	} {
		status, h, body := e.raw("acme/admin", c.action, c.body)
		wantRawError(t, c.what, status, h, body, c.status, c.shape, c.query)
	}
	e.receiveNone(url)

	// Not a POST.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/", nil)
	req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("X-Amzn-Query-Error") != "InvalidHttpRequest;Sender" {
		t.Fatalf("a GET: %d %v", resp.StatusCode, resp.Header)
	}
	// Without the SQS header, the same listener is Spool's API.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/livez", nil)
	resp, err = e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /livez on the same listener: %d", resp.StatusCode)
	}
	// A receive answers empty, not an error, when nothing is there.
	status, _, body := e.raw("acme/admin", "ReceiveMessage", map[string]any{"QueueUrl": url})
	if status != 200 || len(body) != 0 {
		t.Fatalf("an empty receive: %d %v", status, body)
	}
}

func TestDrainEndsLongPolls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backends[0], sqs.Config{})
	url := e.createQueue("q", nil)
	done := make(chan error, 1)
	go func() {
		out, err := e.admin().ReceiveMessage(context.WithoutCancel(t.Context()), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		if err == nil && len(out.Messages) != 0 {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	if err := e.clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	e.h.Drain()
	if err := <-done; err != nil {
		t.Fatalf("a long poll at Drain: %v", err)
	}
}
