package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// slotLayout writes a slot in UTC to the second: slots are whole seconds, so
// two slots of one schedule never share a key.
const slotLayout = "2006-01-02T15:04:05Z"

// keyEscaper escapes the separator (and the escape character) so that the
// parts of a key cannot run into each other: tenant "a:b" with id "c" and
// tenant "a" with id "b:c" get different keys.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// RunKey returns the unique key of the run a schedule enqueues for a slot:
//
//	sched:<tenant>:<id>:<slot>
//
// with ':' and '%' in the tenant and id percent-escaped and the slot in UTC
// RFC 3339 to the second, e.g. "sched:acme:nightly-report:2026-03-08T07:00:00Z".
// The same schedule and slot always give the same key, so a store that
// enqueues runs under it never enqueues a slot twice, even when schedulers
// race or one crashes mid-batch and another retries.
//
// Keys are at most store.MaxKeyLen bytes: when the readable form would be
// longer, the tenant and id are replaced by a SHA-256 of them,
// "sched#<64 hex digits>:<slot>". '#' cannot appear in a tenant, so the two
// forms never collide.
func RunKey(scheduleID, tenant string, slot time.Time) string {
	at := slot.UTC().Format(slotLayout)
	key := "sched:" + keyEscaper.Replace(tenant) + ":" + keyEscaper.Replace(scheduleID) + ":" + at
	if len(key) <= store.MaxKeyLen {
		return key
	}
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(scheduleID))
	return "sched#" + hex.EncodeToString(h.Sum(nil)) + ":" + at
}
