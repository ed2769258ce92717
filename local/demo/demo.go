// Package demo is `pgrotate demo`: the whole rotation on one machine, measured. It starts a
// PostgreSQL primary and streaming replica (or uses servers given by DSN), the local
// backend (the app and admin secrets in an in-process Secrets Manager, ECS, the real
// rotation.asl.json in aws-local-stepfunctions calling the real Go handlers), a fleet of
// examples/app processes as the ECS service's tasks, and a probe that logs in afresh,
// continuously, with every credential a live task holds. Then it rotates, N times, with
// alternating users or, as the baseline, the classic single-user rotation, and reports the
// timeline and every failed login.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/atomicfile"
	"github.com/pgrotate/pgrotate/internal/modroot"
	"github.com/pgrotate/pgrotate/internal/wait"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/local/fleet"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/probe"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

// Strategies.
const (
	StrategyAlternating = "alternating"
	StrategySingleUser  = "single-user"
)

const (
	stageCurrent  = workflow.StageCurrent
	stagePrevious = "AWSPREVIOUS"
)

// Defaults of Options' zero values.
const (
	DefaultRotations = 3
	DefaultTasks     = 4
	// The tasks' stop timings are the reference stack's (internal/taskstop): a drain ends
	// as soon as the in-flight requests are done, so a long one costs nothing on a quiet
	// machine and cuts nothing on a busy one.
	DefaultDrain         = fleet.DefaultDrain
	DefaultStopTimeout   = fleet.DefaultStopTimeout
	DefaultTimeScale     = 0.02
	DefaultProbeInterval = 25 * time.Millisecond
	DefaultSettle        = time.Second
	DefaultMaxFailures   = 200
	// MaxRotations and MaxTasks bound a run: tasks are processes with pools of their own on
	// this machine.
	MaxRotations = 1000
	MaxTasks     = 50
	// MinRetirePrevious is the shortest retirement grace, as in the CDK construct
	// (Props.RetirePreviousAfter); zero turns retirement off.
	MinRetirePrevious = time.Second
)

// The ECS service the fleet runs.
var service = workflow.Service{Cluster: "demo", Service: "app"}

// Options configure a run. Zero values take the documented defaults.
type Options struct {
	// Strategy is StrategyAlternating (default) or StrategySingleUser.
	Strategy string
	// Rotations to run (default DefaultRotations) and tasks in the service (DefaultTasks).
	Rotations, Tasks int
	// Drain is the tasks' drain timeout after SIGTERM (default DefaultDrain), shorter than
	// StopTimeout, after which a task still running gets SIGKILL (default
	// DefaultStopTimeout).
	Drain, StopTimeout time.Duration
	// PrimaryDSN and ReplicaDSN, both or neither, are admin connection strings of running
	// servers (see ParseDSN). Without them the demo starts its own primary and replica.
	PrimaryDSN, ReplicaDSN string
	// AppDB is the application's database on those servers; default the primary DSN's
	// dbname. Ignored without DSNs (the started cluster's is "app").
	AppDB string
	// AppUser is the first login user; default "app_user".
	AppUser string
	// AdoptExistingUser lets the setup take over an existing AppUser (or its alternate)
	// that pgrotate did not create; the report lists them. Without it they are refused.
	AdoptExistingUser bool
	// SecretsFile, if set, receives the secret store at the end as JSON, mode 0600.
	SecretsFile string
	// TimeScale shrinks the state machine's waits and retry intervals (default
	// DefaultTimeScale: the 15 s rollout wait becomes 0.3 s).
	TimeScale float64
	// ProbeInterval is the time between two probe rounds (default DefaultProbeInterval).
	ProbeInterval time.Duration
	// Settle is how long the probe runs before the first and after the last rotation
	// (default DefaultSettle).
	Settle time.Duration
	// MaxFailures caps the failed logins listed in the report (default DefaultMaxFailures).
	MaxFailures int
	// AppBinary is a built examples/app; empty builds one (needs the pgrotate module).
	AppBinary string
	// WorkDir holds the app binary and the started cluster; empty means a temporary
	// directory removed at the end. A given WorkDir is kept.
	WorkDir string
	// Out receives the human progress and summary; nil discards it.
	Out io.Writer
	// Log receives the step handlers', the rotation function's and the tasks' events; nil
	// discards them.
	Log *slog.Logger
	// RetirePrevious turns on retirement of the previous password with this grace (zero:
	// off). The demo then waits out the last retirement, up to MaxRetireWait, before its
	// final logins, where AWSPREVIOUS must be refused.
	RetirePrevious time.Duration
	// AfterRotations, if set, runs once the rotations are done and the report is complete,
	// while everything still runs: the PostgreSQL servers, the app secret and the backend
	// served on the wire (served), whose evidence bucket holds every record. Run stops
	// everything after it returns. `pgrotate demo --serve-aws` prints the report, writes
	// its env file and serves until interrupted there; an error it returns is Run's.
	AfterRotations func(ctx context.Context, served *backend.Served, rep *Report) error
}

// Check reports whether the options are usable, without running anything.
func (o Options) Check() error { return o.defaults() }

// defaults checks the options and fills in the defaults, in the order the errors are reported.
func (o *Options) defaults() error {
	for _, step := range []func() error{
		o.strategyDefaults, o.sizeDefaults, o.stopDefaults, o.databaseDefaults,
		o.probeDefaults, o.outputDefaults, o.retireDefaults,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (o *Options) strategyDefaults() error {
	switch o.Strategy {
	case "":
		o.Strategy = StrategyAlternating
	case StrategyAlternating, StrategySingleUser:
	default:
		return fmt.Errorf("strategy %q: want %s or %s", o.Strategy, StrategyAlternating, StrategySingleUser)
	}
	return nil
}

// sizeDefaults: how many rotations and tasks.
func (o *Options) sizeDefaults() error {
	if o.Rotations < 0 || o.Rotations > MaxRotations {
		return fmt.Errorf("rotations %d: want 1 to %d", o.Rotations, MaxRotations)
	}
	if o.Tasks < 0 || o.Tasks > MaxTasks {
		return fmt.Errorf("tasks %d: want 1 to %d", o.Tasks, MaxTasks)
	}
	o.Rotations = cmp.Or(o.Rotations, DefaultRotations)
	o.Tasks = cmp.Or(o.Tasks, DefaultTasks)
	return nil
}

// stopDefaults: how a task drains and is stopped.
func (o *Options) stopDefaults() error {
	if o.Drain < 0 || o.StopTimeout < 0 {
		return errors.New("drain and stop timeout must not be negative")
	}
	o.Drain = cmp.Or(o.Drain, DefaultDrain)
	o.StopTimeout = cmp.Or(o.StopTimeout, DefaultStopTimeout)
	if o.Drain >= o.StopTimeout {
		return fmt.Errorf("drain %s must be shorter than the stop timeout %s: ECS kills a task stopTimeout after SIGTERM", o.Drain, o.StopTimeout)
	}
	return nil
}

func (o *Options) databaseDefaults() error {
	if (o.PrimaryDSN == "") != (o.ReplicaDSN == "") {
		return errors.New("give both --primary-dsn and --replica-dsn, or neither")
	}
	o.AppUser = cmp.Or(o.AppUser, "app_user")
	return workflow.ValidateRoleName(o.AppUser)
}

// probeDefaults: the time scale and how the probes connect and judge.
func (o *Options) probeDefaults() error {
	if o.TimeScale < 0 || o.TimeScale > 1 {
		return fmt.Errorf("time scale %g: want more than 0, at most 1", o.TimeScale)
	}
	o.TimeScale = cmp.Or(o.TimeScale, DefaultTimeScale)
	if o.ProbeInterval < 0 {
		return errors.New("probe interval must not be negative")
	}
	o.ProbeInterval = cmp.Or(o.ProbeInterval, DefaultProbeInterval)
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	return nil
}

func (o *Options) outputDefaults() error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func (o *Options) retireDefaults() error {
	if o.RetirePrevious < 0 || (o.RetirePrevious > 0 && o.RetirePrevious < MinRetirePrevious) {
		return fmt.Errorf("retire-previous %s: want 0 (off) or at least %s", o.RetirePrevious, MinRetirePrevious)
	}
	if o.RetirePrevious > 0 && o.Strategy == StrategySingleUser {
		return errors.New("--retire-previous needs the alternating strategy: single-user has no previous user")
	}
	return nil
}

// run is one demo in progress.
type run struct {
	opts    Options
	out     *printer
	db      backend.Database
	cluster *pgcluster.Cluster
	fleet   *fleet.Fleet
	b       *backend.Backend
	probe   *probe.Probe
	pg      postgres.Options
	report  *Report

	stopProbe func()
	tmpDir    string // removed at the end
	served    *backend.Served
	complete  bool // the rotations and the report are done (AfterRotations runs)
	tasks     taskEvents
	retired   *workflow.Retirement // the last succeeded rotation's, with retirement on
}

// taskEvents counts the fleet's task events by kind.
type taskEvents struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *taskEvents) count(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[kind]++
}

func (e *taskEvents) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.n)
}

// Run runs the demo and returns its report. It returns an error when the demo could not run
// (a server, the build or the bootstrap failed) or was interrupted (ctx): then the report,
// if not nil, holds what was measured so far. Rotations that fail do not make an error:
// Report.OK says whether the run proved its point. Everything Run starts is stopped before
// it returns.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	r := &run{opts: opts, out: &printer{w: opts.Out}}
	r.report = &Report{Strategy: opts.Strategy, Tasks: opts.Tasks, Rotations: RotationCounts{Requested: opts.Rotations},
		States: []StateTime{}, PerRotation: []RotationResult{}, LoginsAfter: []Login{}}
	defer func() {
		err = errors.Join(err, r.close())
		if ctx.Err() != nil && !r.complete {
			r.report.Interrupted = true
		}
	}()
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	if err := r.rotate(ctx); err != nil {
		return r.report, err
	}
	if err := r.finish(ctx); err != nil {
		return r.report, err
	}
	if err := r.evidence(ctx); err != nil {
		return r.report, err
	}
	if r.opts.AfterRotations != nil {
		// The run is complete: an interruption from here on ends the serving, not the demo,
		// and the report holds what was measured up to here.
		r.complete = true
		r.measured()
		if err := r.opts.AfterRotations(ctx, r.served, r.report); err != nil {
			return r.report, err
		}
	}
	return r.report, nil
}

// evidence waits until every execution run has its record in the served bucket and counts
// the records.
func (r *run) evidence(ctx context.Context) error {
	if err := r.served.Settle(ctx); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	keys, err := r.served.RecordKeys(ctx)
	if err != nil {
		return err
	}
	ev := &Evidence{Bucket: r.served.Bucket, Records: len(keys)}
	for _, k := range keys {
		// An execution run's record is …/<execution>/run-<n>.json (tasks/evidence).
		if strings.Contains(k, "/run-") {
			ev.ExecutionRuns++
		}
	}
	r.report.Evidence = ev
	r.out.printf("• %s\n", ev.Line())
	return nil
}

// start brings up the servers, the backend, the fleet and the probe.
func (r *run) start(ctx context.Context) error {
	o := &r.opts
	r.out.printf("pgrotate demo: %s, %d rotations, %d tasks\n", o.Strategy, o.Rotations, o.Tasks)
	if err := r.prerequisites(); err != nil {
		return err
	}
	if err := r.workDir(); err != nil {
		return err
	}
	// The given servers first: a wrong DSN fails before anything starts.
	if err := r.givenDatabase(); err != nil {
		return err
	}
	// Build the app while the servers start.
	began := time.Now()
	binc := r.buildApp(ctx, began)
	if err := r.database(ctx, began); err != nil {
		<-binc
		return err
	}
	r.pg = postgres.Options{CABundle: r.db.CAFile}
	b := <-binc
	if b.err != nil {
		return b.err
	}

	f, err := fleet.New(fleet.Options{
		Binary: b.bin, SSLRootCert: r.db.CAFile, Drain: o.Drain, StopTimeout: o.StopTimeout, WorkTable: backend.DemoTableFor(o.AppUser),
		Events: func(ev fleet.Event) {
			r.tasks.count(ev.Kind)
			o.Log.Info("task "+ev.Kind, "task", ev.Task, "user", ev.User, "detail", ev.Detail)
		},
	})
	if err != nil {
		return err
	}
	r.fleet = f
	began = time.Now()
	bk, err := backend.New(ctx, backend.Options{
		Database: r.db, AppUser: o.AppUser, AdoptExistingUser: o.AdoptExistingUser, Services: []workflow.Service{service}, TasksPerService: o.Tasks,
		Controller: f, TimeScale: o.TimeScale, Log: o.Log, OnEvent: r.out.onEvent, RetirePreviousAfter: o.RetirePrevious,
	})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	r.b = bk
	// The evidence of every rotation goes through the served S3, by the real evidence handler.
	if r.served, err = bk.ServeAWS(backend.ServeOptions{}); err != nil {
		return fmt.Errorf("serve the local AWS APIs: %w", err)
	}
	r.out.printf("• roles %s (admin) and %s, table %s; secrets pgrotate/admin and pgrotate/app in the local Secrets Manager\n",
		r.db.AdminUser, o.AppUser, bk.DemoTable)
	if len(bk.Adopted) > 0 {
		r.report.AdoptedRoles = bk.Adopted
		r.out.printf("• adopted existing roles not created by pgrotate (--adopt-existing-user): %s; their passwords were replaced\n", strings.Join(bk.Adopted, ", "))
	}
	if err := r.testConfiguration(ctx); err != nil {
		return err
	}
	source := func(ctx context.Context) (workflow.AppSecret, error) {
		s, _, err := bk.Secret(ctx, stageCurrent)
		return s, err
	}
	r.out.printf("• starting %d tasks (drain timeout %s, stop timeout %s, as the reference stack deploys them)…\n", o.Tasks, o.Drain, o.StopTimeout)
	if err := f.Start(ctx, bk.ECS, service, source); err != nil {
		return err
	}
	r.out.printf("• %d tasks of ECS service %s (examples/app processes, credentials from AWSCURRENT at launch), healthy  %s\n",
		o.Tasks, service, dur(time.Since(began)))
	if err := r.startProbe(ctx, f); err != nil {
		return err
	}
	return wait.Sleep(ctx, o.Settle)
}

// prerequisites checks what the demo needs from the pgrotate module (the interpreter's
// node tooling, the examples/app source unless a binary is given) before anything starts.
func (r *run) prerequisites() error {
	if _, err := sfnlocal.FindTools("", ""); err != nil {
		return err
	}
	if r.opts.AppBinary == "" {
		if _, err := modroot.Find(); err != nil {
			return fmt.Errorf("build examples/app: %w (run from the pgrotate module, or give a prebuilt binary with --app-binary)", err)
		}
	}
	return nil
}

// workDir makes a temporary work directory when none was given; Close removes it.
func (r *run) workDir() error {
	if r.opts.WorkDir != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "pgrotate-demo-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	r.tmpDir, r.opts.WorkDir = dir, dir
	return nil
}

// givenDatabase reads --primary-dsn and --replica-dsn, when given.
func (r *run) givenDatabase() error {
	o := r.opts
	if o.PrimaryDSN == "" {
		return nil
	}
	primary, err := ParseDSN(o.PrimaryDSN)
	if err != nil {
		return fmt.Errorf("--primary-dsn: %w", err)
	}
	replica, err := ParseDSN(o.ReplicaDSN)
	if err != nil {
		return fmt.Errorf("--replica-dsn: %w", err)
	}
	r.db, err = Database(primary, replica, o.AppDB)
	return err
}

// built is the app binary, or why it could not be built.
type built struct {
	bin string
	err error
}

// buildApp builds examples/app in the background, unless a binary was given.
func (r *run) buildApp(ctx context.Context, began time.Time) <-chan built {
	binc := make(chan built, 1)
	if r.opts.AppBinary != "" {
		binc <- built{bin: r.opts.AppBinary}
		return binc
	}
	r.out.printf("• building examples/app (go build; a minute or more the first time on a busy machine)…\n")
	go func() {
		bin, err := fleet.Build(ctx, r.opts.WorkDir)
		if err == nil {
			r.out.printf("• examples/app built  %s\n", dur(time.Since(began)))
		}
		binc <- built{bin, err}
	}()
	return binc
}

// database announces the given servers, or starts a local primary and streaming replica.
func (r *run) database(ctx context.Context, began time.Time) error {
	if r.opts.PrimaryDSN != "" {
		r.out.printf("• PostgreSQL primary %s and replica %s (given; sslmode %s), admin %s, app database %s\n",
			r.db.Primary, r.db.Replicas[0], orDefault(r.db.SSLMode), r.db.AdminUser, r.db.AppDB)
		return nil
	}
	r.out.printf("• starting a PostgreSQL 15 primary and a streaming replica…\n")
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(r.opts.WorkDir, "pg")})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	r.cluster = c
	r.db = backend.FromCluster(c)
	r.out.printf("• PostgreSQL 15 primary %s:%d and streaming replica %s:%d, TLS verify-full, SCRAM-SHA-256  %s\n",
		c.Primary.Host, c.Primary.Port, c.Replica.Host, c.Replica.Port, dur(time.Since(began)))
	return nil
}

// startProbe starts the probe of every live task's credentials; stopProbe ends it.
func (r *run) startProbe(ctx context.Context, f *fleet.Fleet) error {
	o := r.opts
	p, err := probe.New(r.targets(), probe.Options{Credentials: f.Credentials, Interval: o.ProbeInterval, MaxFailures: o.MaxFailures})
	if err != nil {
		return err
	}
	r.probe = p
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(pctx)
	}()
	r.stopProbe = func() { stop(); <-done }
	r.out.printf("• probe: a fresh login (no pool) to the primary and to the replica every %s with each credential a live task holds\n", o.ProbeInterval)
	return nil
}

// targets are the probe's: the primary and the replica, with the app database and the
// servers' TLS settings.
func (r *run) targets() []probe.Target {
	mode := orDefault(r.db.SSLMode)
	ts := []probe.Target{{Name: probe.TargetPrimary, DSN: keywordDSN(r.db.Primary, r.db.AppDB, mode, r.db.CAFile)}}
	for _, ep := range r.db.Replicas {
		ts = append(ts, probe.Target{Name: probe.TargetReplica, DSN: keywordDSN(ep, r.db.AppDB, mode, r.db.CAFile)})
	}
	return ts
}

// rotate runs the rotations, one after the other.
func (r *run) rotate(ctx context.Context) error {
	var promotes, totals []time.Duration
	for i := 1; i <= r.opts.Rotations; i++ {
		cur, _, err := r.b.Secret(ctx, stageCurrent)
		if err != nil {
			return err
		}
		to := workflow.Alternate(cur.Username)
		if r.opts.Strategy == StrategySingleUser {
			to = cur.Username
		}
		r.out.rotationStart(i, r.opts.Rotations, cur.Username, to)
		failedBefore, eventsBefore := r.probe.Report().Failed, r.tasks.snapshot()
		var res rotation
		if r.opts.Strategy == StrategySingleUser {
			res, err = r.rotateSingleUser(ctx)
		} else {
			res, err = r.rotateAlternating(ctx)
		}
		if err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		rr := RotationResult{Rotation: i, Version: res.version, From: cur.Username, To: to, Succeeded: res.err == "",
			PromoteMS: res.promote.Milliseconds(), MS: res.total.Milliseconds(), Error: res.err,
			LoginFailures: r.probe.Report().Failed - failedBefore}
		for _, s := range res.states {
			r.report.States = append(r.report.States, StateTime{Rotation: i, State: s.name, MS: s.d.Milliseconds()})
		}
		if rr.Succeeded {
			r.report.Rotations.Succeeded++
			promotes, totals = append(promotes, res.promote), append(totals, res.total)
		} else {
			r.report.Rotations.Failed++
		}
		r.report.PerRotation = append(r.report.PerRotation, rr)
		r.report.PromoteMS, r.report.RotationMS = latency(promotes), latency(totals)
		events := r.tasks.snapshot()
		r.out.rotationEnd(rr, r.probe.Report(), r.fleet.Stats(),
			events[fleet.EventHealthy]-eventsBefore[fleet.EventHealthy], events[fleet.EventStopped]-eventsBefore[fleet.EventStopped])
	}
	return nil
}

// rotation is what one rotation measured.
type rotation struct {
	version string
	states  []stateSpan
	promote time.Duration // start → AWSCURRENT moved
	total   time.Duration // start → execution end
	err     string
}

type stateSpan struct {
	name string
	d    time.Duration
}

// rotateAlternating rotates as Secrets Manager does, through the rotation function and the
// state machine, and waits for the execution to end.
func (r *run) rotateAlternating(ctx context.Context) (rotation, error) {
	rot, err := r.b.Rotate(ctx)
	if err != nil {
		return rotation{}, err
	}
	res := rotation{version: rot.Token, total: rot.Ended.Sub(rot.Started)}
	if rot.Retirement != nil && rot.Retirement.ValidUntil != nil {
		r.retired = rot.Retirement
	}
	for _, s := range rot.Timeline {
		if s.Exited.IsZero() {
			continue
		}
		res.states = append(res.states, stateSpan{s.State, s.Exited.Sub(s.Entered)})
		if s.State == workflow.StatePromote {
			res.promote = s.Exited.Sub(rot.Started)
		}
	}
	switch {
	case rot.StepErr != nil:
		res.err = rot.StepErr.Error()
		if rot.Error != "" {
			res.err += fmt.Sprintf(" (execution %s: %s: %s)", rot.Status, rot.Error, rot.Cause)
		}
	case rot.Status != "SUCCEEDED":
		res.err = fmt.Sprintf("execution %s: %s: %s", rot.Status, rot.Error, rot.Cause)
	}
	return res, nil
}

// finish lets the probe see the end state, then checks the logins, writes the secrets file
// and fills the report.
func (r *run) finish(ctx context.Context) error {
	if err := wait.Sleep(ctx, r.opts.Settle); err != nil {
		return err
	}
	retired, err := r.waitRetired(ctx)
	if err != nil {
		return err
	}
	for _, stage := range []string{stageCurrent, stagePrevious} {
		s, _, err := r.b.Secret(ctx, stage)
		if err != nil {
			if stage == stagePrevious {
				continue // no rotation succeeded: there is no AWSPREVIOUS
			}
			return err
		}
		if stage == stageCurrent {
			r.report.ActiveUser = s.Username
		}
		eps := append([]workflow.Endpoint{s.Primary()}, s.Replicas...)
		for i, ep := range eps {
			target := probe.TargetPrimary
			if i > 0 {
				target = probe.TargetReplica
			}
			l := Login{Stage: stage, User: s.Username, Target: target, OK: true, Retired: stage == stagePrevious && retired}
			if _, _, err := postgres.Login(ctx, s.At(ep), r.pg); err != nil {
				l.OK, l.Reason = false, scrub(err.Error(), s.Password.Reveal())
			}
			r.report.LoginsAfter = append(r.report.LoginsAfter, l)
		}
	}
	return nil
}

// writeSecrets writes the secret store's snapshot to path, readable by its owner only,
// through a temporary file in the same directory so no other mode ever shows it.
func (r *run) writeSecrets(path string) error {
	data, err := r.b.Secrets.Snapshot()
	if err != nil {
		return fmt.Errorf("snapshot the secret store: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// measured ends the measurement: it stops the probe and fills the report's counts of
// logins and, once the run is complete, of the app's requests (the tasks may run on while
// AfterRotations serves; their requests then are not the demo's).
func (r *run) measured() {
	if r.stopProbe != nil {
		r.stopProbe()
		r.report.Connections = r.probe.Report()
	}
	if r.complete && r.fleet != nil {
		r.report.Requests = r.fleet.Stats()
	}
}

// close stops everything in reverse order of start and fills the report's counts.
func (r *run) close() error {
	var errs []error
	// The probe first, so that stopping the tasks is not counted against anyone.
	r.measured()
	if r.served != nil {
		errs = append(errs, r.served.Close())
	}
	if r.b != nil {
		// Stops the interpreter and ECS: no deployment runs after this.
		errs = append(errs, r.b.Close())
		// Also after a failure or Ctrl-C: with --primary-dsn the users' passwords on the
		// caller's servers may have changed, and this file is their only record.
		if r.opts.SecretsFile != "" {
			if err := r.writeSecrets(r.opts.SecretsFile); err != nil {
				errs = append(errs, err)
			} else {
				r.out.printf("secret store written to %s (mode 0600: it holds the passwords)\n", r.opts.SecretsFile)
			}
		}
	}
	if r.fleet != nil {
		errs = append(errs, r.fleet.Close())
		if !r.complete {
			r.report.Requests = r.fleet.Stats()
		}
	}
	if r.cluster != nil {
		errs = append(errs, r.cluster.Close())
	}
	if r.tmpDir != "" {
		errs = append(errs, os.RemoveAll(r.tmpDir))
	}
	return errors.Join(errs...)
}

func orDefault(sslmode string) string {
	if sslmode == "" {
		return workflow.DefaultSSLMode
	}
	return sslmode
}

// testConfiguration sets the rotation schedule as a deployment does, which makes Secrets
// Manager test the rotation configuration, and reports the outcome.
func (r *run) testConfiguration(ctx context.Context) error {
	res, err := r.b.TestConfiguration(ctx)
	if err != nil {
		return err
	}
	c := &ConfigurationTest{Result: "passed", MS: res.Duration.Milliseconds()}
	if !res.Passed {
		c.Result, c.Error, c.Message = "failed", res.ErrorType, res.Message
	}
	r.report.ConfigurationTest = c
	r.out.printf("• %s\n", c.Line())
	return nil
}
