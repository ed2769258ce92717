package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/operator"
)

// Exit statuses of the operator commands (exitOK, exitFailed, exitUsage and exitInterrupted
// are shared with demo and bench): each outcome its own.
const (
	// exitFailed (1): the rotation failed, or status says a rotation may not start now.
	exitNotFound = 3 // the secret does not exist, or the deployment cannot be discovered
	exitAWS      = 4 // an AWS API call failed (credentials, permissions, throttling…)

	// redrive's refusals.
	exitNoPending        = 10 // no version is AWSPENDING
	exitNoExecution      = 11 // the pending version has no execution
	exitRunning          = 12 // its execution is still running
	exitAlreadySucceeded = 13 // its execution succeeded
	exitRedriveWindow    = 14 // it closed more than 14 days ago
	exitNotRedrivable    = 15 // Step Functions refuses for another reason
	defaultFollowPoll    = 2 * time.Second
	defaultExecutionWait = 5 * time.Minute
)

var refusalExit = map[operator.RefusalReason]int{
	operator.NoPendingVersion:    exitNoPending,
	operator.NoExecution:         exitNoExecution,
	operator.ExecutionRunning:    exitRunning,
	operator.ExecutionSucceeded:  exitAlreadySucceeded,
	operator.RedriveWindowPassed: exitRedriveWindow,
	operator.NotRedrivable:       exitNotRedrivable,
}

// opFlags are the flags every operator command takes.
type opFlags struct {
	fs        *flag.FlagSet
	region    string
	profile   string
	json      bool
	overrides operator.Overrides
	prefix    string
	secret    string
}

func newOpFlags(name, summary string) *opFlags {
	f := &opFlags{fs: flag.NewFlagSet("pgrotate "+name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.region, "region", "", "AWS region (default: AWS_REGION or the profile's)")
	f.fs.StringVar(&f.profile, "profile", "", "shared config profile (default: AWS_PROFILE or default)")
	f.fs.BoolVar(&f.json, "json", false, "print the result as JSON on stdout")
	f.fs.StringVar(&f.overrides.StateMachine, "state-machine", "", "the rotation state machine's ARN (default: the rotation function's "+`"pgrotate:state-machine"`+" tag)")
	f.fs.StringVar(&f.overrides.PreflightFunction, "preflight-function", "", "the Preflight function (default: the rotation function's tag)")
	f.fs.StringVar(&f.overrides.Bucket, "bucket", "", "the evidence bucket (default: the rotation function's tag)")
	f.fs.StringVar(&f.prefix, "prefix", "", "the evidence key prefix (default: the rotation function's tag)")
	f.fs.Usage = func() {
		fmt.Fprintf(f.fs.Output(), "usage: pgrotate %s SECRET [flags]\n\n%s\n\nflags:\n", name, summary)
		f.fs.PrintDefaults()
	}
	return f
}

// parse takes SECRET (the app secret's name or ARN) and the flags, before or after it.
// When ok is false the command exits with code.
func (f *opFlags) parse(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	usageErr := func(format string, a ...any) (int, bool) {
		fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for the flags.\n", f.fs.Name(), fmt.Sprintf(format, a...), f.fs.Name())
		return exitUsage, false
	}
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.fs.SetOutput(stdout)
				f.fs.Usage()
				return exitOK, false
			}
			return usageErr("%v", err)
		}
		if f.fs.NArg() == 0 {
			break
		}
		if f.secret != "" {
			return usageErr("unexpected argument %q", f.fs.Arg(0))
		}
		f.secret, args = f.fs.Arg(0), f.fs.Args()[1:]
	}
	if f.secret == "" {
		return usageErr("missing SECRET: the app secret's name or ARN")
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "prefix" {
			f.overrides.Prefix = &f.prefix
		}
	})
	return 0, true
}

// clients are the SDK clients of the operator commands, from the standard credential chain
// and configuration (https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html);
// AWS_ENDPOINT_URL overrides every service's endpoint
// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
type clients struct {
	sm  *secretsmanager.Client
	lam *lambda.Client
	sfn *sfn.Client
	ecs *ecs.Client
	s3  *s3.Client
}

func (f *opFlags) clients(ctx context.Context) (*clients, error) {
	var opts []func(*config.LoadOptions) error
	if f.region != "" {
		opts = append(opts, config.WithRegion(f.region))
	}
	if f.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(f.profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errNoRegion
	}
	return &clients{sm: secretsmanager.NewFromConfig(cfg), lam: lambda.NewFromConfig(cfg), sfn: sfn.NewFromConfig(cfg), ecs: ecs.NewFromConfig(cfg), s3: s3.NewFromConfig(cfg)}, nil
}

var errNoRegion = errors.New("no AWS region: give --region, or set AWS_REGION or a profile's region")

// discover parses the flags, builds the clients and discovers the deployment; when ok is
// false the command exits with code.
func (f *opFlags) discover(ctx context.Context, args []string, stdout, stderr io.Writer) (*clients, *operator.Deployment, int, bool) {
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return nil, nil, code, false
	}
	c, err := f.clients(ctx)
	if err != nil {
		return nil, nil, opExit(ctx, err, stderr), false
	}
	d, err := operator.Discover(ctx, c.sm, c.lam, f.secret, f.overrides)
	if err != nil {
		return nil, nil, opExit(ctx, err, stderr), false
	}
	return c, d, 0, true
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("status", "The live user and version stages, the last rotation, the schedule, the services'\ndeployments, and whether a rotation may start now (exit 1 when not).")
	c, d, code, ok := f.discover(ctx, args, stdout, stderr)
	if !ok {
		return code
	}
	s, err := operator.GetStatus(ctx, operator.StatusClients{Executions: c.sfn, Lambda: c.lam, ECS: c.ecs}, d)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	if err := output(stdout, f.json, s, writeStatus); err != nil {
		return opExit(ctx, err, stderr)
	}
	if !s.MayRotate {
		return exitFailed
	}
	return exitOK
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("history", "Every rotation of the secret, newest first: from the state machine's executions and,\nbeyond Step Functions' 90 days, from the evidence records.")
	var since string
	f.fs.StringVar(&since, "since", "", "only rotations started since: a date (2026-01-31), an RFC 3339 time, or an age (90d, 36h)")
	c, d, code, ok := f.discover(ctx, args, stdout, stderr)
	if !ok {
		return code
	}
	from, err := parseSince(since, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "%s: --since %q: %v\n", f.fs.Name(), since, err)
		return exitUsage
	}
	rs, err := operator.History(ctx, c.sfn, d, c.evidenceSource(d), from)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	if rs == nil {
		rs = []operator.Rotation{}
	}
	if err := output(stdout, f.json, rs, writeHistory); err != nil {
		return opExit(ctx, err, stderr)
	}
	return exitOK
}

func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("rotate", "Rotate the secret now (RotateSecret). With --follow, follow the execution state by state;\nthe exit status is then the rotation's outcome.")
	follow := f.fs.Bool("follow", false, "follow the execution until it ends")
	poll := f.fs.Duration("poll", defaultFollowPoll, "time between two reads of the execution's history (--follow)")
	wait := f.fs.Duration("wait", defaultExecutionWait, "how long to wait for the rotation function to start the execution (--follow)")
	c, d, code, ok := f.discover(ctx, args, stdout, stderr)
	if !ok {
		return code
	}
	if *poll <= 0 || *wait <= 0 {
		fmt.Fprintf(stderr, "%s: --poll and --wait must be positive\n", f.fs.Name())
		return exitUsage
	}
	version, err := operator.Rotate(ctx, c.sm, d)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	progress := progressOut(stdout, stderr, f.json)
	fmt.Fprintf(progress, "rotation of %s started: version %s\n", d.SecretName, version)
	if !*follow {
		return outputOrExit(ctx, stdout, stderr, f.json, map[string]string{"secret": d.SecretARN, "version": version})
	}
	fl := &operator.Follower{API: c.sfn, StateMachine: d.StateMachine, Poll: *poll, OnStep: stepPrinter(progress)}
	name, err := fl.Find(ctx, version, *wait)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	fmt.Fprintf(progress, "execution %s\n", name)
	o, err := fl.Follow(ctx, version, name, 0)
	return followed(ctx, stdout, stderr, progress, f.json, o, err)
}

func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("redrive", "Redrive the failed execution of the pending version (AWSPENDING) from the state that\nfailed, or say exactly why not (each reason its own exit status).")
	follow := f.fs.Bool("follow", false, "follow the redriven execution until it ends")
	poll := f.fs.Duration("poll", defaultFollowPoll, "time between two reads of the execution's history (--follow)")
	c, d, code, ok := f.discover(ctx, args, stdout, stderr)
	if !ok {
		return code
	}
	if *poll <= 0 {
		fmt.Fprintf(stderr, "%s: --poll must be positive\n", f.fs.Name())
		return exitUsage
	}
	r, err := operator.Redrive(ctx, c.sfn, d, time.Now())
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	progress := progressOut(stdout, stderr, f.json)
	fmt.Fprintf(progress, "redriven: execution %s of version %s resumes at %s (it failed with %s)\n", r.Execution, r.Version, r.FailedState, orNone(r.Error))
	if !*follow {
		return outputOrExit(ctx, stdout, stderr, f.json, r)
	}
	fl := &operator.Follower{API: c.sfn, StateMachine: d.StateMachine, Poll: *poll, OnStep: stepPrinter(progress)}
	o, err := fl.Follow(ctx, r.Version, r.Execution, r.LastEvent)
	return followed(ctx, stdout, stderr, progress, f.json, o, err)
}

// followed reports a followed execution's outcome; its status is the exit status.
func followed(ctx context.Context, stdout, stderr, progress io.Writer, asJSON bool, o operator.Outcome, err error) int {
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	if o.Succeeded() {
		fmt.Fprintf(progress, "✓ %s succeeded\n", o.Execution)
	} else {
		fmt.Fprintf(progress, "✗ %s %s in %s: %s (pgrotate redrive resumes it there)\n", o.Execution, o.Status, orNone(o.FailedState), orNone(o.Error))
	}
	if code := outputOrExit(ctx, stdout, stderr, asJSON, o); code != exitOK {
		return code
	}
	if !o.Succeeded() {
		return exitFailed
	}
	return exitOK
}

// opExit prints err and returns its exit status.
func opExit(ctx context.Context, err error, stderr io.Writer) int {
	var (
		notFound  *operator.SecretNotFound
		notFound2 *operator.NotDiscovered
		refused   *operator.RedriveRefused
		noExec    *operator.ExecutionNotStarted
	)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "pgrotate: interrupted")
		return exitInterrupted
	case errors.Is(err, errNoRegion):
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return exitUsage
	case errors.As(err, &notFound), errors.As(err, &notFound2):
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return exitNotFound
	case errors.As(err, &refused):
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return refusalExit[refused.Reason]
	case errors.As(err, &noExec):
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "pgrotate: %v\n", err)
	return exitAWS
}

// output writes v as JSON, or as text with human.
func output[T any](w io.Writer, asJSON bool, v T, human func(io.Writer, T)) error {
	if asJSON {
		return writeJSON(w, v)
	}
	human(w, v)
	return nil
}

func outputOrExit(ctx context.Context, stdout, stderr io.Writer, asJSON bool, v any) int {
	if !asJSON {
		return exitOK
	}
	if err := writeJSON(stdout, v); err != nil {
		return opExit(ctx, err, stderr)
	}
	return exitOK
}

// progressOut is where progress lines go: stdout, or stderr when stdout carries JSON.
func progressOut(stdout, stderr io.Writer, asJSON bool) io.Writer {
	if asJSON {
		return stderr
	}
	return stdout
}

// parseSince reads --since: empty (no limit), a date, an RFC 3339 time, or an age in days
// (90d) or any Go duration (36h).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return time.Time{}, errors.New("want a number of days, as in 90d")
		}
		return now.AddDate(0, 0, -n), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("want a date (2026-01-31), an RFC 3339 time, or an age (90d, 36h)")
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
