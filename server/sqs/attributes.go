package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// Queue attributes, by SQS's names.
const (
	attrAll                    = "All"
	attrPolicy                 = "Policy"
	attrVisibilityTimeout      = "VisibilityTimeout"
	attrMaximumMessageSize     = "MaximumMessageSize"
	attrRetentionPeriod        = "MessageRetentionPeriod"
	attrApproxMessages         = "ApproximateNumberOfMessages"
	attrApproxNotVisible       = "ApproximateNumberOfMessagesNotVisible"
	attrApproxDelayed          = "ApproximateNumberOfMessagesDelayed"
	attrCreatedTimestamp       = "CreatedTimestamp"
	attrLastModified           = "LastModifiedTimestamp"
	attrQueueArn               = "QueueArn"
	attrDelaySeconds           = "DelaySeconds"
	attrReceiveWait            = "ReceiveMessageWaitTimeSeconds"
	attrRedrivePolicy          = "RedrivePolicy"
	attrRedriveAllowPolicy     = "RedriveAllowPolicy"
	attrFifoQueue              = "FifoQueue"
	attrContentDedup           = "ContentBasedDeduplication"
	attrKmsMasterKeyID         = "KmsMasterKeyId"
	attrKmsReusePeriod         = "KmsDataKeyReusePeriodSeconds"
	attrDeduplicationScope     = "DeduplicationScope"
	attrFifoThroughputLimit    = "FifoThroughputLimit"
	attrSqsManagedSseEnabled   = "SqsManagedSseEnabled"
	minMessageSize             = 1024
	defaultVisibility          = 30
	defaultRetention           = 345_600 // 4 days
	maxRedriveReceiveCount     = 1000
	maxVisibilityTimeout       = 43_200 // 12 hours
	maxDelaySeconds            = 900
	minRetention, maxRetention = 60, 1_209_600
)

// attrSpec says how the facade treats one queue attribute.
type attrSpec struct {
	// settable by CreateQueue and SetQueueAttributes; createOnly by
	// CreateQueue alone; neither: read only.
	settable, createOnly bool
	// fifoOnly attributes belong to FIFO queues.
	fifoOnly bool
	// check validates a value and returns it as stored.
	check func(c *call, v string) (string, *Error)
	// def is the value GetQueueAttributes shows when the attribute is not
	// set; "" shows nothing.
	def func(h *Handler, q *queue) string
}

// attrSpecs is every queue attribute the facade knows.
var attrSpecs = map[string]attrSpec{
	attrDelaySeconds: {settable: true, check: intRange(0, maxDelaySeconds), def: constant("0")},
	attrMaximumMessageSize: {settable: true, check: func(c *call, v string) (string, *Error) {
		return intRange(minMessageSize, c.h.cfg.MaxMessageBytes)(c, v)
	}, def: func(h *Handler, _ *queue) string { return strconv.Itoa(h.cfg.MaxMessageBytes) }},
	attrRetentionPeriod:    {settable: true, check: intRange(minRetention, maxRetention), def: constant(strconv.Itoa(defaultRetention))},
	attrReceiveWait:        {settable: true, check: intRange(0, MaxWaitSeconds), def: constant("0")},
	attrVisibilityTimeout:  {settable: true, check: intRange(0, maxVisibilityTimeout), def: constant(strconv.Itoa(defaultVisibility))},
	attrPolicy:             {settable: true, check: jsonText},
	attrRedrivePolicy:      {settable: true, check: (*call).checkRedrivePolicy},
	attrRedriveAllowPolicy: {settable: true, check: jsonText},
	attrKmsMasterKeyID:     {settable: true, check: text(2048)},
	attrKmsReusePeriod:     {settable: true, check: intRange(60, 86_400), def: constant("300")},
	// Spool encrypts nothing itself: SSE is off unless a client set it
	// (kept and shown, not acted on).
	attrSqsManagedSseEnabled: {settable: true, check: boolean, def: constant("false")},
	attrFifoQueue:            {createOnly: true, fifoOnly: true, check: boolean, def: constant("true")},
	attrContentDedup:         {settable: true, fifoOnly: true, check: boolean, def: constant("false")},
	attrDeduplicationScope:   {settable: true, fifoOnly: true, check: oneOf("messageGroup", "queue"), def: constant("queue")},
	attrFifoThroughputLimit:  {settable: true, fifoOnly: true, check: oneOf("perQueue", "perMessageGroupId"), def: constant("perQueue")},
	attrApproxMessages:       {},
	attrApproxNotVisible:     {},
	attrApproxDelayed:        {},
	attrCreatedTimestamp:     {},
	attrLastModified:         {},
	attrQueueArn:             {},
}

// readOrder is the order GetQueueAttributes fills "All" in; the answer is
// a JSON object, so the order is only the work's.
var readOrder = []string{attrQueueArn, attrApproxMessages, attrApproxNotVisible, attrApproxDelayed, attrCreatedTimestamp,
	attrLastModified, attrVisibilityTimeout, attrMaximumMessageSize, attrRetentionPeriod, attrDelaySeconds, attrReceiveWait,
	attrPolicy, attrRedrivePolicy, attrRedriveAllowPolicy, attrKmsMasterKeyID, attrKmsReusePeriod, attrSqsManagedSseEnabled,
	attrFifoQueue, attrContentDedup, attrDeduplicationScope, attrFifoThroughputLimit}

func constant(v string) func(*Handler, *queue) string {
	return func(*Handler, *queue) string { return v }
}

func intRange(lo, hi int) func(*call, string) (string, *Error) {
	return func(_ *call, v string) (string, *Error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return "", newError(errInvalidAttrValue, "Invalid value for the parameter: %q must be an integer from %d to %d.", v, lo, hi)
		}
		return strconv.Itoa(n), nil
	}
}

func boolean(_ *call, v string) (string, *Error) {
	switch strings.ToLower(v) {
	case "true":
		return "true", nil
	case "false":
		return "false", nil
	}
	return "", newError(errInvalidAttrValue, "Invalid value for the parameter: %q must be true or false.", v)
}

func oneOf(vals ...string) func(*call, string) (string, *Error) {
	return func(_ *call, v string) (string, *Error) {
		for _, ok := range vals {
			if v == ok {
				return v, nil
			}
		}
		return "", newError(errInvalidAttrValue, "Invalid value for the parameter: %q must be one of %s.", v, strings.Join(vals, ", "))
	}
}

func jsonText(_ *call, v string) (string, *Error) {
	if v != "" && !json.Valid([]byte(v)) {
		return "", newError(errInvalidAttrValue, "Invalid value for the parameter: the policy is not JSON.")
	}
	return v, nil
}

func text(maxLen int) func(*call, string) (string, *Error) {
	return func(_ *call, v string) (string, *Error) {
		if len(v) > maxLen {
			return "", newError(errInvalidAttrValue, "Invalid value for the parameter: at most %d characters.", maxLen)
		}
		return v, nil
	}
}

// redrivePolicy is the JSON of a RedrivePolicy attribute. SQS takes
// maxReceiveCount as a number or a string, and answers a number.
type redrivePolicy struct {
	DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
	MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
}

// checkRedrivePolicy checks a RedrivePolicy: a dead-letter queue of the
// caller's account that exists, and a maxReceiveCount of 1 to 1000. It
// returns the policy with the target's ARN in this server's region. ""
// removes the policy.
func (c *call) checkRedrivePolicy(v string) (string, *Error) {
	if v == "" {
		return "", nil
	}
	bad := func(reason string) (string, *Error) {
		return "", newError(errInvalidAttrValue, "Value %s for parameter RedrivePolicy is invalid. Reason: %s", v, reason)
	}
	var p redrivePolicy
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return bad("Redrive policy is not a valid JSON map.")
	}
	n, err := strconv.Atoi(strings.Trim(string(p.MaxReceiveCount), `"`))
	if err != nil || n < 1 || n > maxRedriveReceiveCount {
		return bad(fmt.Sprintf("Invalid value for maxReceiveCount: %s, valid values are from 1 to %d both inclusive.", p.MaxReceiveCount, maxRedriveReceiveCount))
	}
	account, name, ok := parseQueueARN(p.DeadLetterTargetArn)
	if !ok {
		return bad("Invalid value for deadLetterTargetArn.")
	}
	if account != c.sc.account || checkQueueName(name) != nil {
		return bad("Dead letter target does not exist.")
	}
	stored, e := c.sc.stored(name)
	if e != nil {
		return "", e
	}
	target, err2 := c.h.queue(c.ctx, stored, false)
	if err2 != nil {
		return "", asError(err2)
	}
	if target == nil {
		return bad("Dead letter target does not exist.")
	}
	b, _ := json.Marshal(struct { //nolint:errchkjson // strings and an int always marshal
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}{queueARN(c.h.cfg.Region, account, name), n})
	return string(b), nil
}

// queue is one queue's settings as the facade uses them: the stored
// attributes, parsed, with SQS's defaults where none is set.
type queue struct {
	stored, name string
	fifo         bool
	attrs        map[string]string // the attributes set, as stored
	tags         map[string]string
	created      time.Time
	updated      time.Time

	visibility   int // seconds
	delay        int // seconds
	maxSize      int // bytes
	retention    int // seconds
	wait         int // seconds
	contentDedup bool
	groupScope   bool // deduplication per message group
	// redrive is the dead-letter queue's SQS name and the receive count
	// past which a message moves there; empty without a policy.
	redriveTo       string
	maxReceiveCount int
}

// queueOf reads a stored queue's settings.
func (h *Handler) queueOf(sq *store.SQSQueue) (*queue, error) {
	name := sq.Queue[strings.LastIndexByte(sq.Queue, '/')+1:]
	q := &queue{stored: sq.Queue, name: name, attrs: sq.Attributes, tags: sq.Tags, created: sq.CreatedAt, updated: sq.UpdatedAt,
		fifo: sq.Attributes[attrFifoQueue] == "true"}
	num := func(attr string, def int) (int, error) {
		v, ok := sq.Attributes[attr]
		if !ok {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("spool: sqs queue %s: attribute %s is %q: %w", sq.Queue, attr, v, err)
		}
		return n, nil
	}
	var err error
	for _, f := range []struct {
		attr string
		def  int
		to   *int
	}{
		{attrVisibilityTimeout, defaultVisibility, &q.visibility},
		{attrDelaySeconds, 0, &q.delay},
		{attrMaximumMessageSize, h.cfg.MaxMessageBytes, &q.maxSize},
		{attrRetentionPeriod, defaultRetention, &q.retention},
		{attrReceiveWait, 0, &q.wait},
	} {
		if *f.to, err = num(f.attr, f.def); err != nil {
			return nil, err
		}
	}
	// A queue made when the server took larger messages keeps them no
	// larger than the server takes now.
	q.maxSize = min(q.maxSize, h.cfg.MaxMessageBytes)
	q.contentDedup = sq.Attributes[attrContentDedup] == "true"
	q.groupScope = sq.Attributes[attrDeduplicationScope] == "messageGroup"
	if v := sq.Attributes[attrRedrivePolicy]; v != "" {
		var p struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     int    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, fmt.Errorf("spool: sqs queue %s: redrive policy %q: %w", sq.Queue, v, err)
		}
		_, target, ok := parseQueueARN(p.DeadLetterTargetArn)
		if !ok {
			return nil, fmt.Errorf("spool: sqs queue %s: redrive policy %q has no queue ARN", sq.Queue, v)
		}
		q.redriveTo, q.maxReceiveCount = target, p.MaxReceiveCount
	}
	return q, nil
}

// queue returns a live queue's settings by stored name, through a short
// cache (fresh skips it); nil when it has none or is deleted.
func (h *Handler) queue(ctx context.Context, stored string, fresh bool) (*queue, error) {
	now := h.cfg.Clock.Now()
	if !fresh {
		h.mu.Lock()
		c, ok := h.queues[stored]
		h.mu.Unlock()
		if ok && now.Sub(c.at) < h.cfg.QueueCacheFor {
			return c.q, nil
		}
	}
	sq, err := h.sq.GetSQSQueue(ctx, stored)
	var q *queue
	switch {
	case store.Code(err) == "not_found":
	case err != nil:
		return nil, err
	case !sq.Deleted():
		if q, err = h.queueOf(sq); err != nil {
			return nil, err
		}
	}
	h.remember(stored, q, now)
	return q, nil
}

// remember caches a queue's settings (nil: none).
func (h *Handler) remember(stored string, q *queue, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queues) > 100_000 { // a flood of made-up names must not grow it
		clear(h.queues)
	}
	h.queues[stored] = cachedQueue{q: q, at: now}
}

// queueFromURL returns the live queue a request's QueueUrl names, or
// QueueDoesNotExist: a URL of another account, a malformed one, or a queue
// without settings.
func (c *call) queueFromURL(u string) (*queue, error) {
	if u == "" {
		return nil, missing("QueueUrl")
	}
	account, name, ok := parseQueueURL(u)
	if !ok || account != c.sc.account || checkQueueName(name) != nil {
		return nil, newError(errQueueDoesNotExist, "The specified queue does not exist.")
	}
	stored, e := c.sc.stored(name)
	if e != nil {
		return nil, e
	}
	q, err := c.h.queue(c.ctx, stored, false)
	if err != nil {
		return nil, err
	}
	if q == nil {
		return nil, newError(errQueueDoesNotExist, "The specified queue does not exist.")
	}
	return q, nil
}

// checkAttributes checks attributes given to CreateQueue (create) or
// SetQueueAttributes, for a queue that is FIFO or not, and returns them
// as stored.
func (c *call) checkAttributes(attrs map[string]string, fifo, create bool) (map[string]string, *Error) {
	out := make(map[string]string, len(attrs))
	for name, v := range attrs {
		spec, ok := attrSpecs[name]
		switch {
		case !ok:
			return nil, newError(errInvalidAttrName, "Unknown Attribute %s.", name)
		case spec.createOnly && !create:
			return nil, newError(errInvalidAttrName, "Attribute %s can be set only when the queue is made.", name)
		case !spec.settable && !spec.createOnly:
			return nil, newError(errInvalidAttrName, "Attribute %s is read only.", name)
		case spec.fifoOnly && !fifo:
			return nil, newError(errInvalidAttrName, "Unknown Attribute %s: it belongs to FIFO queues.", name)
		}
		norm, e := spec.check(c, v)
		if e != nil {
			return nil, e
		}
		if norm == "" && create {
			continue // nothing set
		}
		out[name] = norm
	}
	return out, nil
}

// effective is the value of an attribute as GetQueueAttributes shows it:
// the stored one, else its default; "" when it has neither.
func (h *Handler) effective(q *queue, name string) string {
	if v, ok := q.attrs[name]; ok {
		return v
	}
	spec := attrSpecs[name]
	if spec.def == nil || spec.fifoOnly && !q.fifo {
		return ""
	}
	return spec.def(h, q)
}
