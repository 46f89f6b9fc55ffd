package sqs_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
)

func TestQueueLifecycle(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()

		url := e.createQueue("orders", map[string]string{"VisibilityTimeout": "45", "DelaySeconds": "0"})
		if want := e.srv.URL + "/acme/orders"; url != want {
			t.Fatalf("queue URL %q, want %q", url, want)
		}
		// Made again with the same attributes, or with none: the same queue.
		if again := e.createQueue("orders", map[string]string{"VisibilityTimeout": "45"}); again != url {
			t.Fatalf("CreateQueue again = %q, want %q", again, url)
		}
		if again := e.createQueue("orders", nil); again != url {
			t.Fatalf("CreateQueue again without attributes = %q", again)
		}
		// With another value: QueueAlreadyExists.
		_, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("orders"), Attributes: map[string]string{"VisibilityTimeout": "46"}})
		wantAPIError[*types.QueueNameExists](t, "CreateQueue with another visibility", err, "QueueAlreadyExists")

		got, err := c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("orders")})
		if err != nil || aws.ToString(got.QueueUrl) != url {
			t.Fatalf("GetQueueUrl = %v, %v", got, err)
		}
		_, err = c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("nothing")})
		wantAPIError[*types.QueueDoesNotExist](t, "GetQueueUrl of an unknown queue", err, "AWS.SimpleQueueService.NonExistentQueue")

		// Attributes: the ones set, SQS's defaults, counts, times, ARN.
		e.send(url, "one")
		e.send(url, "two")
		out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		created := strconv.FormatInt(e.clock.Now().Unix(), 10)
		want := map[string]string{
			"QueueArn": "arn:aws:sqs:us-east-1:acme:orders", "ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesNotVisible": "0",
			"ApproximateNumberOfMessagesDelayed": "0", "CreatedTimestamp": created, "LastModifiedTimestamp": created,
			"VisibilityTimeout": "45", "MaximumMessageSize": "262144", "MessageRetentionPeriod": "345600", "DelaySeconds": "0",
			"ReceiveMessageWaitTimeSeconds": "0", "KmsDataKeyReusePeriodSeconds": "300", "SqsManagedSseEnabled": "false",
		}
		if !maps.Equal(out.Attributes, want) {
			t.Fatalf("GetQueueAttributes(All) =\n%v\nwant\n%v", out.Attributes, want)
		}
		// Some, by name; none asked, none answered.
		e.receiveOne(url)
		out, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		if err != nil || !maps.Equal(out.Attributes, map[string]string{"ApproximateNumberOfMessages": "1", "ApproximateNumberOfMessagesNotVisible": "1"}) {
			t.Fatalf("GetQueueAttributes(counts) = %v, %v", out, err)
		}
		if out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url)}); err != nil || len(out.Attributes) != 0 {
			t.Fatalf("GetQueueAttributes() = %v, %v; want no attributes", out, err)
		}
		_, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"Colour"}})
		wantAPIError[*types.InvalidAttributeName](t, "GetQueueAttributes of an unknown attribute", err, "InvalidAttributeName")

		// SetQueueAttributes changes them, moves LastModifiedTimestamp, and
		// refuses bad names and values, changing nothing.
		e.clock.Advance(3 * time.Second)
		if _, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
			Attributes: map[string]string{"DelaySeconds": "5", "Policy": `{"Version":"2012-10-17"}`}}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []struct {
			attrs map[string]string
			code  string
		}{
			{map[string]string{"DelaySeconds": "901"}, "InvalidAttributeValue"},
			{map[string]string{"VisibilityTimeout": "soon"}, "InvalidAttributeValue"},
			{map[string]string{"Policy": "{not json"}, "InvalidAttributeValue"},
			{map[string]string{"FifoQueue": "true"}, "InvalidAttributeName"},
			{map[string]string{"ContentBasedDeduplication": "true"}, "InvalidAttributeName"},
			{map[string]string{"QueueArn": "x"}, "InvalidAttributeName"},
			{map[string]string{"Colour": "blue"}, "InvalidAttributeName"},
			{map[string]string{"DelaySeconds": "1", "MaximumMessageSize": "10"}, "InvalidAttributeValue"},
		} {
			_, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: bad.attrs})
			wantAPIError[generic](t, fmt.Sprintf("SetQueueAttributes(%v)", bad.attrs), err, bad.code)
		}
		out, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []types.QueueAttributeName{"DelaySeconds", "Policy", "LastModifiedTimestamp", "MaximumMessageSize", "CreatedTimestamp"}})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"DelaySeconds": "5", "Policy": `{"Version":"2012-10-17"}`, "MaximumMessageSize": "262144",
			"LastModifiedTimestamp": strconv.FormatInt(e.clock.Now().Unix(), 10), "CreatedTimestamp": created}; !maps.Equal(out.Attributes, want) {
			t.Fatalf("after SetQueueAttributes: %v, want %v", out.Attributes, want)
		}

		// Tags.
		if _, err := c.TagQueue(ctx, &awssqs.TagQueueInput{QueueUrl: aws.String(url), Tags: map[string]string{"team": "billing", "env": "prod"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UntagQueue(ctx, &awssqs.UntagQueueInput{QueueUrl: aws.String(url), TagKeys: []string{"env"}}); err != nil {
			t.Fatal(err)
		}
		if tags, err := c.ListQueueTags(ctx, &awssqs.ListQueueTagsInput{QueueUrl: aws.String(url)}); err != nil || !maps.Equal(tags.Tags, map[string]string{"team": "billing"}) {
			t.Fatalf("ListQueueTags = %v, %v", tags, err)
		}

		// Purge empties it, in flight included; delete removes it.
		if _, err := c.PurgeQueue(ctx, &awssqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Fatal(err)
		}
		e.receiveNone(url)
		out, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		if err != nil || out.Attributes["ApproximateNumberOfMessages"] != "0" || out.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
			t.Fatalf("after PurgeQueue: %v, %v", out, err)
		}
		e.send(url, "left behind")
		if _, err := c.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Fatal(err)
		}
		_, err = c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")})
		wantAPIError[*types.QueueDoesNotExist](t, "SendMessage to a deleted queue", err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = c.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		wantAPIError[*types.QueueDoesNotExist](t, "DeleteQueue again", err, "AWS.SimpleQueueService.NonExistentQueue")
		// Made again, it is a new, empty queue with SQS's defaults.
		url = e.createQueue("orders", nil)
		e.receiveNone(url)
		out, err = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"VisibilityTimeout"}})
		if err != nil || out.Attributes["VisibilityTimeout"] != "30" {
			t.Fatalf("a queue made again: %v, %v", out, err)
		}
	})
}

func TestQueueNamesAndFIFOAttributes(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		for _, bad := range []struct {
			name  string
			attrs map[string]string
			code  string
		}{
			{"has space", nil, "InvalidParameterValue"},
			{strings.Repeat("q", 81), nil, "InvalidParameterValue"},
			{".fifo", nil, "InvalidParameterValue"},
			{"plain", map[string]string{"FifoQueue": "true"}, "InvalidParameterValue"},
			{"ordered.fifo", map[string]string{"FifoQueue": "false"}, "InvalidParameterValue"},
			{"plain", map[string]string{"ContentBasedDeduplication": "true"}, "InvalidAttributeName"},
			{"plain", map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue"},
			{"plain", map[string]string{"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"},
			{"plain", map[string]string{"MaximumMessageSize": "262145"}, "InvalidAttributeValue"},
			{"plain", map[string]string{"ApproximateNumberOfMessages": "1"}, "InvalidAttributeName"},
		} {
			_, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(bad.name), Attributes: bad.attrs})
			wantAPIError[generic](t, fmt.Sprintf("CreateQueue(%q, %v)", bad.name, bad.attrs), err, bad.code)
		}
		if l, err := c.ListQueues(ctx, &awssqs.ListQueuesInput{}); err != nil || len(l.QueueUrls) != 0 {
			t.Fatalf("refused queues were made: %v, %v", l, err)
		}

		// A FIFO queue: the suffix alone makes one; its attributes show.
		url := e.createQueue("ordered.fifo", map[string]string{"ContentBasedDeduplication": "true", "DeduplicationScope": "messageGroup"})
		out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perQueue"} {
			if out.Attributes[k] != v {
				t.Errorf("FIFO queue attribute %s = %q, want %q", k, out.Attributes[k], v)
			}
		}
		if again := e.createQueue("ordered.fifo", map[string]string{"FifoQueue": "true"}); again != url {
			t.Fatalf("CreateQueue of the FIFO queue again = %q", again)
		}
	})
}

func TestListQueues(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		var names []string
		for i := range 7 {
			names = append(names, fmt.Sprintf("q%d", i))
		}
		names = append(names, "other")
		for _, n := range names {
			e.createQueue(n, nil)
		}
		// Another tenant's queue of the same name is its own.
		if _, err := e.client("globex/admin").CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("q1")}); err != nil {
			t.Fatal(err)
		}
		urls := func(prefix string, max *int32) []string {
			t.Helper()
			var all []string
			p := awssqs.NewListQueuesPaginator(e.admin(), &awssqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), MaxResults: max})
			pages := 0
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, page.QueueUrls...)
				pages++
			}
			if max != nil && pages != (len(all)+int(*max)-1)/int(*max) && len(all) > 0 {
				t.Errorf("ListQueues(%q, %d): %d pages for %d queues", prefix, *max, pages, len(all))
			}
			return all
		}
		var want []string
		for _, n := range names[:7] {
			want = append(want, e.srv.URL+"/acme/"+n)
		}
		if got := urls("q", aws.Int32(3)); !slices.Equal(got, want) {
			t.Fatalf("ListQueues(q) paged by 3 = %v, want %v", got, want)
		}
		if got := urls("", nil); len(got) != 8 {
			t.Fatalf("ListQueues() = %v, want 8", got)
		}
		if got := urls("nothing", nil); len(got) != 0 {
			t.Fatalf("ListQueues(nothing) = %v", got)
		}
		if out, err := e.client("globex/reader").ListQueues(ctx, &awssqs.ListQueuesInput{}); err != nil ||
			!slices.Equal(out.QueueUrls, []string{e.srv.URL + "/globex/q1"}) {
			t.Fatalf("globex's ListQueues = %v, %v", out, err)
		}
		_, err := e.admin().ListQueues(ctx, &awssqs.ListQueuesInput{MaxResults: aws.Int32(1001)})
		wantAPIError[generic](t, "ListQueues with MaxResults 1001", err, "InvalidParameterValue")
		_, err = e.admin().ListQueues(ctx, &awssqs.ListQueuesInput{NextToken: aws.String("garbage!")})
		wantAPIError[generic](t, "ListQueues with a bad token", err, "InvalidParameterValue")
	})
}

func TestDeletionFinishedByUpkeep(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		url := e.createQueue("big", nil)
		e.send(url, "one")
		e.send(url, "two")
		// A deletion cut short (a crash after the queue was marked): the
		// name is taken, the queue gone from the API, its jobs still there.
		if _, err := e.st.Capabilities().SQS.UpdateSQSQueue(ctx, "acme/big", store.SQSQueueUpdate{Delete: true}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Second) // past the settings cache
		_, err := e.admin().CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("big")})
		wantAPIError[*types.QueueDeletedRecently](t, "CreateQueue while the deletion runs", err, "AWS.SimpleQueueService.QueueDeletedRecently")
		_, err = e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		wantAPIError[*types.QueueDoesNotExist](t, "a receive from the deleted queue", err, "AWS.SimpleQueueService.NonExistentQueue")
		// The upkeep pass deletes the jobs, then the settings.
		if err := e.h.Upkeep(ctx); err != nil {
			t.Fatal(err)
		}
		if d, err := e.st.Capabilities().SQS.CountQueueJobs(ctx, "acme/big"); err != nil || d != (store.QueueDepth{}) {
			t.Fatalf("the deleted queue's jobs: %+v, %v", d, err)
		}
		if _, err := e.st.Capabilities().SQS.GetSQSQueue(ctx, "acme/big"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the deleted queue's settings: %v", err)
		}
		// Made again: empty, with its tags.
		out, err := e.admin().CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("big"), Tags: map[string]string{"team": "ops"}})
		if err != nil {
			t.Fatal(err)
		}
		e.receiveNone(aws.ToString(out.QueueUrl))
		if tags, err := e.admin().ListQueueTags(ctx, &awssqs.ListQueueTagsInput{QueueUrl: out.QueueUrl}); err != nil || !maps.Equal(tags.Tags, map[string]string{"team": "ops"}) {
			t.Fatalf("ListQueueTags of a queue made with tags = %v, %v", tags, err)
		}
	})
}
