// Package wire is Spool's one vocabulary for talking to things outside a Go
// process: the JSON the spool command prints with --json, and the HTTP API,
// dashboard and remote store built on the same forms. Keeping them in one
// package is what stops the command line and the API from drifting apart.
//
// It owns:
//
//   - Views: the JSON forms of jobs, queue statistics, schedules (with their
//     runs and next slots), enqueue results, and events, topics and
//     subscriptions with their lag (Job, QueueStats, Schedule,
//     ScheduleDetail, Event, Subscription, ...). IDs and lock tokens are strings, because
//     JavaScript numbers cannot hold 64 bits; times are RFC 3339 in UTC;
//     field names are snake_case and stable, since scripts depend on them.
//   - Contract inputs: the wire forms of what the API takes (EnqueueParams,
//     ClaimParams, Renewal, Verdict, with outcomes as text), converted to
//     and from the store's types, and decoders (DecodeEnqueue, DecodeClaim,
//     DecodeRenew, DecodeSettle) that refuse unknown fields and bad values
//     with errors matching store.ErrInvalid.
//   - The error catalog: each of the store's sentinel and typed errors, its
//     stable code, HTTP status and CLI exit code, in one table (Catalog).
//     ErrorOf encodes any error as an Error, carrying the typed fields
//     (field, reason, limit, got, index, state, resource, name, want,
//     current, ...); Error.Err decodes it back into an error on which
//     errors.Is and errors.As work as they did on the original. An error
//     outside the catalog is encoded as "internal" with a generic message,
//     so SQL, stack traces and connection details never leave the process.
//   - Per-item results: a batch call's answers as an array, one Item per
//     input ({"index": 0, "ok": true} or {"index": 1, "error": {...}}),
//     rather than a joined error.
//
// The package depends on store and schedule only, never on the root
// package, so a remote store can use it without pulling in the worker.
package wire
