package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spoolrun/spool/internal/apikey"
)

// keys create --sqs prints the token and the AWS credentials; keys
// sqs-credentials prints them again from the token; spool serve takes
// them from an unmodified AWS SDK on its one listener.
func TestServeSQS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	out := f.ok("keys", "create", "--tenant", "acme", "--role", "admin", "--sqs")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "AWS_ACCESS_KEY_ID=") || !strings.HasPrefix(lines[2], "AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("keys create --sqs printed %q", out)
	}
	token := lines[0]
	id, secret, err := apikey.Parse(token)
	if err != nil || lines[1] != "AWS_ACCESS_KEY_ID="+id || lines[2] != "AWS_SECRET_ACCESS_KEY="+apikey.SQSSecret(id, secret) {
		t.Fatalf("keys create --sqs printed %q (%v)", out, err)
	}
	if again := f.ok("keys", "sqs-credentials", token); again != lines[1]+"\n"+lines[2]+"\n" {
		t.Fatalf("keys sqs-credentials printed %q", again)
	}
	if list := f.ok("keys", "list"); !strings.Contains(list, "SQS") || !strings.Contains(list, "yes") {
		t.Fatalf("keys list does not say the key has SQS access:\n%s", list)
	}
	f.fails(exitUsage, "keys", "sqs-credentials", "spool_nope")

	s := f.startServe()
	c := awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.url), Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: apikey.SQSSecret(id, secret)}, nil
		})})
	ctx := t.Context()
	q, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("greetings")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: q.QueueUrl})
	if err != nil || len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != "hello" {
		t.Fatalf("ReceiveMessage through spool serve = %+v, %v", got, err)
	}
	// The /v1 API sees the message as a job of acme's queue.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/jobs?queue=greetings", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/jobs: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestServeSQSFlags(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("keys", "create", "--tenant", "acme", "--role", "admin")
	for _, args := range [][]string{
		{"--sqs-auth", "off", "--addr", "0.0.0.0:0"},
		{"--sqs-auth", "maybe"},
		{"--sqs-max-message-bytes", "100"},
		{"--sqs-max-message-bytes", "2000000"},
	} {
		r := f.fails(exitUsage, append([]string{"serve"}, args...)...)
		if !strings.Contains(r.stderr, "--sqs") {
			t.Errorf("serve %v: %q", args, r.stderr)
		}
	}
	// With the facade off, an SQS request is just an unknown route.
	s := f.startServe("--sqs=false")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an SQS request with --sqs=false: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
