package sqs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"github.com/spoolrun/spool/store"
)

// A receipt handle names one delivery of a message: the job, the lock
// token of the claim that delivered it, the job's deliveries count at that
// claim, and a tag of the queue it came from. It is opaque to clients:
// unpadded base64url of
//
//	version (1) | job ID (16) | lock token (8) | deliveries (4) | queue tag (4)
//
// A handle is only as good as its lock token: a settle or renewal with it
// is refused once the job was claimed again, so a stale worker cannot
// delete or extend someone else's delivery. The token is a random 64-bit
// number the store made for that claim, never shown elsewhere, so a handle
// cannot be forged for a message one has not received.
type receipt struct {
	id         store.ID
	token      store.LockToken
	deliveries int
	tag        [4]byte
}

const (
	receiptVersion = 1
	receiptLen     = 1 + 16 + 8 + 4 + 4
)

// queueTag ties a handle to the queue it came from.
func queueTag(stored string) [4]byte {
	sum := sha256.Sum256([]byte(stored))
	return [4]byte(sum[:4])
}

// newReceipt is the handle of a claimed job of the queue stored.
func newReceipt(j *store.Job, stored string) string {
	b := make([]byte, 0, receiptLen)
	b = append(b, receiptVersion)
	b = append(b, j.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(j.LockToken))
	b = binary.BigEndian.AppendUint32(b, uint32(j.Deliveries)) //nolint:gosec // deliveries are at most store.MaxAttemptsLimit
	tag := queueTag(stored)
	b = append(b, tag[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseReceipt reads a handle given for the queue stored; ReceiptHandleIsInvalid
// when it is malformed or comes from another queue.
func parseReceipt(s, stored string) (receipt, *Error) {
	if s == "" {
		return receipt{}, missing("ReceiptHandle")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != receiptLen || b[0] != receiptVersion {
		return receipt{}, newError(errReceiptHandle, "The input receipt handle %q is not a valid receipt handle.", s)
	}
	var r receipt
	copy(r.id[:], b[1:17])
	r.token = store.LockToken(binary.BigEndian.Uint64(b[17:25])) //nolint:gosec // the bits of a token, as written
	r.deliveries = int(binary.BigEndian.Uint32(b[25:29]))
	copy(r.tag[:], b[29:33])
	if r.tag != queueTag(stored) {
		return receipt{}, newError(errReceiptHandle, "The input receipt handle %q is not a valid receipt handle for this queue.", s)
	}
	return r, nil
}
