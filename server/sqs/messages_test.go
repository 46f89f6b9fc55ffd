package sqs_test

import (
	"bytes"
	"crypto/md5" //nolint:gosec // SQS's checksums
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
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

// attrMD5 computes MD5OfMessageAttributes as the AWS documentation
// describes it, independently of the facade.
func attrMD5(attrs map[string]types.MessageAttributeValue) string {
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	lp := func(p []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(p))) //nolint:gosec // small
		b.Write(p)
	}
	for _, n := range names {
		a := attrs[n]
		lp([]byte(n))
		lp([]byte(aws.ToString(a.DataType)))
		if a.BinaryValue != nil {
			b.WriteByte(2)
			lp(a.BinaryValue)
		} else {
			b.WriteByte(1)
			lp([]byte(aws.ToString(a.StringValue)))
		}
	}
	sum := md5.Sum(b.Bytes()) //nolint:gosec // SQS's checksum
	return hex.EncodeToString(sum[:])
}

func TestAttributeMD5Vectors(t *testing.T) {
	t.Parallel()
	// Digests from the AWS documentation's example and from other SQS
	// implementations' tests, so attrMD5 is checked against the world.
	for _, c := range []struct {
		attrs map[string]types.MessageAttributeValue
		want  string
	}{
		{map[string]types.MessageAttributeValue{"SellerName": {DataType: aws.String("String"), StringValue: aws.String("Example Store")}},
			"cd28f3b68aeee4b2eac9c66f2f694b58"},
		{map[string]types.MessageAttributeValue{"timestamp": {DataType: aws.String("Number"), StringValue: aws.String("1493147359900")}},
			"235c5c510d26fb653d073faed50ae77c"},
		{map[string]types.MessageAttributeValue{"ordinal": {DataType: aws.String("Number"), StringValue: aws.String("1")},
			"category": {DataType: aws.String("String"), StringValue: aws.String("test")}}, "d21ae90c49061e927f57df5f5d72be1f"},
	} {
		if got := attrMD5(c.attrs); got != c.want {
			t.Errorf("attrMD5(%v) = %s, want %s", c.attrs, got, c.want)
		}
	}
}

func TestSendReceiveDelete(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		url := e.createQueue("mail", nil)
		attrs := map[string]types.MessageAttributeValue{
			"kind":      {DataType: aws.String("String"), StringValue: aws.String("welcome ✉")},
			"attempt":   {DataType: aws.String("Number"), StringValue: aws.String("-1.5e3")},
			"blob":      {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
			"trace.id":  {DataType: aws.String("String.uuid"), StringValue: aws.String("0b4e")},
			"trace.tag": {DataType: aws.String("Number.int"), StringValue: aws.String("7")},
		}
		body := `{"to": "ann@example.com", "note": "héllo \u2603 \t"}`
		sent, err := e.admin().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageAttributes: attrs,
			MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{"AWSTraceHeader": {DataType: aws.String("String"),
				StringValue: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793")}}})
		if err != nil { // the SDK checks MD5OfMessageBody itself
			t.Fatal(err)
		}
		if got, want := aws.ToString(sent.MD5OfMessageAttributes), attrMD5(attrs); got != want {
			t.Fatalf("MD5OfMessageAttributes = %s, want %s", got, want)
		}
		if sent.MD5OfMessageSystemAttributes == nil || sent.SequenceNumber != nil {
			t.Fatalf("SendMessage answer %+v: want a system attributes MD5, no sequence number", sent)
		}
		sentAt := e.clock.Now()
		e.clock.Advance(1500 * time.Millisecond)

		m := e.receiveOne(url)
		if aws.ToString(m.Body) != body || aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) {
			t.Fatalf("received %q (%s), sent %q (%s)", aws.ToString(m.Body), aws.ToString(m.MessageId), body, aws.ToString(sent.MessageId))
		}
		if aws.ToString(m.MD5OfMessageAttributes) != attrMD5(attrs) || len(m.MessageAttributes) != len(attrs) {
			t.Fatalf("received attributes %v (MD5 %s), want %v", m.MessageAttributes, aws.ToString(m.MD5OfMessageAttributes), attrs)
		}
		for n, a := range attrs {
			g := m.MessageAttributes[n]
			if aws.ToString(g.DataType) != aws.ToString(a.DataType) || aws.ToString(g.StringValue) != aws.ToString(a.StringValue) || !bytes.Equal(g.BinaryValue, a.BinaryValue) {
				t.Fatalf("attribute %s: received %+v, sent %+v", n, g, a)
			}
		}
		wantSys := map[string]string{"SenderId": "acme", "SentTimestamp": strconv.FormatInt(sentAt.UnixMilli(), 10), "ApproximateReceiveCount": "1",
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(e.clock.Now().UnixMilli(), 10), "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793"}
		for k, v := range wantSys {
			if m.Attributes[k] != v {
				t.Errorf("system attribute %s = %q, want %q", k, m.Attributes[k], v)
			}
		}
		if _, ok := m.Attributes["SequenceNumber"]; ok {
			t.Error("a standard queue's message has a SequenceNumber")
		}
		if _, err := e.admin().DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		// Deleting again with the same handle is fine, as in SQS.
		if _, err := e.admin().DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatalf("DeleteMessage again: %v", err)
		}
		e.receiveNone(url)

		// Only the attributes asked for come back, with their own MD5; no
		// attributes, no MD5 and no map (SQS omits them).
		e.send(url, "plain")
		out, err := e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("ReceiveMessage = %v, %v", out, err)
		}
		if m := out.Messages[0]; m.MD5OfMessageAttributes != nil || m.MessageAttributes != nil || m.Attributes != nil {
			t.Fatalf("a plain message came with attributes: %+v", m)
		}
		e.admin().DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: out.Messages[0].ReceiptHandle}) //nolint:errcheck // checked by the receive below
		if _, err := e.admin().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageAttributes: attrs}); err != nil {
			t.Fatal(err)
		}
		m = e.receiveOne(url, func(in *awssqs.ReceiveMessageInput) {
			in.MessageAttributeNames = []string{"trace.*", "blob"}
			in.MessageSystemAttributeNames = nil
			in.AttributeNames = []types.QueueAttributeName{"ApproximateReceiveCount"} //nolint:staticcheck // the deprecated name, which old SDKs send
		})
		picked := map[string]types.MessageAttributeValue{"trace.id": attrs["trace.id"], "trace.tag": attrs["trace.tag"], "blob": attrs["blob"]}
		if len(m.MessageAttributes) != 3 || aws.ToString(m.MD5OfMessageAttributes) != attrMD5(picked) {
			t.Fatalf("attributes asked by name and prefix: %v (MD5 %s), want %v", m.MessageAttributes, aws.ToString(m.MD5OfMessageAttributes), picked)
		}
		if len(m.Attributes) != 1 || m.Attributes["ApproximateReceiveCount"] != "1" {
			t.Fatalf("system attributes asked by the deprecated AttributeNames: %v", m.Attributes)
		}
	})
}

func TestSendRefusals(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{MaxMessageBytes: 2048})
		ctx := t.Context()
		url := e.createQueue("q", nil)
		str := func(s string) types.MessageAttributeValue {
			return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
		}
		tooMany := map[string]types.MessageAttributeValue{}
		for i := range 11 {
			tooMany[fmt.Sprintf("a%d", i)] = str("v")
		}
		for _, c := range []struct {
			what string
			in   awssqs.SendMessageInput
			code string
		}{
			{"a body over the queue's limit", awssqs.SendMessageInput{MessageBody: aws.String(strings.Repeat("x", 2049))}, "InvalidParameterValue"},
			{"a body and attributes over it", awssqs.SendMessageInput{MessageBody: aws.String(strings.Repeat("x", 2040)),
				MessageAttributes: map[string]types.MessageAttributeValue{"k": str("123456789")}}, "InvalidParameterValue"},
			{"an empty body", awssqs.SendMessageInput{MessageBody: aws.String("")}, "InvalidParameterValue"},
			{"a control character", awssqs.SendMessageInput{MessageBody: aws.String("a\x01b")}, "InvalidMessageContents"},
			{"a delay over 900s", awssqs.SendMessageInput{MessageBody: aws.String("x"), DelaySeconds: 901}, "InvalidParameterValue"},
			{"eleven attributes", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: tooMany}, "InvalidParameterValue"},
			{"an attribute named AWS.", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"AWS.x": str("v")}}, "InvalidParameterValue"},
			{"a bad number", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
				"n": {DataType: aws.String("Number"), StringValue: aws.String("12a")}}}, "InvalidParameterValue"},
			{"an unknown type", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
				"n": {DataType: aws.String("Date"), StringValue: aws.String("today")}}}, "InvalidParameterValue"},
			{"a string attribute without a value", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{
				"n": {DataType: aws.String("String"), BinaryValue: []byte("b")}}}, "InvalidParameterValue"},
			{"a dedup ID on a standard queue", awssqs.SendMessageInput{MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")}, "InvalidParameterValue"},
		} {
			in := c.in
			in.QueueUrl = aws.String(url)
			_, err := e.admin().SendMessage(ctx, &in)
			wantAPIError[generic](t, "SendMessage with "+c.what, err, c.code)
		}
		e.receiveNone(url)
		// The limit itself is fine.
		if _, err := e.admin().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 2048))}); err != nil {
			t.Fatalf("a message of exactly the limit: %v", err)
		}
	})
}

func TestLargeAttributesRoundTrip(t *testing.T) {
	t.Parallel()
	// Attributes too large for a job's metadata travel in its payload,
	// before the body; the body and the MD5s stay exact.
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		url := e.createQueue("big", nil)
		blob := bytes.Repeat([]byte{0xfe, 0x01}, 4000)
		attrs := map[string]types.MessageAttributeValue{"blob": {DataType: aws.String("Binary"), BinaryValue: blob},
			"s": {DataType: aws.String("String"), StringValue: aws.String(strings.Repeat("ü", 500))}}
		sent, err := e.admin().SendMessage(t.Context(), &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("body"), MessageAttributes: attrs})
		if err != nil {
			t.Fatal(err)
		}
		m := e.receiveOne(url)
		if aws.ToString(m.Body) != "body" || !bytes.Equal(m.MessageAttributes["blob"].BinaryValue, blob) ||
			aws.ToString(m.MD5OfMessageAttributes) != attrMD5(attrs) || aws.ToString(sent.MD5OfMessageAttributes) != attrMD5(attrs) {
			t.Fatalf("large attributes: body %q, MD5 %s / %s, want %s", aws.ToString(m.Body), aws.ToString(m.MD5OfMessageAttributes),
				aws.ToString(sent.MD5OfMessageAttributes), attrMD5(attrs))
		}
	})
}

func TestBatches(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		url := e.createQueue("batch", nil)
		entry := func(id, body string) types.SendMessageBatchRequestEntry {
			return types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(body)}
		}
		// One bad entry fails alone; the others are sent.
		entries := []types.SendMessageBatchRequestEntry{entry("a", "one"), entry("b", "two\x00"), entry("c", "three"), entry("d", "four")}
		entries[3].DelaySeconds = 5
		out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Successful) != 3 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "b" ||
			aws.ToString(out.Failed[0].Code) != "InvalidMessageContents" || !out.Failed[0].SenderFault {
			t.Fatalf("SendMessageBatch = %d ok, failed %+v", len(out.Successful), out.Failed)
		}
		// Whole-batch refusals.
		for _, bad := range []struct {
			what    string
			entries []types.SendMessageBatchRequestEntry
			code    string
		}{
			{"no entries", []types.SendMessageBatchRequestEntry{}, "AWS.SimpleQueueService.EmptyBatchRequest"},
			{"eleven entries", func() []types.SendMessageBatchRequestEntry {
				var es []types.SendMessageBatchRequestEntry
				for i := range 11 {
					es = append(es, entry(fmt.Sprint("e", i), "x"))
				}
				return es
			}(), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
			{"repeated IDs", []types.SendMessageBatchRequestEntry{entry("x", "1"), entry("x", "2")}, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
			{"a bad ID", []types.SendMessageBatchRequestEntry{entry("no spaces", "1")}, "AWS.SimpleQueueService.InvalidBatchEntryId"},
			{"too many bytes", []types.SendMessageBatchRequestEntry{entry("a", strings.Repeat("x", 200_000)), entry("b", strings.Repeat("y", 100_000))},
				"AWS.SimpleQueueService.BatchRequestTooLong"},
		} {
			_, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: bad.entries})
			switch bad.code {
			case "AWS.SimpleQueueService.EmptyBatchRequest":
				wantAPIError[*types.EmptyBatchRequest](t, bad.what, err, bad.code)
			case "AWS.SimpleQueueService.TooManyEntriesInBatchRequest":
				wantAPIError[*types.TooManyEntriesInBatchRequest](t, bad.what, err, bad.code)
			case "AWS.SimpleQueueService.BatchEntryIdsNotDistinct":
				wantAPIError[*types.BatchEntryIdsNotDistinct](t, bad.what, err, bad.code)
			case "AWS.SimpleQueueService.InvalidBatchEntryId":
				wantAPIError[*types.InvalidBatchEntryId](t, bad.what, err, bad.code)
			default:
				wantAPIError[*types.BatchRequestTooLong](t, bad.what, err, bad.code)
			}
		}

		// Receive the two visible ones; the delayed one waits.
		ms := e.receive(url, 10)
		if len(ms) != 2 {
			t.Fatalf("received %d, want 2 (one is delayed)", len(ms))
		}
		e.clock.Advance(5 * time.Second)
		delayed := e.receiveOne(url)
		if aws.ToString(delayed.Body) != "four" {
			t.Fatalf("the delayed message is %q", aws.ToString(delayed.Body))
		}
		// Delete in a batch with a garbage handle and a stale one.
		stale := ms[0]
		if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: stale.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
		again := e.receiveOne(url) // received again: stale's handle is stale
		del, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{
			{Id: aws.String("stale"), ReceiptHandle: stale.ReceiptHandle},
			{Id: aws.String("garbage"), ReceiptHandle: aws.String("not-a-handle")},
			{Id: aws.String("ok1"), ReceiptHandle: ms[1].ReceiptHandle},
			{Id: aws.String("ok2"), ReceiptHandle: delayed.ReceiptHandle},
		}})
		if err != nil {
			t.Fatal(err)
		}
		failed := map[string]string{}
		for _, f := range del.Failed {
			failed[aws.ToString(f.Id)] = aws.ToString(f.Code)
		}
		if len(del.Successful) != 2 || failed["stale"] != "ReceiptHandleIsInvalid" || failed["garbage"] != "ReceiptHandleIsInvalid" {
			t.Fatalf("DeleteMessageBatch: %d ok, failed %v", len(del.Successful), failed)
		}
		// Visibility in a batch: the current handle works, the stale one
		// does not.
		vis, err := c.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url),
			Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
				{Id: aws.String("cur"), ReceiptHandle: again.ReceiptHandle, VisibilityTimeout: 60},
				{Id: aws.String("old"), ReceiptHandle: stale.ReceiptHandle, VisibilityTimeout: 60},
			}})
		if err != nil || len(vis.Successful) != 1 || aws.ToString(vis.Successful[0].Id) != "cur" || len(vis.Failed) != 1 ||
			aws.ToString(vis.Failed[0].Code) != "ReceiptHandleIsInvalid" {
			t.Fatalf("ChangeMessageVisibilityBatch = %+v, %v", vis, err)
		}
		if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: again.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		e.receiveNone(url)
	})
}

func TestVisibilityAndStaleReceipts(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		url := e.createQueue("vis", map[string]string{"VisibilityTimeout": "10"})
		id := e.send(url, "work")

		first := e.receiveOne(url)
		e.receiveNone(url) // in flight
		// Extended: still in flight after the first timeout.
		if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 30}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(11 * time.Second)
		e.reap()
		e.receiveNone(url)
		// Its timeout passes: it comes back, received twice.
		e.clock.Advance(20 * time.Second)
		e.reap()
		second := e.receiveOne(url)
		if aws.ToString(second.MessageId) != id || second.Attributes["ApproximateReceiveCount"] != "2" {
			t.Fatalf("received again: %s, count %s", aws.ToString(second.MessageId), second.Attributes["ApproximateReceiveCount"])
		}
		// The first handle is stale: it can neither delete nor extend the
		// second delivery.
		_, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: first.ReceiptHandle})
		wantAPIError[*types.ReceiptHandleIsInvalid](t, "DeleteMessage with a stale handle", err, "ReceiptHandleIsInvalid")
		_, err = c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0})
		wantAPIError[*types.ReceiptHandleIsInvalid](t, "ChangeMessageVisibility with a stale handle", err, "ReceiptHandleIsInvalid")
		e.receiveNone(url) // the second delivery is untouched

		// A handle whose visibility ran out, not received since, still
		// deletes (as in SQS); changing its visibility says it is not in
		// flight.
		e.clock.Advance(11 * time.Second)
		e.reap()
		_, err = c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: second.ReceiptHandle, VisibilityTimeout: 5})
		wantAPIError[*types.MessageNotInflight](t, "ChangeMessageVisibility after the timeout", err, "AWS.SimpleQueueService.MessageNotInflight")
		if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: second.ReceiptHandle}); err != nil {
			t.Fatalf("DeleteMessage after the timeout, not received since: %v", err)
		}
		e.receiveNone(url)

		// A receive's own VisibilityTimeout wins over the queue's.
		e.send(url, "short")
		m := e.receiveOne(url, func(in *awssqs.ReceiveMessageInput) { in.VisibilityTimeout = 2 })
		e.clock.Advance(3 * time.Second)
		e.reap()
		if again := e.receiveOne(url); aws.ToString(again.MessageId) != aws.ToString(m.MessageId) {
			t.Fatal("another message came back")
		}

		// A handle is bound to its queue.
		other := e.createQueue("other", nil)
		_, err = c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(other), ReceiptHandle: m.ReceiptHandle})
		wantAPIError[*types.ReceiptHandleIsInvalid](t, "DeleteMessage on another queue", err, "ReceiptHandleIsInvalid")
		for _, v := range []int32{-1, 43201} {
			_, err = c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: v})
			wantAPIError[generic](t, fmt.Sprint("ChangeMessageVisibility to ", v), err, "InvalidParameterValue")
		}
	})
}

func TestLongPolling(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		url := e.createQueue("poll", map[string]string{"ReceiveMessageWaitTimeSeconds": "20"})

		// A receive waits (the queue's default wait) and takes a message sent
		// while it waits.
		type result struct {
			out *awssqs.ReceiveMessageOutput
			err error
		}
		got := make(chan result, 1)
		go func() {
			out, err := e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
			got <- result{out, err}
		}()
		if err := e.clock.BlockUntilContext(ctx, 1); err != nil { // the receive is waiting
			t.Fatal(err)
		}
		id := e.send(url, "hello")
		r := <-got
		if r.err != nil || len(r.out.Messages) != 1 || aws.ToString(r.out.Messages[0].MessageId) != id {
			t.Fatalf("a waiting receive: %+v, %v", r.out, r.err)
		}

		// A wait that runs out answers no messages.
		go func() {
			out, err := e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1})
			got <- result{out, err}
		}()
		if err := e.clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		r = <-got
		if r.err != nil || len(r.out.Messages) != 0 {
			t.Fatalf("a receive whose wait ran out: %+v, %v", r.out, r.err)
		}
		_, err := e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 21})
		wantAPIError[generic](t, "ReceiveMessage waiting 21s", err, "InvalidParameterValue")
		_, err = e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 11})
		wantAPIError[generic](t, "ReceiveMessage of 11", err, "InvalidParameterValue")
	})
}

func TestFIFO(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		url := e.createQueue("orders.fifo", nil)
		send := func(group, dedup, body string) *awssqs.SendMessageOutput {
			t.Helper()
			out, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
				MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(dedup)})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		var seqs []string
		for i := range 3 {
			for _, g := range []string{"A", "B"} {
				out := send(g, fmt.Sprint(g, i), fmt.Sprint(g, i))
				seqs = append(seqs, aws.ToString(out.SequenceNumber))
			}
		}
		if !slices.IsSorted(seqs) || len(seqs[0]) != 20 || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Fatalf("sequence numbers %v: want 20 digits, increasing", seqs)
		}
		// A duplicate within 5 minutes: accepted, the first message's ID,
		// delivered once.
		dup := send("A", "A0", "A0 again")
		ms := e.receive(url, 10)
		if len(ms) != 2 {
			t.Fatalf("a FIFO receive of 10 returned %d messages, want one per group (2)", len(ms))
		}
		byGroup := map[string]types.Message{}
		for _, m := range ms {
			byGroup[m.Attributes["MessageGroupId"]] = m
		}
		if aws.ToString(byGroup["A"].Body) != "A0" || aws.ToString(byGroup["B"].Body) != "B0" || aws.ToString(dup.MessageId) != aws.ToString(byGroup["A"].MessageId) {
			t.Fatalf("FIFO heads: %v, %v; duplicate's ID %s", aws.ToString(byGroup["A"].Body), aws.ToString(byGroup["B"].Body), aws.ToString(dup.MessageId))
		}
		if a := byGroup["A"]; a.Attributes["MessageDeduplicationId"] != "A0" || a.Attributes["SequenceNumber"] != seqs[0] {
			t.Fatalf("FIFO system attributes %v", a.Attributes)
		}
		// While A0 is in flight, group A is blocked; B moves on when B0 is
		// deleted.
		if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: byGroup["B"].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		if m := e.receive(url, 10); len(m) != 1 || aws.ToString(m[0].Body) != "B1" {
			t.Fatalf("with A0 in flight and B0 deleted: %d messages", len(m))
		}
		// A0 made visible again comes first again, then A1, A2 in order.
		if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: byGroup["A"].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"A0", "A1", "A2"} {
			var m types.Message
			for _, x := range e.receive(url, 10) {
				if x.Attributes["MessageGroupId"] == "A" {
					m = x
				}
			}
			if aws.ToString(m.Body) != want {
				t.Fatalf("group A gave %q, want %q", aws.ToString(m.Body), want)
			}
			if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		// The deduplication window holds after delete, and ends after 5
		// minutes.
		if out := send("A", "A0", "A0 late"); aws.ToString(out.MessageId) != aws.ToString(byGroup["A"].MessageId) {
			t.Fatal("a duplicate after delete, within 5 minutes, was sent again")
		}
		e.clock.Advance(5*time.Minute + time.Second)
		if out := send("A", "A0", "A0 later"); aws.ToString(out.MessageId) == aws.ToString(byGroup["A"].MessageId) {
			t.Fatal("a deduplication ID held past 5 minutes")
		}

		// FIFO rules.
		_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")})
		wantAPIError[generic](t, "a FIFO message without a group", err, "MissingParameter")
		_, err = c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageGroupId: aws.String("g")})
		wantAPIError[generic](t, "a FIFO message without a deduplication ID", err, "InvalidParameterValue")
		_, err = c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageGroupId: aws.String("g"),
			MessageDeduplicationId: aws.String("d"), DelaySeconds: 3})
		wantAPIError[generic](t, "a FIFO message with its own delay", err, "InvalidParameterValue")
		_, err = c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageGroupId: aws.String("g g"),
			MessageDeduplicationId: aws.String("d")})
		wantAPIError[generic](t, "a group with a space", err, "InvalidParameterValue")

		// Content-based deduplication: the body's SHA-256.
		cb := e.createQueue("content.fifo", map[string]string{"ContentBasedDeduplication": "true"})
		var first string
		for i := range 2 {
			out, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(cb), MessageBody: aws.String("same"), MessageGroupId: aws.String(fmt.Sprint("g", i))})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = aws.ToString(out.MessageId)
			} else if aws.ToString(out.MessageId) != first {
				t.Fatal("content-based deduplication let the same body in twice")
			}
		}
		if ms := e.receive(cb, 10); len(ms) != 1 {
			t.Fatalf("content-based deduplication: %d messages", len(ms))
		}
	})
}

func TestRedrive(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		dlq := e.createQueue("jobs-dlq", nil)
		src := e.createQueue("jobs", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:acme:jobs-dlq","maxReceiveCount":"2"}`})
		out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(src), AttributeNames: []types.QueueAttributeName{"RedrivePolicy"}})
		if want := `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:jobs-dlq","maxReceiveCount":2}`; err != nil || out.Attributes["RedrivePolicy"] != want {
			t.Fatalf("RedrivePolicy reads back %v, %v; want %s", out, err, want)
		}
		id := e.send(src, "poison")
		// Received twice (made visible again once, and once by its timeout
		// running out): the third receive moves it instead.
		m := e.receiveOne(src)
		if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(src), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		m = e.receiveOne(src, func(in *awssqs.ReceiveMessageInput) { in.VisibilityTimeout = 1 })
		if m.Attributes["ApproximateReceiveCount"] != "2" {
			t.Fatalf("second receive: count %s", m.Attributes["ApproximateReceiveCount"])
		}
		e.clock.Advance(2 * time.Second)
		e.reap()
		keep := e.send(src, "fine")
		ms := e.receive(src, 10)
		if len(ms) != 1 || aws.ToString(ms[0].MessageId) != keep {
			t.Fatalf("the receive past maxReceiveCount gave %d messages, want only the other one", len(ms))
		}
		d := e.receiveOne(dlq)
		if aws.ToString(d.MessageId) != id || aws.ToString(d.Body) != "poison" || d.Attributes["ApproximateReceiveCount"] != "1" {
			t.Fatalf("dead-letter queue gave %s %q count %s", aws.ToString(d.MessageId), aws.ToString(d.Body), d.Attributes["ApproximateReceiveCount"])
		}
		srcs, err := c.ListDeadLetterSourceQueues(ctx, &awssqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(dlq)})
		if err != nil || !slices.Equal(srcs.QueueUrls, []string{src}) {
			t.Fatalf("ListDeadLetterSourceQueues = %v, %v", srcs, err)
		}
		if srcs, err := c.ListDeadLetterSourceQueues(ctx, &awssqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(src)}); err != nil || len(srcs.QueueUrls) != 0 {
			t.Fatalf("ListDeadLetterSourceQueues of a plain queue = %v, %v", srcs, err)
		}

		// A dead letter the receive did not move (a crash between the two,
		// or one made another way) is moved by the upkeep loop.
		lost := e.send(src, "stranded")
		jobs, err := e.st.Claim(ctx, store.ClaimParams{Queue: "acme/jobs", Limit: 10, LockFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.ID.String() == lost {
				if errs, err := e.st.Settle(ctx, []store.Verdict{{ID: j.ID, Token: j.LockToken, Outcome: store.DeadLetter}}); err != nil || errs[0] != nil {
					t.Fatal(err, errs)
				}
			}
		}
		if err := e.h.Upkeep(ctx); err != nil {
			t.Fatal(err)
		}
		if d := e.receiveOne(dlq); aws.ToString(d.MessageId) != lost {
			t.Fatalf("upkeep moved %s, want %s", aws.ToString(d.MessageId), lost)
		}

		// Bad policies change nothing.
		for _, p := range []string{
			`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:nowhere","maxReceiveCount":2}`,
			`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:globex:jobs-dlq","maxReceiveCount":2}`,
			`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:jobs-dlq","maxReceiveCount":0}`,
			`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:jobs","maxReceiveCount":3}`,
			`not json`,
		} {
			_, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(src), Attributes: map[string]string{"RedrivePolicy": p}})
			wantAPIError[*types.InvalidAttributeValue](t, "RedrivePolicy "+p, err, "InvalidAttributeValue")
		}
		fifo := e.createQueue("jobs.fifo", nil)
		_, err = c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(fifo),
			Attributes: map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:jobs-dlq","maxReceiveCount":2}`}})
		wantAPIError[*types.InvalidAttributeValue](t, "a FIFO queue's standard dead-letter queue", err, "InvalidAttributeValue")
		// Removing the policy: a message then stays, however often received.
		if _, err := c.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(src), Attributes: map[string]string{"RedrivePolicy": ""}}); err != nil {
			t.Fatal(err)
		}
		again := e.send(src, "again")
		for range 4 {
			m := e.receiveOne(src)
			if aws.ToString(m.MessageId) != again {
				t.Fatalf("received %q", aws.ToString(m.Body))
			}
			if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(src), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestFIFORedriveKeepsGroups(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		ctx := t.Context()
		c := e.admin()
		dlq := e.createQueue("dl.fifo", nil)
		src := e.createQueue("src.fifo", map[string]string{"ContentBasedDeduplication": "true",
			"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:acme:dl.fifo","maxReceiveCount":1}`})
		for _, body := range []string{"g1", "g2"} {
			if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(src), MessageBody: aws.String(body), MessageGroupId: aws.String("g")}); err != nil {
				t.Fatal(err)
			}
		}
		m := e.receiveOne(src)
		if _, err := c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(src), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		// The head moves to the dead-letter queue; the group goes on.
		if next := e.receiveOne(src); aws.ToString(next.Body) != "g2" {
			t.Fatalf("after the head moved, the group gave %q", aws.ToString(next.Body))
		}
		d := e.receiveOne(dlq)
		if aws.ToString(d.Body) != "g1" || d.Attributes["MessageGroupId"] != "g" {
			t.Fatalf("dead-letter queue gave %q, group %q", aws.ToString(d.Body), d.Attributes["MessageGroupId"])
		}
	})
}

func TestRetentionAndInflightLimit(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{MaxInflight: 2})
		ctx := t.Context()
		url := e.createQueue("short", map[string]string{"MessageRetentionPeriod": "60"})
		e.send(url, "old")
		e.clock.Advance(61 * time.Second)
		fresh := e.send(url, "new")
		// The old one is past retention: dropped when a receive reaches it.
		if m := e.receiveOne(url); aws.ToString(m.MessageId) != fresh {
			t.Fatalf("received %q, want only the fresh one", aws.ToString(m.Body))
		}
		e.receiveNone(url)

		// Two in flight is the limit here: the next receive is refused once
		// the count is taken again.
		e.send(url, "a")
		e.send(url, "b")
		e.receiveOne(url)
		e.clock.Advance(time.Second)
		_, err := e.admin().ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		wantAPIError[*types.OverLimit](t, "a receive past the in-flight limit", err, "OverLimit")
	})
}

func TestNativeJobsAreMessages(t *testing.T) {
	t.Parallel()
	// A job enqueued through Spool's own API into a tenant's queue is a
	// message of the SQS queue of that name, and the other way round.
	each(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, sqs.Config{})
		url := e.createQueue("shared", nil)
		res, err := e.st.Enqueue(t.Context(), []store.EnqueueParams{{Queue: "acme/shared", Kind: "email", Tenant: "acme", Payload: []byte(`{"to":"bo"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		m := e.receiveOne(url)
		if aws.ToString(m.MessageId) != res[0].ID.String() || aws.ToString(m.Body) != `{"to":"bo"}` {
			t.Fatalf("the native job came as %s %q", aws.ToString(m.MessageId), aws.ToString(m.Body))
		}
		// A job whose metadata says, wrongly, where attributes are comes
		// whole, as its body, without attributes: it does not stop the queue.
		if _, err := e.st.Enqueue(t.Context(), []store.EnqueueParams{{Queue: "acme/shared", Kind: "email", Tenant: "acme", Payload: []byte("odd"),
			Metadata: map[string]string{"sqs.attrlen": "99"}}}); err != nil {
			t.Fatal(err)
		}
		if m := e.receiveOne(url); aws.ToString(m.Body) != "odd" || m.MessageAttributes != nil {
			t.Fatalf("a job with bad attribute metadata came as %q, %v", aws.ToString(m.Body), m.MessageAttributes)
		}
		id := e.send(url, "from sqs")
		jobs, err := e.st.Claim(t.Context(), store.ClaimParams{Queue: "acme/shared", LockFor: time.Minute})
		if err != nil || len(jobs) != 1 || jobs[0].ID.String() != id || string(jobs[0].Payload) != "from sqs" || jobs[0].Kind != sqs.Kind || jobs[0].Tenant != "acme" {
			t.Fatalf("the SQS message as a job: %+v, %v", jobs, err)
		}
	})
}
