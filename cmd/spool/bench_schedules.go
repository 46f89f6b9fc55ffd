package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/internal/bench"
)

const benchSchedulesLong = `Bench schedules measures recurring schedules at scale, on a throwaway
database (as bench does):

  1. create --schedules hourly schedules over --tenants tenants, in batches
     of --batch, each at its own second of the hour, and time it;
  2. start a scheduler, fire the slots that passed during creation, then
     measure for --steady how late each slot is enqueued (about 278 firings/s
     for a million schedules);
  3. create --burst more schedules all due in the same second and time how
     long it takes until every one of their runs is enqueued.

Lateness is from the slot to the moment the store acknowledged the run
durably. Peak RSS is the whole process: scheduler, store and benchmark.`

const benchSchedulesExample = `  spool bench schedules
  spool bench schedules --schedules 100000 --burst 10000 --steady 20s
  spool bench schedules --store postgres://localhost/app --json`

func (a *app) benchSchedulesCmd() *cobra.Command {
	var cfg bench.ScheduleConfig
	cmd := &cobra.Command{
		Use:     "schedules [flags]",
		Short:   "Measure schedule creation, firing lateness and a same-second burst",
		Long:    benchSchedulesLong,
		Example: benchSchedulesExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Schedules < 1 || cfg.Tenants < 1 || cfg.Batch < 1 || cfg.Steady <= 0 || cfg.Burst < 0 {
				return usagef("--schedules, --tenants, --batch and --steady must be positive, --burst not negative")
			}
			if cfg.Burst == 0 {
				cfg.Burst = -1
			}
			st, where, cleanup, err := a.scratchStore(cmd, "spool_bench", false)
			if err != nil {
				return err
			}
			defer cleanup()
			ss := st.Capabilities().Schedules
			if ss == nil {
				return usagef("the store at %s does not keep schedules", where)
			}
			cfg.Store = ss
			var bar progress
			phase := ""
			cfg.Progress = func(p string, done, total int) {
				if p != phase {
					if bar != nil {
						bar.Finish()
					}
					phase, bar = p, a.newProgress(total, p)
				}
				bar.Set(done)
			}
			res, err := bench.Schedules(cmd.Context(), cfg)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(res)
				return nil
			}
			w := a.stdout
			fmt.Fprintf(w, "schedules on %s: %d schedules over %d tenants\n", where, res.Schedules, res.Tenants)
			fmt.Fprintf(w, "  create:        %.1fs (%.0f schedules/s, batches of %d)\n", res.CreateSeconds, res.CreatePerSec, cfg.Batch)
			fmt.Fprintf(w, "  backlog:       %d runs due at start, fired in %.1fs\n", res.BacklogRuns, res.BacklogSeconds)
			if l := res.SteadyLatenessMS; l != nil {
				fmt.Fprintf(w, "  steady state:  %d runs in %s (%.0f/s), %d slots missing\n", res.SteadyRuns, time.Duration(res.SteadySeconds*float64(time.Second)), res.SteadyPerSec, res.SteadyMissedSlots)
				fmt.Fprintf(w, "  lateness (ms): p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", l.P50, l.P95, l.P99, l.Max)
			}
			if res.BurstSchedules > 0 {
				fmt.Fprintf(w, "  burst:         %d schedules due in one second (created in %.1fs): all %d runs enqueued %.2fs after the slot\n",
					res.BurstSchedules, res.BurstCreateSecond, res.BurstRuns, res.BurstSeconds)
			}
			fmt.Fprintf(w, "  FireDue:       %d calls, %.1f schedules and %.1f ms each on average\n", res.FireCalls, res.FireBatchMean, res.FireMSAvg)
			fmt.Fprintf(w, "  peak RSS:      %.0f MiB (whole process)\n", res.PeakRSSMiB)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Schedules, "schedules", 1_000_000, "hourly schedules to create")
	fl.IntVar(&cfg.Tenants, "tenants", 1_000, "tenants to spread them over")
	fl.IntVar(&cfg.Batch, "batch", 1_000, "schedules per upsert call")
	fl.DurationVar(&cfg.Steady, "steady", 60*time.Second, "how long to measure steady-state lateness")
	fl.IntVar(&cfg.Burst, "burst", 100_000, "schedules due in the same second (0: skip)")
	return cmd
}
