// Package backend assembles pgrotate's local backend: the app and admin secrets in an
// in-process Secrets Manager, ECS services in an in-process ECS, the real
// statemachine/rotation.asl.json running in aws-local-stepfunctions with its Task states
// calling the real Go step handlers, and the real rotation function, all against real
// PostgreSQL servers. The execution tests and `pgrotate demo` both run rotations through it.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/tasks/evidence"
	"github.com/pgrotate/pgrotate/workflow"
)

// Fake ARNs of the local deployment.
const (
	StateMachineARN = "arn:aws:states:local:000000000000:stateMachine:pgrotate-rotation"
	AlarmTopicARN   = "arn:aws:sns:local:000000000000:pgrotate-alarms"
	functionPrefix  = "arn:aws:lambda:local:000000000000:function:pgrotate-"
	snsPublish      = "arn:aws:states:::sns:publish"
	// RotationFunctionARN is the rotation function, as Secrets Manager knows it.
	RotationFunctionARN = functionPrefix + spec.Rotator
)

// Database is how the backend reaches PostgreSQL: an admin login on the primary, the
// replicas, and the TLS settings every connection uses.
type Database struct {
	Primary       workflow.Endpoint
	Replicas      []workflow.Endpoint
	AdminUser     string
	AdminPassword workflow.Password
	// AdminDB is the admin secret's database; default "postgres".
	AdminDB string
	// AppDB is the application's database; default "app".
	AppDB string
	// SSLMode defaults to verify-full; CAFile is the CA bundle to verify against.
	SSLMode string
	CAFile  string
}

// FromCluster describes a cluster started by local/pgcluster.
func FromCluster(c *pgcluster.Cluster) Database {
	return Database{
		Primary:       workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port},
		Replicas:      []workflow.Endpoint{{Host: c.Replica.Host, Port: c.Replica.Port}},
		AdminUser:     c.AdminUser(),
		AdminPassword: workflow.NewPassword(c.AdminPassword()),
		AdminDB:       "postgres",
		AppDB:         pgcluster.AppDatabase,
		CAFile:        c.CAFile,
	}
}

// Options configure a Backend. Zero values take the documented defaults.
type Options struct {
	Database Database
	// AppUser is the first login user; default "app_user". It must be a base name (not
	// x_clone), and an existing role pgrotate did not create is refused unless
	// AdoptExistingUser.
	AppUser string
	// AdoptExistingUser lets the bootstrap take over an existing AppUser (or its alternate)
	// that pgrotate did not create: its password is replaced. Backend.Adopted lists them.
	AdoptExistingUser bool
	// Services are the ECS services that hold the app secret, each created with
	// TasksPerService tasks (default 2) launched at start.
	Services        []workflow.Service
	TasksPerService int
	// Controller plays ECS deployments; default localecs.Auto (instant success).
	Controller localecs.Controller
	// TimeScale shrinks the state machine's waits and retry intervals; default 0.01.
	TimeScale float64
	// Log receives the handlers' and the rotation function's log lines.
	Log *slog.Logger
	// Intercept wraps each Task handler, keyed by state resource, for fault injection.
	Intercept func(resource string, next sfnlocal.Handler) sfnlocal.Handler
	// RetryIntervalOverrides are passed to the interpreter (see sfnlocal.Options).
	RetryIntervalOverrides map[string]time.Duration
	// OnEvent, if set, receives each execution history event as it is recorded (see
	// sfnlocal.Options.OnEvent): what `pgrotate demo` prints its live timeline from.
	OnEvent func(executionArn string, event types.HistoryEvent)
	// RotationTokens makes the RotationToken of each Step (Secrets Manager's per-invocation
	// secret); default: random. Tests use it to know which values must never appear.
	RotationTokens func() (workflow.Password, error)
	// RetirePreviousAfter turns retirement on: after every service's redeploy completed, the
	// previous user's password expires after this grace. Zero: off.
	RetirePreviousAfter time.Duration
}

// Backend is a running local deployment.
type Backend struct {
	opts           Options
	pg             postgres.PG
	Secrets        *localsecrets.Store
	Store          *secretstore.Store
	ECS            *localecs.ECS
	Machine        *sfnlocal.Machine
	Rotator        *rotator.Rotator
	AppSecretARN   string
	AdminSecretARN string
	// DemoTable is the table the app user owns (DemoTableFor), which the sample app reads.
	DemoTable string
	// Adopted lists the existing roles the bootstrap took over (AdoptExistingUser).
	Adopted []string

	mu            sync.Mutex
	notifications []string
	served        *Served // set by ServeAWS: evidence is delivered to it
}

// New bootstraps the database (the admin secret's login, the first app user with a fresh
// password, a table it owns), creates both secrets and the services, and starts the
// interpreter.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.AppUser == "" {
		opts.AppUser = "app_user"
	}
	if err := workflow.ValidateRoleName(opts.AppUser); err != nil {
		return nil, err
	}
	if opts.Database.AdminDB == "" {
		opts.Database.AdminDB = "postgres"
	}
	if opts.Database.AppDB == "" {
		opts.Database.AppDB = "app"
	}
	if opts.TasksPerService <= 0 {
		opts.TasksPerService = 2
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 0.01
	}
	if opts.Controller == nil {
		opts.Controller = localecs.Auto{}
	}
	b := &Backend{
		opts:    opts,
		pg:      postgres.PG{Options: postgres.Options{CABundle: opts.Database.CAFile}},
		Secrets: localsecrets.New(),
		ECS:     localecs.New(localecs.WithController(opts.Controller)),
	}
	b.Store = secretstore.New(b.Secrets)
	if err := b.bootstrap(ctx); err != nil {
		b.ECS.Close()
		return nil, err
	}
	// Tasks launch after the secret exists, as ECS injects it at launch.
	launched := time.Now()
	for _, svc := range opts.Services {
		if _, err := b.ECS.AddService(svc.Cluster, svc.Service, opts.TasksPerService, launched); err != nil {
			b.ECS.Close()
			return nil, fmt.Errorf("add service %s: %w", svc, err)
		}
	}
	if err := b.startMachine(); err != nil {
		b.ECS.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) log() *slog.Logger {
	if b.opts.Log != nil {
		return b.opts.Log
	}
	return slog.Default()
}

// startMachine renders rotation.asl.json with local ARNs and wires every Task to its Go
// handler through the registry's constructors (package lambdas), exactly as the deployed
// Lambdas are wired in cmd/, with the local models as their AWS clients.
func (b *Backend) startMachine() error {
	arn := func(name string) string { return functionPrefix + name }
	env, err := b.functionEnv()
	if err != nil {
		return err
	}
	late := &lateSFN{}
	deps := func(name string) lambdas.Deps { return b.deps(name, env, late, nil) }
	d := deps(spec.Rotator)
	b.Rotator = lambdas.NewRotator(d)
	if err := d.Env.Err(); err != nil {
		return fmt.Errorf("local rotation function: %w", err)
	}
	b.Rotator.Config.PollInterval = 20 * time.Millisecond
	handlers := map[string]sfnlocal.Handler{snsPublish: b.publish}
	subs := map[string]string{statemachine.AlarmTopicArn: AlarmTopicARN}
	for _, f := range spec.Steps() {
		var h any = b.Rotator.Handle
		if f.Name != spec.Rotator {
			if h, err = lambdas.Handler(f.Name, deps(f.Name)); err != nil {
				return fmt.Errorf("local %s function: %w", f.Name, err)
			}
		}
		handlers[arn(f.Name)] = sfnlocal.LambdaFunc(h)
		subs[f.Placeholder] = arn(f.Name)
	}
	// Secrets Manager invokes the same function for the rotation steps (RotateSecret).
	b.Secrets.RegisterFunction(RotationFunctionARN, func(ctx context.Context, ev localsecrets.RotationEvent) error {
		_, err := b.Rotator.Handle(ctx, rotator.Event{Step: ev.Step, SecretID: ev.SecretID, ClientRequestToken: ev.ClientRequestToken, RotationToken: workflow.NewPassword(ev.RotationToken)})
		if s := b.getServed(); s != nil && err != nil {
			// Secrets Manager records RotationFailed when the rotation function fails a step.
			s.record(s.rotationFailed(ctx, fmt.Errorf("%s: %w", ev.Step, err)))
		}
		return err
	})
	if b.opts.Intercept != nil {
		for res, h := range handlers {
			handlers[res] = b.opts.Intercept(res, h)
		}
	}
	subs[statemachine.RetirePreviousAfter] = statemachine.RetireOff
	if b.opts.RetirePreviousAfter > 0 {
		subs[statemachine.RetirePreviousAfter] = b.opts.RetirePreviousAfter.String()
	}
	def, err := statemachine.Render(subs)
	if err != nil {
		return err
	}
	m, err := sfnlocal.New(sfnlocal.Options{
		Definition:             def,
		StateMachineArn:        StateMachineARN,
		Handlers:               handlers,
		TimeScale:              b.opts.TimeScale,
		RetryIntervalOverrides: b.opts.RetryIntervalOverrides,
		OnEvent:                b.onEvent,
	})
	if err != nil {
		return err
	}
	b.Machine = m
	late.StepFunctions = m
	return nil
}

// deps are function name's environment (only the variables the registry gives it, as in the
// CDK) and the local models as its AWS clients, for the registry's constructors; objects is
// the evidence bucket (ServeAWS's S3 client).
func (b *Backend) deps(name string, env map[string]string, sfn rotator.StepFunctions, objects evidence.Objects) lambdas.Deps {
	f, _ := spec.Lookup(name)
	return lambdas.Deps{
		Env:     &lambdaenv.Env{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok && f.Reads(k) }},
		Clients: lambdas.Clients{SecretsManager: b.Secrets, StepFunctions: sfn, ECS: b.ECS, S3: objects},
		Log:     b.log(),
	}
}

// onEvent passes each history event to Options.OnEvent and to the served endpoint's
// evidence delivery (ServeAWS), if any.
func (b *Backend) onEvent(executionArn string, ev types.HistoryEvent) {
	if b.opts.OnEvent != nil {
		b.opts.OnEvent(executionArn, ev)
	}
	if s := b.getServed(); s != nil {
		s.onEvent(executionArn, ev)
	}
}

func (b *Backend) setServed(s *Served) { b.mu.Lock(); b.served = s; b.mu.Unlock() }

func (b *Backend) getServed() *Served {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.served
}

// functionEnv is every variable the CDK sets, for any function (lambdas/spec); deps gives
// each function its own.
func (b *Backend) functionEnv() (map[string]string, error) {
	services, err := json.Marshal(b.opts.Services)
	if err != nil {
		return nil, fmt.Errorf("local function environment: %w", err)
	}
	replicas, err := json.Marshal(b.opts.Database.Replicas)
	if err != nil {
		return nil, fmt.Errorf("local function environment: %w", err)
	}
	env := map[string]string{
		spec.EnvStateMachineARN: StateMachineARN,
		spec.EnvServices:        string(services),
		spec.EnvReplicas:        string(replicas),
	}
	if b.opts.Database.CAFile != "" {
		env[spec.EnvCABundle] = b.opts.Database.CAFile
	}
	return env, nil
}

// publish is the SNS topic: it keeps the alarm messages.
func (b *Backend) publish(_ context.Context, payload []byte) ([]byte, error) {
	var in struct{ TopicArn, Subject, Message string }
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, fmt.Errorf("sns publish: %w", err)
	}
	if in.TopicArn != AlarmTopicARN {
		return nil, fmt.Errorf("sns publish: unknown topic %s", in.TopicArn)
	}
	b.mu.Lock()
	b.notifications = append(b.notifications, in.Message)
	n := len(b.notifications)
	b.mu.Unlock()
	return json.Marshal(map[string]string{"MessageId": fmt.Sprintf("local-%d", n)})
}

// Notifications returns the alarm messages published so far.
func (b *Backend) Notifications() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.notifications...)
}

// Close stops the interpreter and the ECS controller. It does not touch the database.
func (b *Backend) Close() error {
	var err error
	if b.Machine != nil {
		err = b.Machine.Close()
	}
	b.ECS.Close()
	return err
}

// Secret reads the app secret at a stage.
func (b *Backend) Secret(ctx context.Context, stage string) (workflow.AppSecret, string, error) {
	return b.Store.AppSecretAt(ctx, b.AppSecretARN, stage)
}

// Rotation is the outcome of one rotation.
type Rotation struct {
	Token string
	// StepErr is the first Secrets Manager step that failed, as Secrets Manager would see it.
	StepErr error
	Status  types.ExecutionStatus
	// Error and Cause are the execution's, when it failed.
	Error, Cause string
	Timeline     []Span
	Started      time.Time
	Ended        time.Time
	// Retirement is the succeeded execution's retirement: the policy, and with it on, what
	// RetirePrevious did.
	Retirement *workflow.Retirement
}

// Span is one top-level state's time in an execution.
type Span struct {
	State   string
	Entered time.Time
	Exited  time.Time
}

// Rotate rotates the app secret as Secrets Manager does — a new version id, then
// createSecret, setSecret, testSecret and finishSecret on the rotation function, stopping at
// the first failure — and waits for the execution to end (the redeploy runs after
// finishSecret).
func (b *Backend) Rotate(ctx context.Context) (*Rotation, error) {
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	r := &Rotation{Token: token, Started: time.Now()}
	for _, step := range []string{rotator.StepCreate, rotator.StepSet, rotator.StepTest, rotator.StepFinish} {
		if err := b.Step(ctx, step, token); err != nil {
			r.StepErr = fmt.Errorf("%s: %w", step, err)
			break
		}
	}
	if s := b.getServed(); s != nil && r.StepErr != nil {
		// Secrets Manager records RotationFailed when a step of the rotation function fails.
		s.record(s.rotationFailed(ctx, r.StepErr))
	}
	latest, found, err := (&executions.Reader{API: b.Machine, StateMachineARN: StateMachineARN}).Latest(ctx, token)
	if err != nil {
		return r, err
	}
	if execARN := executions.ExecutionARN(StateMachineARN, latest.Name); found {
		if r.Status, err = b.Machine.Wait(ctx, execARN); err != nil {
			return r, err
		}
		if err := b.fill(ctx, r, execARN); err != nil {
			return r, err
		}
	}
	r.Ended = time.Now()
	return r, nil
}

// ConfigurationTest is the outcome of TestConfiguration.
type ConfigurationTest struct {
	Passed   bool
	Duration time.Duration
	// ErrorType and Message are the rotation function's error when the test failed (or
	// Secrets Manager's, when it could not run the test).
	ErrorType, Message string
}

// TestConfiguration sets the app secret's rotation schedule without rotating, as a
// deployment does (a CloudFormation rotation schedule calls RotateSecret with
// RotateImmediately false): Secrets Manager then runs the rotation function's testSecret on
// an AWSPENDING version it creates and removes. The error is returned only when the test
// could not be run at all.
func (b *Backend) TestConfiguration(ctx context.Context) (ConfigurationTest, error) {
	began := time.Now()
	_, err := b.Secrets.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:          aws.String(b.AppSecretARN),
		RotationLambdaARN: aws.String(RotationFunctionARN),
		RotationRules:     &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(15)},
		RotateImmediately: aws.Bool(false),
	})
	res := ConfigurationTest{Passed: err == nil, Duration: time.Since(began)}
	var failed *localsecrets.RotationFunctionFailed
	switch {
	case errors.As(err, &failed):
		res.ErrorType, res.Message = failed.ErrorType, failed.ErrorMessage
	case err != nil:
		return res, fmt.Errorf("rotation configuration test: %w", err)
	}
	return res, nil
}

// Step invokes the rotation function as Secrets Manager does, with a fresh RotationToken.
func (b *Backend) Step(ctx context.Context, step, token string) error {
	rt, err := b.rotationToken()
	if err != nil {
		return err
	}
	stepCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	_, err = b.Rotator.Handle(stepCtx, rotator.Event{Step: step, SecretID: b.AppSecretARN, ClientRequestToken: token, RotationToken: rt})
	return err
}

func (b *Backend) rotationToken() (workflow.Password, error) {
	if b.opts.RotationTokens != nil {
		return b.opts.RotationTokens()
	}
	rt, err := newToken()
	if err != nil {
		return workflow.Password{}, err
	}
	return workflow.NewPassword(rt + rt), nil
}

// fill reads the execution's outcome and its top-level timeline from the history.
func (b *Backend) fill(ctx context.Context, r *Rotation, execARN string) error {
	desc, err := b.Machine.DescribeExecution(ctx, describe(execARN))
	if err != nil {
		return err
	}
	r.Error, r.Cause = aws.ToString(desc.Error), aws.ToString(desc.Cause)
	if desc.Status == types.ExecutionStatusSucceeded {
		var out workflow.State
		if err := json.Unmarshal([]byte(aws.ToString(desc.Output)), &out); err != nil {
			return fmt.Errorf("read the output of %s: %w", execARN, err)
		}
		r.Retirement = out.Retirement
	}
	events, err := b.Machine.Events(execARN)
	if err != nil {
		return err
	}
	open := map[string]int{}
	for _, ev := range events {
		if d := ev.StateEnteredEventDetails; d != nil && workflow.IsTopLevel(aws.ToString(d.Name)) {
			open[aws.ToString(d.Name)] = len(r.Timeline)
			r.Timeline = append(r.Timeline, Span{State: aws.ToString(d.Name), Entered: aws.ToTime(ev.Timestamp)})
		}
		if d := ev.StateExitedEventDetails; d != nil && workflow.IsTopLevel(aws.ToString(d.Name)) {
			if i, ok := open[aws.ToString(d.Name)]; ok {
				r.Timeline[i].Exited = aws.ToTime(ev.Timestamp)
			}
		}
	}
	return nil
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// lateSFN is the handlers' Step Functions client: the interpreter, which is built after
// them (it needs their handlers) and set before any of them can run (startMachine).
type lateSFN struct{ rotator.StepFunctions }

func describe(arn string) *sfn.DescribeExecutionInput {
	return &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)}
}
