package demo

import (
	"context"
	"fmt"
	"os"

	"github.com/pgrotate/pgrotate/local/fleet"
)

// The bench's defaults: more rotations and tasks than a demo.
const (
	BenchRotations = 6
	BenchTasks     = 6
)

// Bench runs the demo once per strategy, alternating users first, with the same options
// otherwise (each run on servers of its own unless DSNs are given), and returns the
// reports in that order. It stops at the first run that cannot run.
func Bench(ctx context.Context, opts Options) ([]*Report, error) {
	if opts.AppBinary == "" {
		dir, err := os.MkdirTemp("", "pgrotate-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		if opts.Out != nil {
			fmt.Fprintf(opts.Out, "• building examples/app (go build; a minute or more the first time on a busy machine)…\n")
		}
		if opts.AppBinary, err = fleet.Build(ctx, dir); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	var reports []*Report
	for _, s := range []string{StrategyAlternating, StrategySingleUser} {
		o := opts
		o.Strategy = s
		rep, err := Run(ctx, o)
		if rep != nil {
			reports = append(reports, rep)
		}
		if err != nil {
			return reports, fmt.Errorf("bench %s: %w", s, err)
		}
		if o.Out != nil {
			rep.WriteSummary(o.Out)
		}
	}
	return reports, nil
}
