// Command spool is the command-line interface to Spool, durable background
// jobs for Go: enqueue jobs, work them with any program, inspect jobs and
// dead letters, pause queues, manage recurring schedules, publish events and
// work durable subscriptions to them, and measure throughput.
//
// Run `spool --help` for the commands, and `spool demo` to see a mixed
// workload run end to end on a throwaway database.
//
// Exit codes: 0 ok, 1 the operation failed (a job not found, some items
// refused), 2 usage or invalid input, 3 version conflict (a schedule changed
// since it was read), 130 interrupted.
package main

import "os"

func main() {
	a := newApp(os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	ctx, stop := interruptContext(a.forceExit)
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
