// Package schedule holds the pure logic of Spool's recurring schedules: spec
// parsing, time zones, slot arithmetic, misfire decisions, validation, the
// keep-next-slot rule and run keys. It reads and writes no storage: the
// model and the store contract live in package store (store.Schedule,
// store.ScheduleStore), and internal/engine fires schedules on this logic
// for every backend.
//
// # Specs
//
// A spec is a cron expression (5 fields, or 6 with a leading seconds field), a
// descriptor (@yearly, @monthly, @weekly, @daily, @hourly and their aliases) or
// a fixed interval ("@every 90s"). ParseSpec parses them with
// github.com/netresearch/go-cron, a maintained fork of robfig/cron v3. When
// both day of month and day of week are restricted, a day matching either
// fires, as in POSIX cron. A spec that can never fire (30 February) is
// refused. The time zone is never part of the spec: it is the schedule's Zone,
// an IANA name loaded by LoadZone from the embedded zone database.
//
// # Daylight saving time
//
// A cron spec names wall-clock slots in the schedule's zone. Where the clock
// jumps, Spool follows these rules, the same in every zone:
//
//   - A slot that does not exist (in the spring-forward gap, such as 02:30 on
//     8 March 2026 in America/New_York) fires once, at the first instant after
//     the gap: 03:00 local time. Several slots in one gap ("*/15" between 02:00
//     and 03:00) fire once between them, and not again if 03:00 is itself a slot.
//   - A slot that occurs twice (in the fall-back overlap, such as 01:30 on
//     1 November 2026 in America/New_York) fires once, at its first occurrence
//     (01:30 EDT). This holds for every slot: "0 * * * *" fires at 01:00 EDT
//     and next at 02:00 EST, two hours later.
//
// Put differently: every wall-clock slot fires exactly once, and slots never
// fire out of order. A schedule that must run at a steady pace through clock
// changes should use "@every": intervals are absolute durations, unaffected
// by DST or the zone.
//
// # Slots and modes
//
// Spec.Next returns the first slot strictly after an instant; Spec.Slots lists
// slots in a range. Slots are whole seconds. "@every d" is anchored at the
// instant it is counted from, so a schedule's slots are its first slot plus
// multiples of d (ModeFixedRate). Under ModeFixedDelay the next slot is d after
// the previous run completes (Spec.NextAfterCompletion); fixed delay needs an
// "@every" spec.
//
// # Misfires
//
// When a scheduler reaches a schedule late — all schedulers were down, say —
// Plan decides what fires. Due slots no older than a grace period (a minute
// by default) are on time and always fire. Older ones are missed, and the
// schedule's Misfire policy applies:
//
//   - MisfireRunOnce (default): one run, for the newest missed slot (none if a
//     slot is on time, since that run covers the backlog); the rest are dropped.
//   - MisfireSkip: no run for missed slots.
//   - MisfireCatchUp: a run for each missed slot, oldest first, up to CatchUpMax
//     of the newest; older ones are dropped.
//
// Either way the schedule continues from the first slot after now, and
// Firing.Dropped counts the slots that were not run.
//
// # Overlap
//
// The Overlap policy says what a store does with a slot that comes due while
// the schedule's previous run is still live (queued, running or awaiting a
// retry). Stores track the live run by job id, and the run's settlement
// releases the schedule in the statement that finishes the job:
//
//   - OverlapSkip (default): the slot is skipped and counted; when the live
//     run settles, the schedule is released and the next slot fires normally.
//   - OverlapQueueOne: one run may wait behind the live one; further slots are
//     skipped and counted.
//   - OverlapAllow: every slot is enqueued.
//
// # Run keys
//
// Each run is enqueued under RunKey(id, tenant, slot), a deterministic key
// built from the schedule and the slot time in UTC. Schedulers that race, or
// one that crashes mid-batch and is retried, compute the same keys, so the
// store's unique-key check refuses a second enqueue of the same slot; moving
// next_run_at in the same transaction keeps it from being tried again.
//
// # Stores
//
// store.ScheduleStore is the contract; Decide is the decision the engine
// makes for each due schedule, on every backend, so they all fire alike.
// Applications use schedules through spool.Client.Schedules, and a
// spool.Worker fires them.
package schedule
