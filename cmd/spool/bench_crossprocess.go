package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/internal/bench"
)

// crossProcess returns the run of `spool bench --mode cross-process`: the
// worker is this program again, as `spool --store URL bench worker`.
func (a *app) crossProcess(storeURL string, total int, f *benchFlags) func(context.Context, bench.Config) (*bench.Result, error) {
	return func(ctx context.Context, cfg bench.Config) (*bench.Result, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this program to run the worker: %w", err)
		}
		worker := exec.CommandContext(ctx, exe, "--store", storeURL, "bench", "worker", //nolint:gosec // this program, with arguments it made
			"--jobs", strconv.Itoa(total), "--workers", strconv.Itoa(f.workers), "--idle", f.idle.String())
		worker.Stderr = a.stderr
		worker.Env = append(os.Environ(), "SPOOL_STORE=") // --store decides
		return bench.CrossProcess(ctx, cfg, worker)
	}
}

// benchWorkerCmd is the worker process of `spool bench --mode
// cross-process`; people do not run it.
func (a *app) benchWorkerCmd() *cobra.Command {
	var (
		jobs, workers int
		idle          time.Duration
	)
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "The worker process of bench --mode cross-process",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.openOrCreate(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			return bench.WorkerProcess(cmd.Context(), bench.Config{Store: st, Jobs: jobs, Workers: workers}, idle, a.stdout)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&jobs, "jobs", 1, "jobs to work before idling")
	fl.IntVar(&workers, "workers", 100, "jobs running at once")
	fl.DurationVar(&idle, "idle", 0, "how long to measure the idle worker's CPU")
	return cmd
}
