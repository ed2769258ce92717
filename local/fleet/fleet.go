// Package fleet runs the tasks of a local ECS service (local/ecs) as real processes of the
// sample service (examples/app), the way ECS runs them:
//
//   - a task gets the app secret's AWSCURRENT value as environment variables when it
//     launches, and never again;
//   - a deployment launches the new tasks, waits until each answers /healthz, marks them
//     RUNNING, then stops the old ones with SIGTERM, marks each STOPPED once its process
//     has exited, and completes; a new task that never becomes healthy fails the deployment
//     with a rollback, as the deployment circuit breaker does;
//   - while a task runs, the fleet sends it /work requests (each queries the primary and
//     the replica), and right before stopping it, a burst of requests that are still in
//     flight when SIGTERM arrives: they wake up during the drain and need more database
//     connections than the task's pools hold, so a draining task opens new connections, as a
//     real one does;
//   - a task is stopped with the reference stack's timings (internal/taskstop): its load
//     stops and its in-flight request may finish (the target group's deregistration delay),
//     then SIGTERM, the app drains for up to its DRAIN_TIMEOUT, and SIGKILL comes only after
//     the container's stopTimeout. A request is cut only if it outlives all of that.
//
// A Fleet is a localecs.Controller. Credentials returns the credentials its live tasks hold,
// for the connection probe.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/pgrotate/pgrotate/internal/taskstop"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/local/probe"
	"github.com/pgrotate/pgrotate/workflow"

	"github.com/pgrotate/pgrotate/internal/modroot"
)

// Defaults of Options' zero values. The stop timings are the reference stack's.
const (
	DefaultDrain               = taskstop.DrainTimeout
	DefaultStopTimeout         = taskstop.StopTimeout
	DefaultDeregistrationDelay = taskstop.DeregistrationDelay
	DefaultHealthTimeout       = 2 * time.Minute
	DefaultWorkInterval        = 100 * time.Millisecond
	DefaultBurst               = 3
	DefaultBurstHold           = time.Second
)

// SecretSource returns the app secret as a task launched now gets it (AWSCURRENT).
type SecretSource func(ctx context.Context) (workflow.AppSecret, error)

// Options configure a Fleet. Zero values take the documented defaults.
type Options struct {
	// Binary is the examples/app executable (see Build). Required.
	Binary string
	// SSLRootCert is the tasks' DB_SSLROOTCERT: the CA bundle they verify the servers with.
	SSLRootCert string
	// Drain is the tasks' DRAIN_TIMEOUT (default DefaultDrain): how long the app lets
	// in-flight requests run after SIGTERM. It must be shorter than StopTimeout.
	Drain time.Duration
	// StopTimeout is the container's stopTimeout (default DefaultStopTimeout): a task still
	// running this long after SIGTERM gets SIGKILL.
	StopTimeout time.Duration
	// DeregistrationDelay bounds the wait for a stopped task's in-flight load request
	// before SIGTERM, as the target group's deregistration delay does (default
	// DefaultDeregistrationDelay).
	DeregistrationDelay time.Duration
	// HealthTimeout bounds a new task's wait for a healthy /healthz (default
	// DefaultHealthTimeout, about the reference service's health check grace period and
	// its first checks: a task that is only slow to start on a busy machine is not a
	// failed one).
	HealthTimeout time.Duration
	// WorkInterval is the pause between two /work requests to a running task (default
	// DefaultWorkInterval); negative sends none.
	WorkInterval time.Duration
	// Burst is how many /work requests are in flight when a task gets SIGTERM (default
	// DefaultBurst); negative sends none.
	Burst int
	// BurstHold is how long each of those requests sleeps in the app before it queries
	// (default DefaultBurstHold), so its queries run while the task drains.
	BurstHold time.Duration
	// WorkTable is the tasks' WORK_TABLE (optional).
	WorkTable string
	// Events, if set, is told of each task's launch, health, stop and exit. It must not block.
	Events func(Event)
}

// Event is something that happened to a task.
type Event struct {
	At     time.Time
	Task   string // the task id (the last part of its ARN)
	Kind   string // one of the Event* constants
	User   string // the login user the task holds
	Detail string
}

// Event kinds.
const (
	EventLaunched  = "launched"
	EventHealthy   = "healthy"
	EventUnhealthy = "unhealthy"
	EventDraining  = "draining"
	EventStopped   = "stopped"
	EventCrashed   = "crashed" // the process exited without being told to stop
)

// Fleet runs tasks as processes. Create it with New, plug it into local ECS as the
// Controller, call Start once the service exists, and Close it when done. Its methods are
// safe for concurrent use.
type Fleet struct {
	opts   Options
	client *http.Client

	mu     sync.Mutex
	ecs    *localecs.ECS
	svc    workflow.Service
	secret SecretSource
	tasks  map[string]*task // by ARN, until the process has exited
	closed bool
	wg     sync.WaitGroup // process reapers, load loops, stops

	stats stats
}

var _ localecs.Controller = (*Fleet)(nil)

// New checks the options.
func New(opts Options) (*Fleet, error) {
	if opts.Binary == "" {
		return nil, errors.New("new fleet: Options.Binary is required")
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("new fleet: app binary: %w", err)
	}
	if opts.Drain <= 0 {
		opts.Drain = DefaultDrain
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Drain >= opts.StopTimeout {
		return nil, fmt.Errorf("new fleet: drain timeout %s must be shorter than the stop timeout %s", opts.Drain, opts.StopTimeout)
	}
	if opts.DeregistrationDelay <= 0 {
		opts.DeregistrationDelay = DefaultDeregistrationDelay
	}
	if opts.BurstHold <= 0 {
		opts.BurstHold = DefaultBurstHold
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = DefaultHealthTimeout
	}
	if opts.WorkInterval == 0 {
		opts.WorkInterval = DefaultWorkInterval
	}
	if opts.Burst == 0 {
		opts.Burst = DefaultBurst
	}
	return &Fleet{
		opts: opts,
		// No keep-alive: a draining server closes idle connections, and every request
		// should reach the task afresh anyway.
		// The timeout is a backstop: the app bounds its queries, and a stopped task is
		// killed after its stop timeout, which ends any request it still holds.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: opts.DeregistrationDelay + opts.StopTimeout + time.Minute},
		tasks:  make(map[string]*task),
	}, nil
}

// Start attaches the fleet to a service of e and launches a process for each of the
// service's tasks (those AddService recorded), with the secret source's value, and waits
// until they are all healthy. Deployments carried out before Start fail.
func (f *Fleet) Start(ctx context.Context, e *localecs.ECS, svc workflow.Service, secret SecretSource) error {
	if e == nil || secret == nil {
		return errors.New("start fleet: need an ECS and a secret source")
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errors.New("start fleet: closed")
	}
	if f.ecs != nil {
		f.mu.Unlock()
		return errors.New("start fleet: already started")
	}
	f.ecs, f.svc, f.secret = e, svc, secret
	f.mu.Unlock()

	out, err := e.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(svc.Cluster), ServiceName: aws.String(svc.Service)})
	if err != nil {
		return fmt.Errorf("start fleet: list tasks of %s: %w", svc, err)
	}
	started := make([]*task, 0, len(out.TaskArns))
	for _, arn := range out.TaskArns {
		t, err := f.launch(ctx, arn)
		if err != nil {
			return fmt.Errorf("start fleet: %w", err)
		}
		started = append(started, t)
	}
	errs := make([]error, len(started))
	var wg sync.WaitGroup
	for i, t := range started {
		wg.Go(func() { errs[i] = f.waitHealthy(ctx, t) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("start fleet: %w", err)
	}
	return nil
}

// Deploy carries out a deployment as an ECS rolling update with minimumHealthyPercent 100
// and maximumPercent 200 does. It implements localecs.Controller.
func (f *Fleet) Deploy(ctx context.Context, r *localecs.Rollout) {
	r.Go(func() { f.deploy(ctx, r) })
}

func (f *Fleet) deploy(ctx context.Context, r *localecs.Rollout) {
	f.mu.Lock()
	attached := f.ecs != nil && !f.closed
	f.mu.Unlock()
	if !attached {
		_ = r.Fail("the fleet is not running", false)
		return
	}
	arns, ok := launchAll(r)
	if !ok {
		return // superseded, completed or failed meanwhile: the newer deployment takes over
	}
	launched, err := f.startAll(ctx, arns)
	if err != nil {
		if ctx.Err() != nil {
			f.stopAll(launched, "deployment cancelled", false)
			return
		}
		f.failDeployment(ctx, r, "launch task: "+err.Error(), launched)
		return
	}
	err = f.awaitRunning(ctx, r, launched)
	if ctx.Err() != nil {
		// Superseded: the newer deployment stops these tasks as old ones. Closed: Close does.
		return
	}
	if err != nil {
		f.failDeployment(ctx, r, err.Error(), launched)
		return
	}
	// The new tasks are healthy: stop the old ones. Each drains, then is STOPPED.
	f.stopOld(r)
	if err := r.Complete(); err != nil && !errors.Is(err, localecs.ErrSuperseded) {
		f.event(Event{Kind: EventUnhealthy, Detail: "complete deployment " + r.ID() + ": " + err.Error()})
	}
}

// failDeployment stops what this deployment started, then lets ECS roll back to the previous one.
func (f *Fleet) failDeployment(ctx context.Context, r *localecs.Rollout, reason string, launched []*task) {
	f.stopAll(launched, "deployment failed: "+reason, false)
	if err := r.Fail(reason, true); err != nil && !errors.Is(err, localecs.ErrSuperseded) {
		// Nothing completed to roll back to: the deployment stays FAILED.
		_ = r.Fail(reason, false)
	}
	f.reconcile(ctx)
}

// launchAll records the deployment's new tasks; false when the deployment ended meanwhile.
func launchAll(r *localecs.Rollout) ([]string, bool) {
	n := r.Desired()
	arns := make([]string, 0, n)
	for range n {
		arn, err := r.Launch()
		if err != nil {
			return nil, false
		}
		arns = append(arns, arn)
	}
	return arns, true
}

// startAll starts the tasks' processes all at once, as ECS does, and returns those that started.
func (f *Fleet) startAll(ctx context.Context, arns []string) ([]*task, error) {
	started := make([]*task, len(arns))
	launchErrs := make([]error, len(arns))
	var lwg sync.WaitGroup
	for i, arn := range arns {
		lwg.Go(func() { started[i], launchErrs[i] = f.launch(ctx, arn) })
	}
	lwg.Wait()
	launched := make([]*task, 0, len(arns))
	for _, t := range started {
		if t != nil {
			launched = append(launched, t)
		}
	}
	return launched, errors.Join(launchErrs...)
}

// awaitRunning waits for each task to be healthy, then marks it RUNNING.
func (f *Fleet) awaitRunning(ctx context.Context, r *localecs.Rollout, launched []*task) error {
	errs := make([]error, len(launched))
	var wg sync.WaitGroup
	for i, t := range launched {
		wg.Go(func() {
			if errs[i] = f.waitHealthy(ctx, t); errs[i] == nil {
				errs[i] = r.Running(t.arn)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopOld stops the previous deployments' tasks, each draining first, and waits for them.
func (f *Fleet) stopOld(r *localecs.Rollout) {
	var stops sync.WaitGroup
	for _, arn := range r.OldTasks() {
		if err := r.Stop(arn, "Scaling activity initiated by (deployment "+r.ID()+")"); err != nil {
			continue
		}
		f.mu.Lock()
		t := f.tasks[arn]
		f.mu.Unlock()
		stops.Go(func() {
			if t != nil {
				f.stop(t, "replaced by deployment "+r.ID(), true)
			}
			_ = r.Stopped(arn)
		})
	}
	stops.Wait()
}

// reconcile launches a process for every live task of the service that has none (the tasks
// a rollback relaunches).
func (f *Fleet) reconcile(ctx context.Context) {
	f.mu.Lock()
	e, svc := f.ecs, f.svc
	f.mu.Unlock()
	out, err := e.ListTasks(context.WithoutCancel(ctx), &ecs.ListTasksInput{Cluster: aws.String(svc.Cluster), ServiceName: aws.String(svc.Service)})
	if err != nil {
		return
	}
	for _, arn := range out.TaskArns {
		f.mu.Lock()
		_, ok := f.tasks[arn]
		f.mu.Unlock()
		if ok {
			continue
		}
		if t, err := f.launch(context.WithoutCancel(ctx), arn); err == nil {
			f.wg.Go(func() { _ = f.waitHealthy(context.WithoutCancel(ctx), t) })
		}
	}
}

// Credentials returns the credentials that the live tasks (starting, running or draining)
// hold, one entry per task.
func (f *Fleet) Credentials() []probe.Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]probe.Credential, 0, len(f.tasks))
	for _, t := range f.tasks {
		out = append(out, probe.Credential{User: t.user, Password: t.password})
	}
	return out
}

// PIDs returns the process ids of the live tasks.
func (f *Fleet) PIDs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pids []int
	for _, t := range f.tasks {
		pids = append(pids, t.cmd.Process.Pid)
	}
	return pids
}

// Close stops every task (SIGTERM, then SIGKILL after the stop timeout) and waits for the processes to exit. Later deployments fail.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	live := make([]*task, 0, len(f.tasks))
	for _, t := range f.tasks {
		live = append(live, t)
	}
	f.mu.Unlock()
	f.stopAll(live, "fleet closed", false)
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.tasks); n > 0 {
		return fmt.Errorf("close fleet: %d tasks still running", n)
	}
	return nil
}

func (f *Fleet) stopAll(ts []*task, reason string, burst bool) {
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() { f.stop(t, reason, burst) })
	}
	wg.Wait()
}

func (f *Fleet) event(ev Event) {
	if f.opts.Events == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	f.opts.Events(ev)
}

// Build compiles examples/app into dir and returns the binary's path. It runs `go build`
// in the pgrotate module, found by walking up from the working directory.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := modroot.Find()
	if err != nil {
		return "", fmt.Errorf("build examples/app: %w (run from the pgrotate module, or give a prebuilt binary)", err)
	}
	bin := filepath.Join(dir, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/app")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build examples/app: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
