// Command pgrotate is the command-line tool of pgrotate.
//
//	pgrotate demo   the whole rotation on this machine, measured (see local/demo)
//	pgrotate bench  both strategies, more rotations and tasks, one comparison table
//
// Human output goes to stderr; `demo --json` and `bench` print their reports on stdout.
// No secret value is ever printed: --secrets-file is the only place the passwords go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgrotate/pgrotate/local/demo"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1 // a rotation failed, or alternating users saw a failed connection
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills pgrotate instead of waiting for the cleanup.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: pgrotate <command> [flags]

commands:
  demo    run rotations on this machine (PostgreSQL primary + replica, a fleet of app tasks,
          the real state machine) and prove that no connection fails
  bench   run both strategies with more rotations and tasks and print a comparison table

Run 'pgrotate <command> -h' for the command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pgrotate: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

// flags are the options demo and bench share.
type flags struct {
	opts    demo.Options
	json    bool
	verbose bool
}

func newFlags(name string, rotations, tasks int, stderr io.Writer) (*flag.FlagSet, *flags) {
	f := &flags{}
	fs := flag.NewFlagSet("pgrotate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &f.opts
	fs.IntVar(&o.Rotations, "rotations", rotations, "rotations to run")
	fs.IntVar(&o.Tasks, "tasks", tasks, "tasks (app processes) in the ECS service")
	fs.DurationVar(&o.Drain, "drain", demo.DefaultDrain, "how long a task may drain after SIGTERM")
	fs.StringVar(&o.PrimaryDSN, "primary-dsn", "", "admin connection string of a running primary (keyword/value or postgres:// URL); with --replica-dsn, no server is started")
	fs.StringVar(&o.ReplicaDSN, "replica-dsn", "", "connection string of its streaming replica (same TLS settings)")
	fs.StringVar(&o.AppDB, "app-db", "", "the application's database on those servers (default: the primary DSN's dbname)")
	fs.StringVar(&o.AppUser, "app-user", "app_user", "the first application login user (its alternate is <name>_clone)")
	fs.DurationVar(&o.ProbeInterval, "probe-interval", demo.DefaultProbeInterval, "time between two rounds of fresh probe logins")
	fs.Float64Var(&o.TimeScale, "time-scale", demo.DefaultTimeScale, "factor applied to the state machine's waits and retry intervals")
	fs.StringVar(&o.AppBinary, "app-binary", "", "a built examples/app (default: go build it from the pgrotate module)")
	fs.BoolVar(&f.verbose, "verbose", false, "also print the step handlers' and the tasks' log lines (stderr)")
	return fs, f
}

// parse parses args into f; when it returns false, the command exits with code.
func (f *flags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	if err := f.opts.Check(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitUsage, false
	}
	f.opts.Out = stderr
	if f.verbose {
		f.opts.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	return 0, true
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags("demo", demo.DefaultRotations, demo.DefaultTasks, stderr)
	fs.StringVar(&f.opts.Strategy, "strategy", demo.StrategyAlternating, "alternating (pgrotate) or single-user (the classic in-place rotation, as a baseline)")
	fs.StringVar(&f.opts.SecretsFile, "secrets-file", "", "write the secret store at the end, as JSON, to this file (mode 0600; it holds the passwords)")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fs.DurationVar(&f.opts.RetirePrevious, "retire-previous", 0, "retire the previous user's password this long after each redeploy completed (0: off); the report then lists AWSPREVIOUS as refused")
	if code, ok := f.parse(fs, args, stderr); !ok {
		return code
	}
	began := time.Now()
	rep, err := demo.Run(ctx, f.opts)
	if rep != nil {
		rep.WriteSummary(stderr)
		if f.json {
			if werr := writeJSON(stdout, rep); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return exitStatus(ctx, err, stderr, time.Since(began), rep != nil && rep.OK())
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags("bench", 6, 6, stderr)
	if code, ok := f.parse(fs, args, stderr); !ok {
		return code
	}
	began := time.Now()
	reports, err := demo.Bench(ctx, f.opts)
	ok := len(reports) == 2 && reports[0].OK() && reports[1].Rotations.Succeeded == reports[1].Rotations.Requested
	if len(reports) > 0 {
		fmt.Fprintf(stdout, "pgrotate bench: %d rotations, %d tasks per strategy\n\n", f.opts.Rotations, f.opts.Tasks)
		demo.WriteMarkdown(stdout, reports)
		for _, r := range reports {
			fmt.Fprintf(stdout, "\n%s:\n", r.Strategy)
			if werr := writeJSON(stdout, r); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return exitStatus(ctx, err, stderr, time.Since(began), ok)
}

func exitStatus(ctx context.Context, err error, stderr io.Writer, took time.Duration, ok bool) int {
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "pgrotate: interrupted after %s; everything it started is stopped\n", took.Round(time.Millisecond))
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return exitFailed
	case !ok:
		return exitFailed
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
