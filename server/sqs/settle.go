package sqs

import (
	"errors"
	"time"

	"github.com/spoolrun/spool/store"
)

// Settling: deleting a message completes its job; changing its visibility
// renews the lock, or, at 0, snoozes the job so it is visible at once.
// Each is fenced by the receipt handle's lock token: a handle from an
// earlier receive is refused once the message was received again.

// handleEntry is an entry of a batch that names receipt handles.
type handleEntry struct {
	ID                string `json:"Id"`
	ReceiptHandle     string
	VisibilityTimeout *int
}

// batchAnswer answers DeleteMessageBatch and ChangeMessageVisibilityBatch.
type batchAnswer struct {
	Successful []batchOK      `json:"Successful"`
	Failed     []batchFailure `json:"Failed"`
}

type batchOK struct {
	ID string `json:"Id"`
}

func (c *call) deleteMessage() (any, error) {
	var in struct {
		QueueURL      string `json:"QueueUrl"`
		ReceiptHandle string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	r, e := parseReceipt(in.ReceiptHandle, q.stored)
	if e != nil {
		return nil, e
	}
	errs, err := c.deleteReceipts(q, []receipt{r})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	return empty{}, nil
}

func (c *call) deleteMessageBatch() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		Entries  []handleEntry
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return c.batch(in.QueueURL, in.Entries, func(q *queue, rs []receipt, _ []handleEntry) ([]*Error, error) {
		return c.deleteReceipts(q, rs)
	})
}

// batch runs a batch of handle entries: it checks the entries, answers
// those whose handles are malformed, and runs do on the others.
func (c *call) batch(queueURL string, entries []handleEntry, do func(q *queue, rs []receipt, es []handleEntry) ([]*Error, error)) (any, error) {
	q, err := c.queueFromURL(queueURL)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(entries))
	for i := range entries {
		ids[i] = entries[i].ID
	}
	if e := checkBatch(ids); e != nil {
		return nil, e
	}
	out := batchAnswer{Successful: []batchOK{}, Failed: []batchFailure{}}
	var (
		rs []receipt
		es []handleEntry
	)
	for _, en := range entries {
		r, e := parseReceipt(en.ReceiptHandle, q.stored)
		if e != nil {
			out.Failed = append(out.Failed, failure(en.ID, e))
			continue
		}
		rs, es = append(rs, r), append(es, en)
	}
	if len(rs) == 0 {
		return out, nil
	}
	errs, err := do(q, rs, es)
	if err != nil {
		return nil, err
	}
	for i, en := range es {
		if errs[i] != nil {
			out.Failed = append(out.Failed, failure(en.ID, errs[i]))
		} else {
			out.Successful = append(out.Successful, batchOK{ID: en.ID})
		}
	}
	return out, nil
}

// deleteReceipts deletes the messages of receipt handles and answers each:
// nil when the message is deleted (now, or before: a delete retried, or a
// message gone), ReceiptHandleIsInvalid when it was received again since
// the handle's receive.
func (c *call) deleteReceipts(q *queue, rs []receipt) ([]*Error, error) {
	vs := make([]store.Verdict, len(rs))
	for i, r := range rs {
		vs[i] = store.Verdict{ID: r.id, Token: r.token, Outcome: store.Complete}
	}
	errs, err := c.h.st.Settle(c.ctx, vs)
	if err != nil {
		return nil, err
	}
	out := make([]*Error, len(rs))
	// A lock the reaper took back (visibility over), or a message made
	// visible again (ChangeMessageVisibility to 0): the handle still
	// deletes it while no one has received it since, as in SQS.
	var lost []int
	var ds []store.Delivery
	for i, err := range errs {
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
		case errors.Is(err, store.ErrLockLost):
			lost = append(lost, i)
			ds = append(ds, store.Delivery{ID: rs[i].id, Queue: q.stored, Deliveries: rs[i].deliveries})
		default:
			out[i] = asError(err)
		}
	}
	if len(ds) == 0 {
		return out, nil
	}
	errs, err = c.h.sq.CompleteUnclaimed(c.ctx, ds)
	if err != nil {
		return nil, err
	}
	for k, err := range errs {
		i := lost[k]
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
		case errors.Is(err, store.ErrLockLost):
			out[i] = newError(errReceiptHandle, "The receipt handle has expired: the message was received again since (or settled by another receipt).")
		default:
			out[i] = asError(err)
		}
	}
	return out, nil
}

func (c *call) changeMessageVisibility() (any, error) {
	var in struct {
		QueueURL          string `json:"QueueUrl"`
		ReceiptHandle     string
		VisibilityTimeout *int
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q, err := c.queueFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	r, e := parseReceipt(in.ReceiptHandle, q.stored)
	if e != nil {
		return nil, e
	}
	errs, err := c.changeVisibility(q, []receipt{r}, []handleEntry{{ReceiptHandle: in.ReceiptHandle, VisibilityTimeout: in.VisibilityTimeout}})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	return empty{}, nil
}

func (c *call) changeMessageVisibilityBatch() (any, error) {
	var in struct {
		QueueURL string `json:"QueueUrl"`
		Entries  []handleEntry
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return c.batch(in.QueueURL, in.Entries, c.changeVisibility)
}

// changeVisibility sets the visibility timeouts of receipt handles from
// now: a positive one renews the lock (fenced by the handle's token), 0
// snoozes the job so it is visible at once, its receive count kept. Each
// is answered: nil, MessageNotInflight for a message whose visibility
// timeout is over and that no one has received since, or
// ReceiptHandleIsInvalid when it was received again or deleted.
func (c *call) changeVisibility(q *queue, rs []receipt, es []handleEntry) ([]*Error, error) {
	out := make([]*Error, len(rs))
	var (
		renewals     []store.Renewal
		snoozes      []store.Verdict
		renewI, snzI []int
	)
	for i, r := range rs {
		v := es[i].VisibilityTimeout
		switch {
		case v == nil:
			out[i] = missing("VisibilityTimeout")
		case *v < 0 || *v > maxVisibilityTimeout:
			out[i] = invalid("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and %d.", *v, maxVisibilityTimeout)
		case *v == 0:
			snoozes = append(snoozes, store.Verdict{ID: r.id, Token: r.token, Outcome: store.Snooze})
			snzI = append(snzI, i)
		default:
			renewals = append(renewals, store.Renewal{ID: r.id, Token: r.token, LockFor: time.Duration(*v) * time.Second})
			renewI = append(renewI, i)
		}
	}
	for _, op := range []struct {
		idx []int
		run func() ([]error, error)
	}{
		{renewI, func() ([]error, error) { return c.h.st.Renew(c.ctx, renewals) }},
		{snzI, func() ([]error, error) { return c.h.st.Settle(c.ctx, snoozes) }},
	} {
		if len(op.idx) == 0 {
			continue
		}
		errs, err := op.run()
		if err != nil {
			return nil, err
		}
		for k, err := range errs {
			if err != nil {
				i := op.idx[k]
				out[i] = c.whyNotInflight(q, rs[i], err)
			}
		}
	}
	return out, nil
}

// whyNotInflight explains a refused renewal or snooze of a receipt.
func (c *call) whyNotInflight(q *queue, r receipt, err error) *Error {
	if !errors.Is(err, store.ErrLockLost) && !errors.Is(err, store.ErrNotFound) {
		return asError(err)
	}
	j, gerr := c.h.st.Get(c.ctx, r.id)
	switch {
	case gerr != nil && !errors.Is(gerr, store.ErrNotFound):
		return asError(gerr)
	case gerr != nil || j.Queue != q.stored || j.State.Finished():
		return newError(errReceiptHandle, "The receipt handle is invalid: its message was deleted.")
	case j.Deliveries == r.deliveries && j.State != store.StateRunning:
		return newError(errMessageNotInflight, "The message referred to is not in flight: its visibility timeout is over.")
	}
	return newError(errReceiptHandle, "The receipt handle has expired: the message was received again since.")
}
