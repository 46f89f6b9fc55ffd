package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A batch delivery's payload is binary, made to be written and read
// quickly: BatchCountDigits ASCII digits giving the number of events (so
// that SQL can count the events a batch carries: see BatchCountSQL), the
// format's version byte, then the topic and each event as length-prefixed
// fields. It is internal to Spool: producers never see it.
const (
	// BatchCountDigits is the width of the event count that starts a batch.
	BatchCountDigits = 6
	batchVersion     = 1
)

// EncodeBatch is the payload of a delivery job of several events of one
// topic (kind BatchKind).
func EncodeBatch(events []*Event) ([]byte, error) {
	if len(events) == 0 || len(events) > MaxBatchEvents {
		return nil, fmt.Errorf("spool: a batch has 1..%d events, not %d", MaxBatchEvents, len(events))
	}
	n := 16 + len(events[0].Topic)
	for _, e := range events {
		n += 64 + len(e.ID) + len(e.Kind) + len(e.Key) + len(e.Tenant) + len(e.Payload)
		for k, v := range e.Headers {
			n += 10 + len(k) + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = fmt.Appendf(b, "%0*d", BatchCountDigits, len(events))
	b = append(b, batchVersion)
	b = appendString(b, events[0].Topic)
	for _, e := range events {
		if e.Topic != events[0].Topic {
			return nil, errors.New("spool: a batch's events are of one topic")
		}
		b = binary.AppendVarint(b, e.Position)
		b = binary.AppendVarint(b, e.Version)
		b = binary.AppendVarint(b, e.PublishedAt.UnixMicro())
		b = appendString(b, e.ID)
		b = appendString(b, e.Kind)
		b = appendString(b, e.Key)
		b = appendString(b, e.Tenant)
		b = binary.AppendUvarint(b, uint64(len(e.Headers)))
		for k, v := range e.Headers {
			b = appendString(b, k)
			b = appendString(b, v)
		}
		b = appendString(b, string(e.Payload))
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// batchReader reads a batch payload, remembering the first error.
type batchReader struct {
	b   []byte
	err error
}

func (r *batchReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *batchReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *batchReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *batchReader) string() string { return string(r.bytes()) }

func (r *batchReader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated or malformed batch")
	}
	r.b = nil
}

func decodeBatch(b []byte) ([]*Event, error) {
	if len(b) < BatchCountDigits+1 {
		return nil, errors.New("too short for a batch")
	}
	count, err := strconv.Atoi(string(b[:BatchCountDigits]))
	if err != nil || count < 1 || count > MaxBatchEvents || b[BatchCountDigits] != batchVersion {
		return nil, fmt.Errorf("not a batch of format %d", batchVersion)
	}
	r := &batchReader{b: b[BatchCountDigits+1:]}
	topic := r.string()
	out := make([]*Event, count)
	for i := range out {
		e := &Event{Topic: topic, Position: r.varint(), Version: r.varint()}
		e.PublishedAt = time.UnixMicro(r.varint()).UTC()
		e.ID, e.Kind, e.Key, e.Tenant = r.string(), r.string(), r.string(), r.string()
		if h := r.uvarint(); h > 0 && h <= MaxHeaders {
			e.Headers = make(map[string]string, h)
			for range h {
				k := r.string()
				e.Headers[k] = r.string()
			}
		} else if h > MaxHeaders {
			r.fail()
		}
		if p := r.bytes(); len(p) > 0 {
			e.Payload = p
		}
		out[i] = e
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return out, r.err
}
