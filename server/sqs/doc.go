// Package sqs is spool serve's SQS facade: Amazon SQS's AWS JSON 1.0
// protocol over a Spool store, so that an application written for SQS, with
// an unmodified AWS SDK, uses Spool by changing its endpoint URL.
//
// # Mapping
//
// An SQS queue is a Spool queue of the same name under the key's tenant
// ("acme/orders"), whose settings (the SQS attributes and tags) the store
// keeps in its SQS capability (store.SQSStore). A message is a job of kind
// "sqs" whose payload is the body as sent; its message attributes are kept
// in the job's metadata, in the exact form their MD5 is computed from. A
// receive is a claim whose lock is the visibility timeout; the receipt
// handle names the job, the claim's lock token and its delivery count, so a
// handle from an earlier receive is refused once the message was received
// again. ApproximateReceiveCount is the job's deliveries; a redrive policy
// dead-letters a message on the receive past maxReceiveCount and moves it
// to the dead-letter queue; a FIFO queue's MessageGroupId is the job's
// ordering key and its deduplication ID a unique key held for 5 minutes.
//
// # Protocol
//
// Requests are POSTs whose X-Amz-Target header is AmazonSQS.<Action>,
// signed with AWS Signature Version 4 by a Spool API key made with
// spool keys create --sqs (its ID is the access key ID). Answers and errors
// are SQS's JSON, with the x-amzn-query-error header SDKs map legacy codes
// from. docs/sqs.md has the table of what is supported, action by action
// and attribute by attribute, and every known difference from SQS.
package sqs
