package peers

import (
	"bytes"
	"strconv"
)

// The payload every system carries: {"seq":N,"enq":T}, where T is when the
// job's enqueue began, in nanoseconds since the harness's base time (a
// monotonic clock, so the latency is immune to wall-clock steps).

// encodePayload returns the payload of job seq enqueued at enq.
func encodePayload(seq, enq int64) []byte {
	b := make([]byte, 0, 48)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"enq":`...)
	b = strconv.AppendInt(b, enq, 10)
	return append(b, '}')
}

// payloadEnq returns the "enq" field of a payload. It accepts the payload as
// stored by any system, including PostgreSQL's jsonb rendering (spaces after
// colons, keys reordered). ok is false when there is none.
func payloadEnq(p []byte) (enq int64, ok bool) {
	i := bytes.Index(p, []byte(`"enq"`))
	if i < 0 {
		return 0, false
	}
	p = p[i+len(`"enq"`):]
	p = bytes.TrimLeft(p, " \t\r\n")
	if len(p) == 0 || p[0] != ':' {
		return 0, false
	}
	p = bytes.TrimLeft(p[1:], " \t\r\n")
	n := 0
	for n < len(p) && (p[n] >= '0' && p[n] <= '9' || n == 0 && p[n] == '-') {
		n++
	}
	v, err := strconv.ParseInt(string(p[:n]), 10, 64)
	return v, err == nil
}
