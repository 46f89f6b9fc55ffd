// Command peers runs the same workloads on Spool (SQLite and PostgreSQL),
// River, Asynq, goqite and NATS JetStream, and prints a markdown table.
//
//	go run ./cmd/peers                   # tables on stdout, progress on stderr
//	go run ./cmd/peers -json             # the whole report as JSON on stdout
//	go run ./cmd/peers -out ../docs      # also write benchmarks-peers.md and benchmarks.png there
//	go run ./cmd/peers -only spool-sqlite,river -jobs 10000 -duration 5s
//	go run ./cmd/peers -workloads events # only the events workloads (pub/sub, durable subscriptions)
//
// The job workloads run on the systems of -only that are job systems, the
// events workloads on those that are event systems (peers.EventSystemKeys;
// the NATS ones embed nats-server, so they need no server running).
//
// A system whose server does not answer is skipped with a line saying so.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spoolrun/spool/bench/peers"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// systemKeys are the job systems' names -only accepts, in run order; the
// event systems' follow them (peers.EventSystemKeys).
var systemKeys = []string{"spool-sqlite", "spool-postgres", "river", "asynq", "goqite", "nats"}

// workloadKeys are the names -workloads accepts.
var workloadKeys = []string{"jobs", "events"}

func run() error {
	var (
		cfg       peers.Config
		allKeys   = append(slices.Clone(systemKeys), peers.EventSystemKeys()...)
		only      = flag.String("only", strings.Join(allKeys, ","), "comma-separated systems to run: "+strings.Join(allKeys, ", "))
		workloads = flag.String("workloads", strings.Join(workloadKeys, ","), "comma-separated workloads to run: jobs (enqueue, burn-down, continuous), events (publish, event burn-down, event continuous)")
		pgURL     = flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL URL of an existing database; each workload creates and drops a database of its own")
		redis     = flag.String("redis", "127.0.0.1:6379", "Redis address for Asynq")
		redisDB   = flag.Int("redis-db", 13, "Redis database number for Asynq; it is FLUSHED before and after each workload")
		natsURL   = flag.String("nats", "nats://127.0.0.1:4222", "NATS URL (JetStream enabled)")
		tmp       = flag.String("tmp", "", "directory for the SQLite files and the embedded NATS stores (default: the system's temp dir)")
		out       = flag.String("out", "", "if set, write benchmarks-peers.md and benchmarks.png into this directory")
		asJSON    = flag.Bool("json", false, "print the report as JSON instead of the markdown table")
		command   = flag.String("command", "", "how the run was started, for the report (default: this command line)")
		failRows  = flag.Bool("strict", false, "exit non-zero when a workload fails (skipped systems do not count)")
	)
	flag.IntVar(&cfg.Jobs, "jobs", 100_000, "jobs in the enqueue and burn-down workloads")
	flag.IntVar(&cfg.Batch, "batch", 100, "jobs per enqueue call in the enqueue workload, events per publish call in the publish workload")
	flag.IntVar(&cfg.Workers, "workers", 100, "concurrency of every system (for events: workers per subscription)")
	flag.IntVar(&cfg.Rate, "rate", 1_000, "continuous workloads' rate, jobs/s or events/s")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "continuous workloads' duration")
	flag.IntVar(&cfg.Producers, "producers", 16, "goroutines making the continuous workloads' enqueue or publish calls")
	flag.DurationVar(&cfg.Timeout, "timeout", 90*time.Second, "limit on the enqueue (publish) and on the burn-down work phase, each; a system still running then is reported incomplete")
	flag.DurationVar(&cfg.Drain, "drain", 30*time.Second, "how long the continuous workloads wait for their last jobs or deliveries")
	flag.IntVar(&cfg.Events, "events", 100_000, "events in the publish and event burn-down workloads")
	flag.IntVar(&cfg.Subscriptions, "subscriptions", 3, "durable subscriptions on the events workloads' topic")
	flag.Parse()

	runJobs, runEvents := false, false
	for w := range strings.SplitSeq(*workloads, ",") {
		switch strings.TrimSpace(w) {
		case "jobs":
			runJobs = true
		case "events":
			runEvents = true
		default:
			return fmt.Errorf("-workloads: unknown workload %q (known: %s)", w, strings.Join(workloadKeys, ", "))
		}
	}

	source, commit := spoolSource()
	spoolPG := peers.NewSpoolPostgres(*pgURL)
	spoolPG.Source = commit
	all := map[string]peers.System{
		"spool-sqlite":   &peers.SpoolSQLite{Dir: *tmp, Source: commit},
		"spool-postgres": spoolPG,
		"river":          peers.NewRiver(*pgURL),
		"asynq":          &peers.Asynq{Addr: *redis, DB: *redisDB},
		"goqite":         &peers.Goqite{Dir: *tmp},
		"nats":           &peers.JetStream{URL: *natsURL},
	}
	var systems []peers.System
	var eventKeys []string
	for key := range strings.SplitSeq(*only, ",") {
		key = strings.TrimSpace(key)
		if sys, ok := all[key]; ok {
			if runJobs {
				systems = append(systems, sys)
			}
			continue
		}
		if !slices.Contains(peers.EventSystemKeys(), key) {
			return fmt.Errorf("-only: unknown system %q (known: %s)", key, strings.Join(allKeys, ", "))
		}
		if runEvents && !slices.Contains(eventKeys, key) {
			eventKeys = append(eventKeys, key)
		}
	}
	slices.SortStableFunc(systems, func(a, b peers.System) int {
		return slices.Index(systemKeys, keyOf(all, a)) - slices.Index(systemKeys, keyOf(all, b))
	})
	slices.SortStableFunc(eventKeys, func(a, b string) int {
		return slices.Index(peers.EventSystemKeys(), a) - slices.Index(peers.EventSystemKeys(), b)
	})
	var eventSystems []peers.EventSystem
	for _, key := range eventKeys {
		sys, _ := peers.NewEventSystem(key, peers.EventOptions{Dir: *tmp, PostgresURL: *pgURL, Source: commit})
		eventSystems = append(eventSystems, sys)
	}
	if len(systems)+len(eventSystems) == 0 {
		return fmt.Errorf("nothing to run: -only %q has no system for -workloads %q", *only, *workloads)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Log = os.Stderr
	rep := &peers.Report{
		Started: time.Now(),
		Command: cmp.Or(*command, "bench/cmd/peers "+strings.Join(os.Args[1:], " ")),
		Machine: peers.DescribeMachine(),
		Spool:   source,
	}
	fmt.Fprintf(os.Stderr, "peers: %d job systems, %d event systems; load average %s\n", len(systems), len(eventSystems), rep.Machine.LoadBefore)
	if len(systems) > 0 {
		rows, err := peers.Run(ctx, cfg, systems)
		if err != nil {
			return err
		}
		rep.Rows = rows
	}
	if len(eventSystems) > 0 {
		rows, err := peers.RunEvents(ctx, cfg, eventSystems)
		if err != nil {
			return err
		}
		rep.Events = rows
	}
	rep.Config = cfg // every field was set by a flag
	rep.Config.Log = nil
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Machine.LoadAfter = peers.LoadAverage()

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if len(rep.Rows) > 0 {
			fmt.Println(rep.Table())
		}
		if len(rep.Events) > 0 {
			fmt.Println(rep.EventsTable())
		}
	}
	fmt.Fprintf(os.Stderr, "peers: done in %s; load average %s\n", time.Since(rep.Started).Round(time.Second), rep.Machine.LoadAfter)

	if *out != "" {
		chart, chartName := filepath.Join(*out, "benchmarks.png"), "benchmarks.png"
		if err := peers.WriteChart(rep, chart); err != nil {
			fmt.Fprintf(os.Stderr, "peers: no chart: %v\n", err)
			chart, chartName = "no chart", ""
		}
		doc := filepath.Join(*out, "benchmarks-peers.md")
		if err := os.WriteFile(doc, []byte(rep.Document(chartName)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "peers: wrote %s (%s)\n", doc, chart)
	}
	if *failRows {
		for _, r := range rep.Rows {
			for _, m := range []*peers.Measure{r.Enqueue, r.BurnDown, r.Continuous} {
				if r.Skipped == "" && !m.OK() {
					return fmt.Errorf("%s: a workload failed", r.System)
				}
			}
		}
		for _, r := range rep.Events {
			if r.Skipped == "" && (!r.Publish.OK() || !r.BurnDown.OK() || !r.Continuous.OK()) {
				return fmt.Errorf("%s: an events workload failed", r.System)
			}
		}
	}
	return nil
}

func keyOf(all map[string]peers.System, s peers.System) string {
	for k, v := range all {
		if v == s {
			return k
		}
	}
	return ""
}

// spoolSource names the Spool source benchmarked: the working tree the
// bench module replaces Spool with (its parent directory), its commit and
// whether it has uncommitted changes. commit is short, for the table.
func spoolSource() (source, commit string) {
	rev, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "the working tree (commit unknown)", ""
	}
	commit = strings.TrimSpace(string(rev))
	source = "the working tree at commit " + commit
	if st, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		source += ", with uncommitted changes"
		commit += "+changes"
	}
	return source, commit
}
