package sqs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spoolrun/spool/store"
)

// Sending: one message, or a batch of up to ten, becomes jobs of the
// queue's stored name, kind "sqs", payload the body as sent.

// Kind is the kind of the jobs SQS messages become.
const Kind = "sqs"

// DedupWindow is how long a FIFO queue's deduplication ID holds after the
// message was sent.
const DedupWindow = 5 * time.Minute

// Metadata the facade keeps with a message's job.
const (
	// metaAttributes holds the message attributes in their kept form,
	// base64; metaAttrLen, when they do not fit in metadata, says the
	// payload starts with that many bytes of them, before the body.
	metaAttributes = "sqs.attributes"
	metaAttrLen    = "sqs.attrlen"
	// metaSystem holds the message system attributes (AWSTraceHeader) in
	// the same form.
	metaSystem = "sqs.system"
	// metaGroup is the MessageGroupId of a standard queue's message (a
	// FIFO queue's is in the job's ordering key).
	metaGroup = "sqs.group"
)

// sendEntry is one message to send: SendMessage's input, or an entry of
// SendMessageBatch's.
type sendEntry struct {
	ID                      string `json:"Id"`
	MessageBody             *string
	DelaySeconds            *int
	MessageAttributes       map[string]attrValue
	MessageSystemAttributes map[string]attrValue
	MessageDeduplicationID  *string `json:"MessageDeduplicationId"`
	MessageGroupID          *string `json:"MessageGroupId"`
}

// sendResult answers SendMessage, and is an entry of SendMessageBatch's
// answer. MD5s are omitted where SQS omits them: without attributes.
type sendResult struct {
	ID                           string `json:"Id,omitempty"`
	MessageID                    string `json:"MessageId"`
	MD5OfMessageBody             string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes       string `json:"MD5OfMessageAttributes,omitempty"`
	MD5OfMessageSystemAttributes string `json:"MD5OfMessageSystemAttributes,omitempty"`
	SequenceNumber               string `json:"SequenceNumber,omitempty"`
}

// batchFailure is a failed entry of a batch's answer.
type batchFailure struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message,omitempty"`
}

// failure is the failed entry of batch entry id.
func failure(id string, e *Error) batchFailure {
	return batchFailure{ID: id, SenderFault: e.c.sender, Code: e.c.query, Message: e.msg}
}

// prepared is a message checked and made into a job, with the answer it
// will get.
type prepared struct {
	job store.EnqueueParams
	res sendResult
}

// prepare checks one message for queue q and makes it a job. SQS counts
// the body and the message attributes' names, types and values toward a
// message's size.
func (c *call) prepare(q *queue, e *sendEntry) (*prepared, *Error) {
	if e.MessageBody == nil {
		return nil, missing("MessageBody")
	}
	body := *e.MessageBody
	if body == "" {
		return nil, invalid("The message body must be at least one character long.")
	}
	if !validText(body) {
		return nil, newError(errInvalidContents, "Invalid binary character in the message body: only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed.")
	}
	attrs, attrSize, ae := encodeAttributes(e.MessageAttributes, "MessageAttributes")
	if ae != nil {
		return nil, ae
	}
	system, _, se := encodeAttributes(e.MessageSystemAttributes, "MessageSystemAttributes")
	if se != nil {
		return nil, se
	}
	if len(system) > 1024 {
		return nil, invalid("The AWSTraceHeader system attribute is over 1024 bytes.")
	}
	if n := len(body) + attrSize; n > q.maxSize {
		return nil, invalid("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", q.maxSize+1)
	}
	p := &prepared{
		job: store.EnqueueParams{Queue: q.stored, Kind: Kind, Tenant: c.sc.tenant, Payload: []byte(body),
			// SQS never drops a message for being received often: only a
			// redrive policy moves it, which receives apply.
			MaxDeliveries: store.MaxAttemptsLimit},
		res: sendResult{ID: e.ID, MD5OfMessageBody: md5Hex([]byte(body))},
	}
	delay := q.delay
	if e.DelaySeconds != nil {
		switch d := *e.DelaySeconds; {
		case d < 0 || d > maxDelaySeconds:
			return nil, invalid("Value %d for parameter DelaySeconds is invalid. Reason: must be from 0 to %d.", d, maxDelaySeconds)
		case q.fifo && d != 0:
			return nil, invalid("Value %d for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.", d)
		default:
			if !q.fifo {
				delay = d
			}
		}
	}
	p.job.Delay = time.Duration(delay) * time.Second
	meta := map[string]string{}
	if len(system) > 0 {
		meta[metaSystem] = base64.StdEncoding.EncodeToString(system)
		p.res.MD5OfMessageSystemAttributes = md5Hex(system)
	}
	group, dedup := e.MessageGroupID, e.MessageDeduplicationID
	if group != nil {
		if !validID(*group) {
			return nil, invalid("Value %s for parameter MessageGroupId is invalid. Reason: 1 to 128 characters of letters, digits and punctuation.", *group)
		}
		if !q.fifo {
			meta[metaGroup] = *group
		}
	}
	if q.fifo {
		if group == nil {
			return nil, missing("MessageGroupId")
		}
		var id string
		switch {
		case dedup != nil:
			if !validID(*dedup) {
				return nil, invalid("Value %s for parameter MessageDeduplicationId is invalid. Reason: 1 to 128 characters of letters, digits and punctuation.", *dedup)
			}
			id = *dedup
		case q.contentDedup:
			sum := sha256.Sum256([]byte(body))
			id = hex.EncodeToString(sum[:])
		default:
			return nil, invalid("The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
		}
		p.job.OrderingKey = q.name + "/" + *group
		p.job.UniqueKey = dedupKey(q, *group, id)
		p.job.UniqueFor = DedupWindow
	} else if dedup != nil {
		return nil, invalid("Value %s for parameter MessageDeduplicationId is invalid. Reason: The request include parameter that is not valid for this queue type.", *dedup)
	}
	if len(attrs) > 0 {
		p.res.MD5OfMessageAttributes = md5Hex(attrs)
		enc := base64.StdEncoding.EncodeToString(attrs)
		if metaSize(meta)+len(metaAttributes)+len(enc) <= store.MaxMetadataBytes {
			meta[metaAttributes] = enc
		} else {
			// Too large for metadata: before the body in the payload.
			meta[metaAttrLen] = strconv.Itoa(len(attrs))
			p.job.Payload = append(append(make([]byte, 0, len(attrs)+len(body)), attrs...), body...)
			if len(p.job.Payload) > store.MaxPayloadBytes {
				return nil, invalid("One or more parameters are invalid. Reason: the message and its attributes are over %d bytes.", store.MaxPayloadBytes)
			}
		}
	}
	if len(meta) > 0 {
		p.job.Metadata = meta
	}
	return p, nil
}

// dedupKey is a FIFO message's unique key: the queue's name and the
// deduplication ID, and with DeduplicationScope messageGroup a hash of
// the group after a unit separator, so the key stays under
// store.MaxKeyLen.
func dedupKey(q *queue, group, id string) string {
	k := q.name + "/" + id
	if q.groupScope {
		sum := sha256.Sum256([]byte(group))
		k += "\x1f" + hex.EncodeToString(sum[:8])
	}
	return k
}

// metaSize is the size store.CheckMetadata counts.
func metaSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// validID reports whether s is a MessageGroupId or MessageDeduplicationId:
// 1 to 128 of the ASCII letters, digits and punctuation.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := range len(s) {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// sequenceNumber is a FIFO message's SequenceNumber: the first 64 bits of
// its ID (a UUIDv7: milliseconds, then a counter), in decimal, 20 digits.
// It grows with the order messages were sent in through one server.
func sequenceNumber(id store.ID) string {
	return fmt.Sprintf("%020d", binary.BigEndian.Uint64(id[:8]))
}

func (c *call) sendMessage() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		sendEntry
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	p, e := c.prepare(q, &in.sendEntry)
	if e != nil {
		return nil, e
	}
	res, err := c.h.st.Enqueue(c.ctx, []store.EnqueueParams{p.job})
	if err != nil {
		return nil, err
	}
	p.res.ID = ""
	c.answered(q, &p.res, res[0])
	return p.res, nil
}

// answered fills a send's answer from the store's result: the message's
// ID (the earlier message's, for a deduplicated one) and, on a FIFO
// queue, its sequence number.
func (c *call) answered(q *queue, res *sendResult, r store.EnqueueResult) {
	res.MessageID = r.ID.String()
	if q.fifo {
		res.SequenceNumber = sequenceNumber(r.ID)
	}
}

// sendBatchAnswer answers SendMessageBatch.
type sendBatchAnswer struct {
	Successful []sendResult   `json:"Successful"`
	Failed     []batchFailure `json:"Failed"`
}

func (c *call) sendMessageBatch() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		Entries  []sendEntry
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i := range in.Entries {
		ids[i] = in.Entries[i].ID
	}
	if e := checkBatch(ids); e != nil {
		return nil, e
	}
	total := 0
	for i := range in.Entries {
		if b := in.Entries[i].MessageBody; b != nil {
			total += len(*b)
		}
		for name, a := range in.Entries[i].MessageAttributes {
			total += len(name) + len(a.DataType) + len(a.BinaryValue)
			if a.StringValue != nil {
				total += len(*a.StringValue)
			}
		}
	}
	if total > c.h.cfg.MaxMessageBytes {
		return nil, newError(errBatchTooLong, "Batch requests cannot be longer than %d bytes. You have sent %d bytes.", c.h.cfg.MaxMessageBytes, total)
	}
	out := sendBatchAnswer{Successful: []sendResult{}, Failed: []batchFailure{}}
	var ok []*prepared
	for i := range in.Entries {
		p, e := c.prepare(q, &in.Entries[i])
		if e != nil {
			out.Failed = append(out.Failed, failure(in.Entries[i].ID, e))
			continue
		}
		ok = append(ok, p)
	}
	for len(ok) > 0 {
		jobs := make([]store.EnqueueParams, len(ok))
		for i, p := range ok {
			jobs[i] = p.job
		}
		res, err := c.h.st.Enqueue(c.ctx, jobs)
		var refused []int
		for _, ie := range itemErrors(err) {
			refused = append(refused, ie.Index)
			out.Failed = append(out.Failed, failure(ok[ie.Index].res.ID, asError(ie.Err)))
		}
		if len(refused) > 0 { // the store took none: send the others again
			var rest []*prepared
			for i, p := range ok {
				if !containsInt(refused, i) {
					rest = append(rest, p)
				}
			}
			ok = rest
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, p := range ok {
			c.answered(q, &p.res, res[i])
			out.Successful = append(out.Successful, p.res)
		}
		break
	}
	return out, nil
}

// itemErrors returns the *store.ItemError of each item an Enqueue refused.
func itemErrors(err error) []*store.ItemError {
	if err == nil {
		return nil
	}
	var out []*store.ItemError
	var ie *store.ItemError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if errors.As(e, &ie) {
				out = append(out, ie)
			}
		}
		return out
	}
	if errors.As(err, &ie) {
		out = append(out, ie)
	}
	return out
}

func containsInt(s []int, n int) bool {
	for _, v := range s {
		if v == n {
			return true
		}
	}
	return false
}

// checkBatch checks a batch's entry IDs: 1 to 10 entries, each ID 1 to 80
// letters, digits, - and _, all distinct.
func checkBatch(ids []string) *Error {
	switch {
	case len(ids) == 0:
		return newError(errEmptyBatch, "There should be at least one entry in the request.")
	case len(ids) > MaxBatchEntries:
		return newError(errTooManyEntries, "Maximum number of entries per request are %d. You have sent %d.", MaxBatchEntries, len(ids))
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !validEntryID(id) {
			return newError(errInvalidBatchEntryID, "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		if seen[id] {
			return newError(errEntryIDsNotDistinct, "Id %s repeated.", id)
		}
		seen[id] = true
	}
	return nil
}

func validEntryID(id string) bool {
	if id == "" || len(id) > 80 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
