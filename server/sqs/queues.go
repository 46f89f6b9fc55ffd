package sqs

import (
	"encoding/base64"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spoolrun/spool/store"
)

// The queue actions: make, find, list, read and change queues. A queue's
// settings live in the store's SQS capability; its messages are the jobs
// of the queue of the same stored name.

// queueURLAnswer answers CreateQueue and GetQueueUrl.
type queueURLAnswer struct {
	QueueURL string `json:"QueueUrl"`
}

// empty answers the actions that answer nothing.
type empty struct{}

// deleteBatches bounds how many rounds of deleting a queue's jobs one
// request does before it leaves the rest to the upkeep loop.
const deleteBatches = 20

func (c *call) createQueue() (any, error) {
	var in struct {
		QueueName  string
		Attributes map[string]string
		Tags       map[string]string `json:"tags"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, missing("QueueName")
	}
	if e := checkQueueName(in.QueueName); e != nil {
		return nil, e
	}
	fifo := isFIFOName(in.QueueName)
	attrs := maps.Clone(in.Attributes)
	if v, ok := attrs[attrFifoQueue]; ok {
		b, e := boolean(c, v)
		switch {
		case e != nil:
			return nil, e
		case b == "true" && !fifo:
			return nil, invalid("The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.")
		case b == "false" && fifo:
			return nil, invalid("A queue whose name ends with .fifo is a FIFO queue: leave FifoQueue out or set it to true.")
		}
		delete(attrs, attrFifoQueue) // set below, from the name
	}
	stored, e := c.checkedAttributes(in.QueueName, attrs, fifo, true)
	if e != nil {
		return nil, e
	}
	if fifo {
		stored[attrFifoQueue] = "true"
	}
	if e := checkTags(in.Tags); e != nil {
		return nil, e
	}
	name, e := c.sc.stored(in.QueueName)
	if e != nil {
		return nil, e
	}
	if err := store.ValidName("queue", name, false); err != nil {
		return nil, invalid("The queue name is too long for the tenant %q: its stored name %q is over %d characters.", c.sc.tenant, name, store.MaxNameLen)
	}
	got, created, err := c.h.sq.CreateSQSQueue(c.ctx, store.SQSQueue{Queue: name, Attributes: stored, Tags: in.Tags})
	if err != nil {
		return nil, err
	}
	if got.Deleted() {
		return nil, newError(errQueueDeletedRecent, "The queue %s is being deleted: make it again once it is gone.", in.QueueName)
	}
	q, err := c.h.queueOf(got)
	if err != nil {
		return nil, err
	}
	if !created {
		for attr, v := range stored {
			if c.h.effective(q, attr) != v {
				return nil, newError(errQueueNameExists, "A queue already exists with the same name and a different value for attribute %s.", attr)
			}
		}
	}
	c.h.remember(name, q, c.h.cfg.Clock.Now())
	return queueURLAnswer{QueueURL: queueURL(c.h.baseURL(c.r), c.sc.account, in.QueueName)}, nil
}

// checkedAttributes checks attributes for queue name, and that a redrive
// policy's dead-letter queue is FIFO when the queue is, and is not the
// queue itself.
func (c *call) checkedAttributes(name string, attrs map[string]string, fifo, create bool) (map[string]string, *Error) {
	out, e := c.checkAttributes(attrs, fifo, create)
	if e != nil {
		return nil, e
	}
	if p := out[attrRedrivePolicy]; p != "" {
		target := redriveTarget(p)
		if isFIFOName(target) != fifo {
			return nil, newError(errInvalidAttrValue, "Value for parameter RedrivePolicy is invalid. Reason: the dead-letter queue of a %s queue must also be a %s queue.",
				map[bool]string{true: "FIFO", false: "standard"}[fifo], map[bool]string{true: "FIFO", false: "standard"}[fifo])
		}
		if target == name {
			return nil, newError(errInvalidAttrValue, "Value for parameter RedrivePolicy is invalid. Reason: a queue cannot be its own dead-letter queue.")
		}
	}
	return out, nil
}

// redriveTarget is the queue name a checked redrive policy names.
func redriveTarget(policy string) string {
	i := strings.Index(policy, `"deadLetterTargetArn":"`)
	if i < 0 {
		return ""
	}
	arn := policy[i+len(`"deadLetterTargetArn":"`):]
	arn = arn[:strings.IndexByte(arn, '"')]
	_, name, _ := parseQueueARN(arn)
	return name
}

// checkTags checks tags as SQS does: at most 50, keys of 1 to 128
// characters, values of at most 256.
func checkTags(tags map[string]string) *Error {
	if len(tags) > store.MaxSQSTags {
		return invalid("Too many tags: at most %d.", store.MaxSQSTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > store.MaxSQSTagKey || len(v) > store.MaxSQSTagValue {
			return invalid("Tag keys are 1 to %d characters and tag values at most %d.", store.MaxSQSTagKey, store.MaxSQSTagValue)
		}
	}
	return nil
}

func (c *call) getQueueURL() (any, error) {
	var in struct {
		QueueName              string
		QueueOwnerAWSAccountID string `json:"QueueOwnerAWSAccountId"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, missing("QueueName")
	}
	if (in.QueueOwnerAWSAccountID != "" && in.QueueOwnerAWSAccountID != c.sc.account) || checkQueueName(in.QueueName) != nil {
		return nil, newError(errQueueDoesNotExist, "The specified queue does not exist.")
	}
	if _, err := c.queueFromURL(queueURL("", c.sc.account, in.QueueName)); err != nil {
		return nil, err
	}
	return queueURLAnswer{QueueURL: queueURL(c.h.baseURL(c.r), c.sc.account, in.QueueName)}, nil
}

// listAnswer answers ListQueues.
type listAnswer struct {
	QueueURLs []string `json:"QueueUrls,omitempty"`
	NextToken string   `json:"NextToken,omitempty"`
}

// pageParams reads MaxResults and NextToken: the limit of a page and the
// stored name it starts after.
func (c *call) pageParams(maxResults *int, token string) (limit int, after string, paged bool, _ error) {
	limit = 1000
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 1000 {
			return 0, "", false, invalid("MaxResults must be from 1 to 1000.")
		}
		limit, paged = *maxResults, true
	}
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), c.sc.prefix) {
			return 0, "", false, invalid("Invalid NextToken.")
		}
		after = string(b)
	}
	return limit, after, paged, nil
}

// eachQueue walks the key's live queues whose SQS names start with prefix,
// after the stored name after, in name order, until fn returns false.
func (c *call) eachQueue(prefix, after string, fn func(q *store.SQSQueue, name string) bool) error {
	for {
		page, err := c.h.sq.ListSQSQueues(c.ctx, store.SQSQueueListParams{Prefix: c.sc.prefix + prefix, After: after, Limit: store.MaxListLimit})
		if err != nil {
			return err
		}
		for _, q := range page {
			after = q.Queue
			name := strings.TrimPrefix(q.Queue, c.sc.prefix)
			if q.Deleted() || strings.Contains(name, "/") || !c.sc.sees(name) {
				continue // another tenant's (under an operator's key), or the key may not see it
			}
			if !fn(q, name) {
				return nil
			}
		}
		if len(page) < store.MaxListLimit {
			return nil
		}
	}
}

func (c *call) listQueues() (any, error) {
	var in struct {
		QueueNamePrefix string
		NextToken       string
		MaxResults      *int
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	limit, after, paged, err := c.pageParams(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	if len(in.QueueNamePrefix) > maxQueueName {
		return nil, invalid("QueueNamePrefix is over %d characters.", maxQueueName)
	}
	var out listAnswer
	out.QueueURLs, out.NextToken, err = c.queueURLs(in.QueueNamePrefix, after, limit, paged, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queueURLs lists the URLs of up to limit queues whose names start with
// prefix, after the queue after, that keep (nil: every one) accepts, with
// the token of the next page when paged and there are more.
func (c *call) queueURLs(prefix, after string, limit int, paged bool, keep func(*store.SQSQueue) bool) (urls []string, next string, err error) {
	base := c.h.baseURL(c.r)
	more := false
	err = c.eachQueue(prefix, after, func(q *store.SQSQueue, name string) bool {
		if keep != nil && !keep(q) {
			return true
		}
		if len(urls) == limit {
			more = true
			return false
		}
		urls = append(urls, queueURL(base, c.sc.account, name))
		after = q.Queue
		return true
	})
	if more && paged {
		next = base64.RawURLEncoding.EncodeToString([]byte(after))
	}
	return urls, next, err
}

func (c *call) deleteQueue() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	if _, err := c.h.sq.UpdateSQSQueue(c.ctx, q.stored, store.SQSQueueUpdate{Delete: true}); err != nil {
		if store.Code(err) == "not_found" {
			return nil, newError(errQueueDoesNotExist, "The specified queue does not exist.")
		}
		return nil, err
	}
	c.h.remember(q.stored, nil, c.h.cfg.Clock.Now())
	// Its messages go now, or, for a large queue, in the upkeep loop; the
	// queue is gone from the API either way.
	if err := c.h.finishDelete(c.ctx, q.stored, deleteBatches); err != nil {
		c.h.cfg.Logger.Warn("spool serve: sqs: deleting a queue's messages: the upkeep loop finishes it", "queue", q.stored, "err", err)
	}
	return empty{}, nil
}

// attributesAnswer answers GetQueueAttributes.
type attributesAnswer struct {
	Attributes map[string]string `json:"Attributes,omitempty"`
}

func (c *call) getQueueAttributes() (any, error) {
	var in struct {
		QueueURL       string `json:"QueueUrl"`
		AttributeNames []string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, name := range in.AttributeNames {
		if name == attrAll {
			for _, n := range readOrder {
				want[n] = true
			}
			continue
		}
		if _, ok := attrSpecs[name]; !ok {
			return nil, newError(errInvalidAttrName, "Unknown Attribute %s.", name)
		}
		want[name] = true
	}
	out := attributesAnswer{Attributes: map[string]string{}}
	if want[attrApproxMessages] || want[attrApproxNotVisible] || want[attrApproxDelayed] {
		d, err := c.h.sq.CountQueueJobs(c.ctx, q.stored)
		if err != nil {
			return nil, err
		}
		for name, n := range map[string]int{attrApproxMessages: d.Available, attrApproxNotVisible: d.Running, attrApproxDelayed: d.Delayed} {
			if want[name] {
				out.Attributes[name] = strconv.Itoa(n)
			}
		}
	}
	for name := range want {
		switch name {
		case attrApproxMessages, attrApproxNotVisible, attrApproxDelayed:
		case attrQueueArn:
			out.Attributes[name] = queueARN(c.h.cfg.Region, c.sc.account, q.name)
		case attrCreatedTimestamp:
			out.Attributes[name] = strconv.FormatInt(q.created.Unix(), 10)
		case attrLastModified:
			out.Attributes[name] = strconv.FormatInt(q.updated.Unix(), 10)
		default:
			if v := c.h.effective(q, name); v != "" {
				out.Attributes[name] = v
			}
		}
	}
	return out, nil
}

func (c *call) setQueueAttributes() (any, error) {
	var in struct {
		QueueURL   string `json:"QueueUrl"`
		Attributes map[string]string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	if in.Attributes == nil {
		return nil, missing("Attributes")
	}
	attrs, e := c.checkedAttributes(q.name, in.Attributes, q.fifo, false)
	if e != nil {
		return nil, e
	}
	if len(attrs) == 0 {
		return empty{}, nil
	}
	got, err := c.h.sq.UpdateSQSQueue(c.ctx, q.stored, store.SQSQueueUpdate{Attributes: attrs})
	if err != nil {
		return nil, err
	}
	nq, err := c.h.queueOf(got)
	if err != nil {
		return nil, err
	}
	c.h.remember(q.stored, nq, c.h.cfg.Clock.Now())
	return empty{}, nil
}

func (c *call) purgeQueue() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	for {
		n, err := c.h.sq.DeleteQueueJobs(c.ctx, store.DeleteQueueJobsParams{Queue: q.stored})
		if err != nil {
			return nil, err
		}
		if n < store.DefaultPruneLimit {
			return empty{}, nil
		}
	}
}

// sourcesAnswer answers ListDeadLetterSourceQueues. Its member is queueUrls,
// lower case, as SQS's model spells it.
type sourcesAnswer struct {
	QueueURLs []string `json:"queueUrls"`
	NextToken string   `json:"NextToken,omitempty"`
}

func (c *call) listDeadLetterSourceQueues() (any, error) {
	var in struct {
		QueueURL   string `json:"QueueUrl"`
		NextToken  string
		MaxResults *int
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	dlq, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	limit, after, paged, err := c.pageParams(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	urls, next, err := c.queueURLs("", after, limit, paged, func(sq *store.SQSQueue) bool {
		return redriveTarget(sq.Attributes[attrRedrivePolicy]) == dlq.name
	})
	if err != nil {
		return nil, err
	}
	return sourcesAnswer{QueueURLs: append([]string{}, urls...), NextToken: next}, nil
}

func (c *call) tagQueue() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		Tags     map[string]string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, missing("Tags")
	}
	merged := maps.Clone(q.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, in.Tags)
	if e := checkTags(merged); e != nil {
		return nil, e
	}
	return c.updateTags(q, store.SQSQueueUpdate{Tags: in.Tags})
}

func (c *call) untagQueue() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		TagKeys  []string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	if len(in.TagKeys) == 0 {
		return nil, missing("TagKeys")
	}
	keys := slices.Compact(slices.Sorted(slices.Values(in.TagKeys)))
	if len(keys) > store.MaxSQSTags || slices.Contains(keys, "") {
		return nil, invalid("TagKeys takes 1 to %d non-empty keys.", store.MaxSQSTags)
	}
	return c.updateTags(q, store.SQSQueueUpdate{Untag: keys})
}

// updateTags applies a change of tags and caches the queue as it is then.
func (c *call) updateTags(q *queue, u store.SQSQueueUpdate) (any, error) {
	got, err := c.h.sq.UpdateSQSQueue(c.ctx, q.stored, u)
	if err != nil {
		return nil, err
	}
	nq, err := c.h.queueOf(got)
	if err != nil {
		return nil, err
	}
	c.h.remember(q.stored, nq, c.h.cfg.Clock.Now())
	return empty{}, nil
}

// tagsAnswer answers ListQueueTags.
type tagsAnswer struct {
	Tags map[string]string `json:"Tags,omitempty"`
}

func (c *call) listQueueTags() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return tagsAnswer{Tags: q.tags}, nil
}
