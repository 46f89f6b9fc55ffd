// Package settle is the batched settler: it turns the verdicts a worker's
// handlers reach (complete, fail, cancel, ...) into as few store.Settle calls
// as the load allows, without ever letting a verdict outstay its job's lock.
//
// # Why batch
//
// A durable commit costs about a millisecond or two. Settling one verdict per
// call caps a worker near a thousand jobs a second; waiting for a fixed
// number of verdicts strands them under light load until their locks expire
// and the jobs are delivered again. The settler does neither.
//
// # Flush policy
//
// Verdicts wait in a FIFO buffer. A batch of up to Config.MaxBatch verdicts is
// cut from its head and sent in one Settle call as soon as any of these holds:
//
//   - the buffer holds MaxBatch verdicts (the batch is full);
//   - the oldest buffered verdict has waited MaxDelay (default 2ms): under
//     light load a verdict is durable within a few milliseconds;
//   - the earliest flush deadline has come: each verdict arrives with its
//     job's lockedUntil and must be flushed by lockedUntil minus a safety
//     margin (Config.Margin, or a tenth of the lock time left at Submit);
//   - the settler is stopping;
//   - with Config.FlushWhenIdle, a flush slot is free (see below).
//
// At most Config.MaxInFlight (default 2) Settle calls run at once. While they
// are busy, new verdicts keep accumulating, so the next batch is larger:
// under heavy load batch size grows toward MaxBatch by itself, and a slow
// store is answered with bigger batches rather than a longer queue of calls.
// Two calls in flight let one batch be written while the next is gathered
// and sent; SQLite's single writer then commits them back to back, and
// Postgres overlaps their round trips.
//
// MaxDelay is pure latency for a producer that waits for its verdict to be
// durable (SubmitWait) and caps such producers at about one verdict per
// MaxDelay plus a commit each. Config.FlushWhenIdle trades that for more,
// smaller calls: a batch is cut whenever a flush slot is free, and verdicts
// wait only while all MaxInFlight calls are busy. BenchmarkSettler measures
// both.
//
// # Failures
//
// A Settle call that fails as a whole is retried with exponential backoff
// (Config.RetryDelay doubling up to Config.MaxRetryDelay, with jitter); its
// verdicts are not put back in the buffer but stay with the retrying call.
// A retry is not postponed past the batch's flush deadline, and retries go on
// past the deadline too: a late settle is harmless, because the store refuses
// a stale lock token per item with store.ErrLockLost. Errors no retry can
// fix are not retried: store.ErrClosed, store.ErrInvalid (including
// store.ErrTooLarge) and store.ErrSchema. Their verdicts are reported with
// the error.
//
// Per-item refusals (store.ErrLockLost when the lock expired or the job was
// cancelled, store.ErrNotFound, a *store.ValidationError) are final for that
// verdict: they are logged as warnings, counted, reported through
// Config.OnResult and SubmitWait, and not retried.
//
// Every verdict Submit accepts is reported exactly once to Config.OnResult:
// with nil when the store applied it, or with the reason it was not. None is
// dropped silently. A verdict that could not be applied leaves its job
// locked until the lock expires; the reaper then makes it available again,
// so the job is delivered once more (at-least-once).
//
// # Backpressure
//
// The buffer holds at most Config.MaxPending verdicts. Submit blocks while it
// is full, which happens only when the store cannot keep up or is down, and
// returns early when its ctx ends or the settler stops.
//
// # Lifecycle
//
// The settler follows the startstop contract. Only Stop ends it: cancelling
// the ctx given to Start does not, because that would strand buffered
// verdicts. Stop refuses new verdicts, flushes every buffered one (retrying
// within Stop's ctx) and returns once all were settled or reported. If Stop's
// ctx ends first, in-flight calls are cancelled and the remaining verdicts
// are reported with an error matching ErrStopped.
package settle
