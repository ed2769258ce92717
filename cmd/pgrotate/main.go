// Command pgrotate is the command-line tool of pgrotate.
//
//	pgrotate demo   the whole rotation on this machine, measured (see local/demo)
//	pgrotate bench  both strategies, more rotations and tasks, one comparison table
//	pgrotate status|history|audit|rotate|redrive SECRET   the operator commands, on AWS (operator.go, audit.go)
//
// Human output goes to stderr; `demo --json` and `bench` print their reports on stdout. The
// operator commands print their answer (text, or JSON with --json) on stdout, errors on stderr.
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

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/local/awsserve"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/local/demo"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1 // a rotation failed, or alternating users saw a failed connection
	exitUsage       = 2 // also: the setup refused to take over a role it did not create
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

operator commands, on AWS (the standard credential chain; --region, --profile; AWS_ENDPOINT_URL):
  status SECRET            the live user, versions, last rotation, schedule, services, and
                           whether a rotation may start now
  history SECRET [--since] every rotation, newest first
  audit SECRET [--since --until --max-age 90d] --format table|json|csv|html [-o FILE]
                           the compliance report from the evidence records (exit 1: not compliant)
  rotate SECRET [--follow] rotate now; with --follow, follow the execution state by state
  redrive SECRET [--follow] redrive the pending version's failed execution, or say why not
  SECRET is the app secret's name or ARN; the rest is discovered from it. --json on each.

exit statuses:
  0 ok · 1 rotation failed, not safe to rotate, or not compliant · 2 usage · 3 secret or deployment not found
  4 AWS error · 10–15 redrive refused: 10 no pending version, 11 no execution, 12 running,
  13 succeeded, 14 past the 14-day redrive window, 15 not redrivable · 130 interrupted

Run 'pgrotate <command> -h' for the command's flags.
`

// commands are the subcommands by name, each given the arguments after it.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"demo": runDemo, "bench": runBench,
	"status": runStatus, "history": runHistory, "audit": runAudit, "rotate": runRotate, "redrive": runRedrive,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd, ok := commands[args[0]]; ok {
		return cmd(ctx, args[1:], stdout, stderr)
	}
	switch args[0] {
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

func newFlags(name string, rotations, tasks int) (*flag.FlagSet, *flags) {
	f := &flags{}
	fs := flag.NewFlagSet("pgrotate "+name, flag.ContinueOnError)
	// Parse's own messages are written by parse: help on stdout, errors on stderr.
	fs.SetOutput(io.Discard)
	o := &f.opts
	fs.IntVar(&o.Rotations, "rotations", rotations, fmt.Sprintf("rotations to run, 1 to %d", demo.MaxRotations))
	fs.IntVar(&o.Tasks, "tasks", tasks, fmt.Sprintf("tasks (app processes) in the ECS service, 1 to %d", demo.MaxTasks))
	fs.DurationVar(&o.Drain, "drain", demo.DefaultDrain, "how long a task may drain after SIGTERM (the app's DRAIN_TIMEOUT; the reference stack's)")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", demo.DefaultStopTimeout, "SIGKILL a task still running this long after SIGTERM (ECS stopTimeout; the reference stack's)")
	fs.StringVar(&o.PrimaryDSN, "primary-dsn", "", "admin connection string of a running primary (keyword/value or postgres:// URL); with --replica-dsn, no server is started")
	fs.StringVar(&o.ReplicaDSN, "replica-dsn", "", "connection string of its streaming replica (same TLS settings)")
	fs.StringVar(&o.AppDB, "app-db", "", "the application's database on those servers (default: the primary DSN's dbname)")
	fs.StringVar(&o.AppUser, "app-user", "app_user", "the first application login user (its alternate is <name>_clone)")
	fs.BoolVar(&o.AdoptExistingUser, "adopt-existing-user", false, "take over an existing --app-user (or its alternate) that pgrotate did not create, replacing its password; without it such a user is refused")
	fs.DurationVar(&o.ProbeInterval, "probe-interval", demo.DefaultProbeInterval, "time between two rounds of fresh probe logins")
	fs.Float64Var(&o.TimeScale, "time-scale", demo.DefaultTimeScale, "factor applied to the state machine's waits and retry intervals")
	fs.StringVar(&o.AppBinary, "app-binary", "", "a built examples/app (default: go build it from the pgrotate module)")
	fs.BoolVar(&f.verbose, "verbose", false, "also print the step handlers' and the tasks' log lines (stderr)")
	return fs, f
}

// parse parses args into f; when it returns false, the command exits with code. Help
// goes to stdout (exit 0); a usage error to stderr (exit 2).
func (f *flags) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	usageErr := func(format string, a ...any) (int, bool) {
		fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for the flags.\n", fs.Name(), fmt.Sprintf(format, a...), fs.Name())
		return exitUsage, false
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "usage: %s [flags]\n\nflags:\n", fs.Name())
			fs.PrintDefaults()
			return exitOK, false
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	// A flag given explicitly is never replaced by its default.
	if problem := flagProblem(f.opts); problem != "" {
		return usageErr("%s", problem)
	}
	if err := f.opts.Check(); err != nil {
		return usageErr("%v", err)
	}
	f.opts.Out = stderr
	if f.verbose {
		f.opts.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	return 0, true
}

// flagProblem describes the first flag given out of range, or is "".
func flagProblem(o demo.Options) string {
	switch {
	case o.Rotations < 1 || o.Rotations > demo.MaxRotations:
		return fmt.Sprintf("--rotations %d: want 1 to %d", o.Rotations, demo.MaxRotations)
	case o.Tasks < 1 || o.Tasks > demo.MaxTasks:
		return fmt.Sprintf("--tasks %d: want 1 to %d", o.Tasks, demo.MaxTasks)
	case o.Drain <= 0:
		return fmt.Sprintf("--drain %s: want a positive duration", o.Drain)
	case o.StopTimeout <= 0:
		return fmt.Sprintf("--stop-timeout %s: want a positive duration", o.StopTimeout)
	case o.ProbeInterval <= 0:
		return fmt.Sprintf("--probe-interval %s: want a positive duration", o.ProbeInterval)
	case o.TimeScale <= 0 || o.TimeScale > 1:
		return fmt.Sprintf("--time-scale %g: want more than 0, at most 1", o.TimeScale)
	case o.RetirePrevious < 0 || (o.RetirePrevious > 0 && o.RetirePrevious < demo.MinRetirePrevious):
		return fmt.Sprintf("--retire-previous %s: want 0 (off) or at least %s", o.RetirePrevious, demo.MinRetirePrevious)
	}
	return ""
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags("demo", demo.DefaultRotations, demo.DefaultTasks)
	fs.StringVar(&f.opts.Strategy, "strategy", demo.StrategyAlternating, "alternating (pgrotate) or single-user (the classic in-place rotation, as a baseline)")
	fs.StringVar(&f.opts.SecretsFile, "secrets-file", "", "write the secret store at the end, as JSON, to this file (mode 0600; it holds the passwords)")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fs.DurationVar(&f.opts.RetirePrevious, "retire-previous", 0, fmt.Sprintf("retire the previous user's password this long after each redeploy completed: 0 (off) or at least %s; the report then lists AWSPREVIOUS as refused", demo.MinRetirePrevious))
	var serveFile string
	fs.StringVar(&serveFile, "serve-aws", "", "once the rotations are done, serve the demo's AWS APIs (Secrets Manager, ECS, Step Functions, Lambda, the evidence bucket) on a loopback endpoint until interrupted, and write the environment to reach them to this file (mode 0600)")
	var auditFile string
	fs.StringVar(&auditFile, "audit-report", "", "once the rotations are done, write the HTML audit report of the demo's evidence records to this file (as pgrotate audit --format html)")
	if code, ok := f.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if problem := evidenceFlagProblem(f.opts.Strategy, serveFile, auditFile); problem != "" {
		fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for the flags.\n", fs.Name(), problem, fs.Name())
		return exitUsage
	}
	began := time.Now()
	printed := false
	report := func(rep *demo.Report) error {
		printed = true
		rep.WriteSummary(stderr)
		if f.json {
			return writeJSON(stdout, rep)
		}
		return nil
	}
	f.opts.AfterRotations = afterRotations(serveFile, auditFile, report, stderr)
	rep, err := demo.Run(ctx, f.opts)
	if rep != nil && !printed {
		if werr := report(rep); werr != nil && err == nil {
			err = werr
		}
	}
	if printed && serveFile != "" {
		// Serving ends with Ctrl-C or SIGTERM: that is the run's normal end, not an
		// interruption, so the exit status is the demo's verdict (0 or 1).
		fmt.Fprintf(stderr, "pgrotate: stopped serving; everything the demo started is stopped\n")
		ctx = context.WithoutCancel(ctx)
	}
	return exitStatus(ctx, err, stderr, time.Since(began), rep != nil && rep.OK())
}

// evidenceFlagProblem refuses --serve-aws and --audit-report with the single-user baseline,
// which runs no executions and writes no evidence; "" when there is no problem.
func evidenceFlagProblem(strategy, serveFile, auditFile string) string {
	if strategy != demo.StrategySingleUser {
		return ""
	}
	for _, f := range []struct{ name, value string }{{"--serve-aws", serveFile}, {"--audit-report", auditFile}} {
		if f.value != "" {
			return f.name + " needs the alternating strategy: single-user runs no state machine executions and writes no evidence"
		}
	}
	return ""
}

// afterRotations is what the demo does once its rotations are done: write the HTML audit
// report (--audit-report), then print the report and serve (--serve-aws); nil when neither.
func afterRotations(serveFile, auditFile string, report func(*demo.Report) error, stderr io.Writer) func(context.Context, *backend.Served, *demo.Report) error {
	if serveFile == "" && auditFile == "" {
		return nil
	}
	return func(ctx context.Context, served *backend.Served, rep *demo.Report) error {
		if auditFile != "" {
			if err := demoAudit(ctx, served, auditFile, stderr); err != nil {
				return err
			}
		}
		if serveFile == "" {
			return nil
		}
		if err := report(rep); err != nil {
			return err
		}
		return serveAWS(ctx, served, serveFile, stderr)
	}
}

// serveAWS writes the env file of the served endpoint and serves until ctx ends; the file
// is removed then, as its endpoint and key are gone.
func serveAWS(ctx context.Context, served *backend.Served, path string, stderr io.Writer) error {
	if err := awsserve.WriteEnvFile(path, served.Env); err != nil {
		return err
	}
	defer os.Remove(path)
	fmt.Fprintf(stderr, "\nserving the demo's AWS APIs at %s (region %s) until Ctrl-C; environment in %s (mode 0600). Try:\n"+
		"  set -a; . %s; set +a; pgrotate status \"$PGROTATE_SECRET\"\n", served.Env.Endpoint, served.Env.Region, path, path)
	<-ctx.Done()
	return nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags("bench", demo.BenchRotations, demo.BenchTasks)
	if code, ok := f.parse(fs, args, stdout, stderr); !ok {
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
	case demo.IsRefusal(err):
		fmt.Fprintf(stderr, "pgrotate: refused, nothing was changed on the server: %v\n", err)
		if errors.As(err, new(*postgres.UnmanagedRole)) {
			fmt.Fprintf(stderr, "pgrotate: to take over that role anyway (its password will be replaced), pass --adopt-existing-user\n")
		}
		return exitUsage
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
