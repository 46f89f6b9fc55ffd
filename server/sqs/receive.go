package sqs

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolrun/spool/store"
)

// Receiving: a claim of up to ten jobs, locked for the visibility timeout,
// long-polling up to the wait.

// Message system attributes, by SQS's names.
const (
	sysSenderID          = "SenderId"
	sysSentTimestamp     = "SentTimestamp"
	sysReceiveCount      = "ApproximateReceiveCount"
	sysFirstReceive      = "ApproximateFirstReceiveTimestamp"
	sysSequenceNumber    = "SequenceNumber"
	sysDeduplicationID   = "MessageDeduplicationId"
	sysGroupID           = "MessageGroupId"
	sysAWSTraceHeader    = "AWSTraceHeader"
	maxReceiveBatch      = 10
	receivePollMin       = 50 * time.Millisecond
	receivePollMax       = time.Second
	inflightCountedEvery = time.Second
	// maxDropRounds bounds the claims one receive makes that only find
	// messages to drop (past retention) or move (past maxReceiveCount).
	maxDropRounds = 100
)

// message is a received message as SQS's JSON carries it.
type message struct {
	MessageID              string               `json:"MessageId"`
	ReceiptHandle          string               `json:"ReceiptHandle"`
	MD5OfBody              string               `json:"MD5OfBody"`
	Body                   string               `json:"Body"`
	Attributes             map[string]string    `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string               `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]attrValue `json:"MessageAttributes,omitempty"`
}

// receiveAnswer answers ReceiveMessage; no message, no member.
type receiveAnswer struct {
	Messages []message `json:"Messages,omitempty"`
}

// receiveInput is ReceiveMessage's input.
type receiveInput struct {
	QueueURL string `json:"QueueUrl"`
	// AttributeNames is the deprecated name of MessageSystemAttributeNames;
	// SDKs send one or the other, and both are read.
	AttributeNames              []string
	MessageSystemAttributeNames []string
	MessageAttributeNames       []string
	MaxNumberOfMessages         *int
	VisibilityTimeout           *int
	WaitTimeSeconds             *int
	ReceiveRequestAttemptID     string `json:"ReceiveRequestAttemptId"`
}

func (c *call) receiveMessage() (any, error) {
	var in receiveInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	limit, vis, wait := 1, q.visibility, q.wait
	for _, p := range []struct {
		name   string
		v      *int
		lo, hi int
		to     *int
	}{
		{"MaxNumberOfMessages", in.MaxNumberOfMessages, 1, maxReceiveBatch, &limit},
		{"VisibilityTimeout", in.VisibilityTimeout, 0, maxVisibilityTimeout, &vis},
		{"WaitTimeSeconds", in.WaitTimeSeconds, 0, MaxWaitSeconds, &wait},
	} {
		if p.v == nil {
			continue
		}
		if *p.v < p.lo || *p.v > p.hi {
			return nil, invalid("Value %d for parameter %s is invalid. Reason: Must be between %d and %d, if provided.", *p.v, p.name, p.lo, p.hi)
		}
		*p.to = *p.v
	}
	if err := c.h.checkInflight(c, q); err != nil {
		return nil, err
	}
	// A visibility timeout of 0 makes the message visible again at once in
	// SQS; here it is the shortest lock, back within the reaper's pass.
	lockFor := max(time.Duration(vis)*time.Second, store.MinLockDuration)
	clock := c.h.cfg.Clock
	deadline := clock.Now().Add(time.Duration(wait) * time.Second)
	poll := receivePollMin
	dropRounds := 0
	for {
		var avail <-chan struct{}
		if c.h.notifier != nil && wait > 0 {
			avail = c.h.notifier.Available(q.stored) // before the claim: a change after it still wakes us
		}
		// The claim runs on the request's context: a wait that ends
		// mid-claim must not throw away jobs just locked.
		jobs, err := c.h.st.Claim(c.ctx, store.ClaimParams{Queue: q.stored, Limit: limit, LockFor: lockFor, Worker: "sqs " + c.sc.keyID})
		if err != nil {
			return nil, err
		}
		msgs, err := c.deliver(q, jobs, &in)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			return receiveAnswer{Messages: msgs}, nil
		}
		if len(jobs) > 0 {
			// Every job claimed was dropped or moved: look again, for a
			// while; a large backlog past retention is for later receives.
			if dropRounds++; dropRounds < maxDropRounds {
				continue
			}
			return receiveAnswer{}, nil
		}
		left := deadline.Sub(clock.Now())
		if left <= 0 {
			return receiveAnswer{}, nil
		}
		t := clock.NewTimer(min(poll, left))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return receiveAnswer{}, nil
		case <-c.h.draining:
			t.Stop()
			return receiveAnswer{}, nil
		case <-avail:
		case <-t.Chan():
			poll = min(2*poll, receivePollMax)
		}
		t.Stop()
	}
}

// checkInflight refuses a receive while the queue has MaxInflight
// messages received and not deleted, counted at most once a second.
func (h *Handler) checkInflight(c *call, q *queue) error {
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	cc, ok := h.inflight[q.stored]
	h.mu.Unlock()
	if !ok || now.Sub(cc.at) >= inflightCountedEvery {
		n, err := h.sq.CountRunning(c.ctx, q.stored)
		if err != nil {
			return err
		}
		cc = cachedCount{n: n, at: now}
		h.mu.Lock()
		if len(h.inflight) > 100_000 {
			clear(h.inflight)
		}
		h.inflight[q.stored] = cc
		h.mu.Unlock()
	}
	if cc.n >= h.cfg.MaxInflight {
		return newError(errOverLimit, "The queue has %d messages in flight, the most it may have (%d): delete or release some first.", cc.n, h.cfg.MaxInflight)
	}
	return nil
}

// deliver turns claimed jobs into messages. A job past the queue's
// retention period is dropped (cancelled); one received more often than
// the redrive policy's maxReceiveCount is dead-lettered and moved to the
// dead-letter queue, as SQS does on the receive that would exceed it.
func (c *call) deliver(q *queue, jobs []*store.Job, in *receiveInput) ([]message, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	now := c.h.cfg.Clock.Now()
	expiry := now.Add(-time.Duration(q.retention) * time.Second)
	var target *queue
	if q.redriveTo != "" {
		var err error
		if target, err = c.h.queue(c.ctx, c.sc.prefix+q.redriveTo, false); err != nil {
			return nil, err
		}
	}
	var (
		drop     []store.Verdict
		moved    bool
		msgs     = make([]message, 0, len(jobs))
		sysNames = append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)
	)
	for _, j := range jobs {
		switch {
		case j.CreatedAt.Before(expiry):
			drop = append(drop, store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Cancel,
				Error: &store.AttemptError{Message: "sqs: dropped past the queue's MessageRetentionPeriod of " + strconv.Itoa(q.retention) + "s"}})
		case target != nil && j.Deliveries > q.maxReceiveCount:
			drop = append(drop, store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.DeadLetter,
				Error: &store.AttemptError{Message: "sqs: received more than the redrive policy's maxReceiveCount of " + strconv.Itoa(q.maxReceiveCount)}})
			moved = true
		default:
			msgs = append(msgs, c.message(q, j, sysNames, in.MessageAttributeNames))
		}
	}
	if len(drop) > 0 {
		if _, err := c.h.st.Settle(c.ctx, drop); err != nil {
			return nil, err
		}
	}
	if moved {
		if err := c.h.redrive(c.ctx, q, target); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// message is the view of a claimed job of queue q, with the system
// attributes and message attributes the receive asked for. A job whose
// kept attributes do not decode (one enqueued through another door with
// metadata of the same names) is answered without them, its whole payload
// the body, rather than stopping the queue.
func (c *call) message(q *queue, j *store.Job, sysNames, attrNames []string) message {
	payload, kept, ok := splitPayload(j)
	var entries []attrEntry
	if ok && len(kept) > 0 && len(attrNames) > 0 {
		var err error
		if entries, err = decodeAttributes(kept); err != nil {
			ok = false
		}
	}
	if !ok {
		c.h.cfg.Logger.Warn("spool serve: sqs: a message's attributes do not decode; answered without them", "job", j.ID, "queue", j.Queue)
		payload, entries = j.Payload, nil
	}
	body := string(payload)
	if !utf8.ValidString(body) { // a job enqueued through another door: answer text
		body = strings.ToValidUTF8(body, "\uFFFD")
	}
	m := message{MessageID: j.ID.String(), ReceiptHandle: newReceipt(j, q.stored), MD5OfBody: md5Hex([]byte(body)), Body: body}
	if len(sysNames) > 0 {
		m.Attributes = c.systemAttributes(q, j, sysNames)
	}
	if sel := selectAttributes(entries, attrNames); len(sel) > 0 {
		m.MessageAttributes = toJSON(sel)
		m.MD5OfMessageAttributes = md5OfEntries(sel)
	}
	return m
}

// splitPayload returns a job's body and its message attributes in their
// kept form (from its metadata, or from the head of its payload); false
// when the metadata that says where they are is malformed.
func splitPayload(j *store.Job) (body, kept []byte, ok bool) {
	if n, has := j.Metadata[metaAttrLen]; has {
		k, err := strconv.Atoi(n)
		if err != nil || k < 0 || k > len(j.Payload) {
			return nil, nil, false
		}
		return j.Payload[k:], j.Payload[:k], true
	}
	if enc := j.Metadata[metaAttributes]; enc != "" {
		kept, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, nil, false
		}
		return j.Payload, kept, true
	}
	return j.Payload, nil, true
}

// systemAttributes are a message's system attributes that names asks for
// (All for every one).
func (c *call) systemAttributes(q *queue, j *store.Job, names []string) map[string]string {
	all := slices.Contains(names, attrAll)
	want := func(n string) bool { return all || slices.Contains(names, n) }
	out := map[string]string{}
	if want(sysSenderID) {
		out[sysSenderID] = c.sc.account
	}
	if want(sysSentTimestamp) {
		out[sysSentTimestamp] = strconv.FormatInt(j.CreatedAt.UnixMilli(), 10)
	}
	if want(sysReceiveCount) {
		out[sysReceiveCount] = strconv.Itoa(j.Deliveries)
	}
	if want(sysFirstReceive) && !j.AttemptedAt.IsZero() {
		out[sysFirstReceive] = strconv.FormatInt(j.AttemptedAt.UnixMilli(), 10)
	}
	if q.fifo {
		if want(sysSequenceNumber) {
			out[sysSequenceNumber] = sequenceNumber(j.ID)
		}
		if want(sysGroupID) {
			_, g, _ := strings.Cut(j.OrderingKey, "/")
			out[sysGroupID] = g
		}
		if want(sysDeduplicationID) && j.UniqueKey != "" {
			_, d, _ := strings.Cut(j.UniqueKey, "/")
			d, _, _ = strings.Cut(d, "\x1f")
			out[sysDeduplicationID] = d
		}
	} else if g := j.Metadata[metaGroup]; g != "" && want(sysGroupID) {
		out[sysGroupID] = g
	}
	if enc := j.Metadata[metaSystem]; enc != "" && want(sysAWSTraceHeader) {
		if b, err := base64.StdEncoding.DecodeString(enc); err == nil {
			if entries, err := decodeAttributes(b); err == nil {
				for _, e := range entries {
					if e.name == sysAWSTraceHeader {
						out[sysAWSTraceHeader] = string(e.value)
					}
				}
			}
		}
	}
	return out
}
