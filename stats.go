package spool

import "github.com/spoolrun/spool/internal/settle"

// WorkerStats are a Worker's counters since NewWorker, for metrics and
// benchmarks. Get them with Worker.Stats.
type WorkerStats struct {
	// Settle counts the verdicts the worker wrote and how it batched them.
	Settle SettleStats

	// HandlersGivenUp counts the handlers still running past their timeout
	// plus WorkerConfig.TimeoutGrace, whose jobs the worker stopped
	// renewing and recorded as failed so they run again.
	HandlersGivenUp int64
	// HandlersStuck is how many of those are still running now. Each holds
	// an executor slot (and a goroutine) until it returns; a value that keeps
	// growing means handlers ignore their context.
	HandlersStuck int
}

// SettleStats count the verdicts (complete, fail, release, ...) a Worker
// handed to its settler, which writes them in batches. Average batch size is
// (Settled+Refused)/Flushes.
type SettleStats struct {
	Submitted int64 // verdicts handed to the settler
	Settled   int64 // verdicts the store applied
	Refused   int64 // verdicts the store refused per item, LockLost included
	LockLost  int64 // verdicts refused with ErrLockLost: the job was reaped, cancelled or claimed again
	Abandoned int64 // verdicts never applied: a permanent store error, or Stop ran out of time

	Batches         int64 // batches cut
	BatchesFull     int64 // ... because SettleBatch verdicts were waiting
	BatchesDelay    int64 // ... because the oldest had waited SettleDelay
	BatchesIdle     int64 // ... because a flush slot was free (a claim was about to be made)
	BatchesDeadline int64 // ... because a job's lock was about to end
	BatchesStop     int64 // ... because the worker was stopping

	Flushes      int64 // store calls that succeeded
	FlushErrors  int64 // store calls that failed as a whole; each retry counts
	LargestBatch int   // most verdicts in one batch

	Pending  int // verdicts waiting for a batch now
	InFlight int // verdicts in store calls (or their retries) now
}

// AverageBatch returns the mean number of verdicts per successful store call.
func (s SettleStats) AverageBatch() float64 {
	if s.Flushes == 0 {
		return 0
	}
	return float64(s.Settled+s.Refused) / float64(s.Flushes)
}

func settleStats(s settle.Stats) SettleStats {
	return SettleStats{
		Submitted:       s.Submitted,
		Settled:         s.Settled,
		Refused:         s.Refused,
		LockLost:        s.LockLost,
		Abandoned:       s.Abandoned,
		Batches:         s.Batches,
		BatchesFull:     s.BatchesFull,
		BatchesDelay:    s.BatchesDelay,
		BatchesIdle:     s.BatchesIdle,
		BatchesDeadline: s.BatchesDeadline,
		BatchesStop:     s.BatchesStop,
		Flushes:         s.Flushes,
		FlushErrors:     s.FlushErrors,
		LargestBatch:    s.LargestBatch,
		Pending:         s.Pending,
		InFlight:        s.InFlight,
	}
}
