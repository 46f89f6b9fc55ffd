// Package examples holds Spool's examples: orders (domain events in Go, in
// its own folder) and workers in other languages that use spool serve's
// HTTP API: python/worker.py and node/worker.mjs. Its test runs each of
// them against a real spool serve and checks what they did through the API.
package examples
