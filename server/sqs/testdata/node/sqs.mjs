// The AWS SDK for JavaScript v3, unmodified, against Spool's SQS facade.
// TestNodeSDK (server/sqs/node_test.go) runs it with SPOOL_SQS_ENDPOINT
// and AWS credentials of a key made with spool keys create --sqs in the
// environment. It exits 0 after "ok", or 1 with the first failure.
import {
  SQSClient,
  CreateQueueCommand,
  GetQueueUrlCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SendMessageBatchCommand,
  ReceiveMessageCommand,
  DeleteMessageCommand,
  DeleteMessageBatchCommand,
  ChangeMessageVisibilityCommand,
  QueueDoesNotExist,
  ReceiptHandleIsInvalid,
} from "@aws-sdk/client-sqs";

const endpoint = process.env.SPOOL_SQS_ENDPOINT;
if (!endpoint) {
  console.error("SPOOL_SQS_ENDPOINT is not set");
  process.exit(1);
}
// The SDK checks the MD5 of every body it sends and receives (md5 is on by
// default); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
const sqs = new SQSClient({ endpoint, region: "eu-central-1", maxAttempts: 1 });

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function expectError(promise, type, what) {
  try {
    await promise;
  } catch (err) {
    check(err instanceof type, `${what}: ${err.name} (${err.message}), want ${type.name}`);
    return;
  }
  throw new Error(`${what}: no error, want ${type.name}`);
}

async function standard() {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "node-mail", Attributes: { VisibilityTimeout: "30" } }));
  const got = await sqs.send(new GetQueueUrlCommand({ QueueName: "node-mail" }));
  check(got.QueueUrl === QueueUrl, "GetQueueUrl");

  const body = "héllo from node ☃";
  const sent = await sqs.send(new SendMessageCommand({
    QueueUrl,
    MessageBody: body,
    MessageAttributes: {
      kind: { DataType: "String", StringValue: "welcome" },
      n: { DataType: "Number", StringValue: "42" },
      raw: { DataType: "Binary", BinaryValue: new Uint8Array([1, 2, 3]) },
    },
  }));
  check(sent.MessageId && sent.MD5OfMessageAttributes, "SendMessage answer");

  const batch = await sqs.send(new SendMessageBatchCommand({
    QueueUrl,
    Entries: [
      { Id: "one", MessageBody: "batch one" },
      { Id: "two", MessageBody: "batch two" },
    ],
  }));
  check(batch.Successful.length === 2 && (batch.Failed ?? []).length === 0, "SendMessageBatch");

  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }));
  check(attrs.Attributes.ApproximateNumberOfMessages === "3", "ApproximateNumberOfMessages " + JSON.stringify(attrs.Attributes));

  const recv = await sqs.send(new ReceiveMessageCommand({
    QueueUrl,
    MaxNumberOfMessages: 10,
    WaitTimeSeconds: 1,
    MessageAttributeNames: ["All"],
    MessageSystemAttributeNames: ["All"],
  }));
  check(recv.Messages?.length === 3, "ReceiveMessage of 3: " + recv.Messages?.length);
  const first = recv.Messages.find((m) => m.MessageId === sent.MessageId);
  check(first && first.Body === body, "the first message's body");
  check(first.MessageAttributes.n.StringValue === "42", "a Number attribute");
  check(Buffer.from(first.MessageAttributes.raw.BinaryValue).equals(Buffer.from([1, 2, 3])), "a Binary attribute");
  check(first.MD5OfMessageAttributes === sent.MD5OfMessageAttributes, "MD5OfMessageAttributes on receive");
  check(first.Attributes.ApproximateReceiveCount === "1", "ApproximateReceiveCount");

  // Visibility 0: received again; the old handle is then stale.
  await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0 }));
  const again = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MessageSystemAttributeNames: ["ApproximateReceiveCount"] }));
  check(again.Messages?.length === 1 && again.Messages[0].MessageId === sent.MessageId, "received again after visibility 0");
  check(again.Messages[0].Attributes.ApproximateReceiveCount === "2", "ApproximateReceiveCount 2");
  await expectError(sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: first.ReceiptHandle })), ReceiptHandleIsInvalid, "a stale handle");

  const others = recv.Messages.filter((m) => m.MessageId !== sent.MessageId);
  const del = await sqs.send(new DeleteMessageBatchCommand({
    QueueUrl,
    Entries: [
      ...others.map((m, i) => ({ Id: "m" + i, ReceiptHandle: m.ReceiptHandle })),
      { Id: "last", ReceiptHandle: again.Messages[0].ReceiptHandle },
    ],
  }));
  check(del.Successful.length === 3 && (del.Failed ?? []).length === 0, "DeleteMessageBatch " + JSON.stringify(del.Failed));
  const empty = await sqs.send(new ReceiveMessageCommand({ QueueUrl }));
  check((empty.Messages ?? []).length === 0, "an empty queue after deleting");
}

async function fifo() {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({
    QueueName: "node-orders.fifo",
    Attributes: { FifoQueue: "true", ContentBasedDeduplication: "true" },
  }));
  const seq = [];
  for (const body of ["first", "second", "third"]) {
    const out = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: body, MessageGroupId: "order-7" }));
    check(out.SequenceNumber, "a FIFO send's SequenceNumber");
    seq.push(out.SequenceNumber);
  }
  check([...seq].sort().join() === seq.join(), "sequence numbers increase: " + seq);
  // The same body again: deduplicated (content-based), the first's ID.
  const dup = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "first", MessageGroupId: "order-7" }));
  for (const want of ["first", "second", "third"]) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ["All"] }));
    check(out.Messages?.length === 1, `one message of the group at a time (${want}): ${out.Messages?.length}`);
    const m = out.Messages[0];
    check(m.Body === want, `group order: ${m.Body}, want ${want}`);
    check(m.Attributes.MessageGroupId === "order-7", "MessageGroupId");
    if (want === "first") check(m.MessageId === dup.MessageId, "a duplicate answers the first message's ID");
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
  }
}

async function errors() {
  await expectError(
    sqs.send(new GetQueueUrlCommand({ QueueName: "node-nothing" })),
    QueueDoesNotExist,
    "GetQueueUrl of an unknown queue",
  );
}

try {
  await standard();
  await fifo();
  await errors();
  console.log("ok");
} catch (err) {
  console.error(err);
  process.exit(1);
}
