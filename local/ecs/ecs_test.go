package localecs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"

	"github.com/pgrotate/pgrotate/internal/testctx"
)

// api is every operation the fake implements; both the SDK client and the fake must satisfy
// it, which pins the signatures to the SDK's.
type api interface {
	UpdateService(context.Context, *ecs.UpdateServiceInput, ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
	DescribeServices(context.Context, *ecs.DescribeServicesInput, ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
}

var (
	_ api = (*ecs.Client)(nil)
	_ api = (*ECS)(nil)
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newECS returns an ECS with service "prod/web" (3 tasks launched at t0) and its clock,
// set to t0+1h.
func newECS(t *testing.T, opts ...Option) (*ECS, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	e := New(append([]Option{WithClock(clk.Now)}, opts...)...)
	t.Cleanup(e.Close)
	if _, err := e.AddService("prod", "web", 3, t0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	return e, clk
}

func describe(t *testing.T, e *ECS) types.Service {
	t.Helper()
	out, err := e.DescribeServices(testctx.Context(t), &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Services) != 1 || len(out.Failures) != 0 {
		t.Fatalf("DescribeServices: %d services, failures %v", len(out.Services), out.Failures)
	}
	return out.Services[0]
}

// dep is the part of a deployment the tests compare.
type dep struct {
	Status           string
	Rollout          types.DeploymentRolloutState
	Desired, Running int32
}

func deps(s types.Service) []dep {
	var out []dep
	for _, d := range s.Deployments {
		out = append(out, dep{aws.ToString(d.Status), d.RolloutState, d.DesiredCount, d.RunningCount})
	}
	return out
}

func wantDeps(t *testing.T, e *ECS, want ...dep) types.Service {
	t.Helper()
	s := describe(t, e)
	if got := deps(s); !slices.Equal(got, want) {
		t.Fatalf("deployments = %+v, want %+v", got, want)
	}
	return s
}

type taskView struct {
	StartedBy, Last, Desired string
	Started                  time.Time
}

// tasks lists the service's tasks with the given desired status, described.
func tasks(t *testing.T, e *ECS, desired types.DesiredStatus) []taskView {
	t.Helper()
	l, err := e.ListTasks(testctx.Context(t), &ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("web"), DesiredStatus: desired})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.TaskArns) == 0 {
		return nil
	}
	d, err := e.DescribeTasks(testctx.Context(t), &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: l.TaskArns})
	if err != nil {
		t.Fatal(err)
	}
	var out []taskView
	for _, task := range d.Tasks {
		out = append(out, taskView{aws.ToString(task.StartedBy), aws.ToString(task.LastStatus), aws.ToString(task.DesiredStatus), aws.ToTime(task.StartedAt)})
	}
	return out
}

func force(t *testing.T, e *ECS) string {
	t.Helper()
	out, err := e.UpdateService(testctx.Context(t), &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Service.Deployments[0]
	if aws.ToString(d.Status) != StatusPrimary || d.RolloutState != types.DeploymentRolloutStateInProgress {
		t.Fatalf("UpdateService output: first deployment %s %s, want PRIMARY IN_PROGRESS", aws.ToString(d.Status), d.RolloutState)
	}
	return aws.ToString(d.Id)
}

func wantAPIErr(t *testing.T, err error, code string) {
	t.Helper()
	var op *smithy.OperationError
	var apiErr smithy.APIError
	if !errors.As(err, &op) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Fatalf("error = %v, want %s in a *smithy.OperationError", err, code)
	}
}

func TestAddService(t *testing.T) {
	e, _ := newECS(t)
	s := wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
	if aws.ToString(s.ServiceArn) != "arn:aws:ecs:local:000000000000:service/prod/web" || aws.ToString(s.Status) != "ACTIVE" ||
		s.DesiredCount != 3 || s.RunningCount != 3 {
		t.Errorf("service = %s %s desired %d running %d", aws.ToString(s.ServiceArn), aws.ToString(s.Status), s.DesiredCount, s.RunningCount)
	}
	d := s.Deployments[0]
	if !regexp.MustCompile(`^ecs-svc/\d{19}$`).MatchString(aws.ToString(d.Id)) || !aws.ToTime(d.CreatedAt).Equal(t0) {
		t.Errorf("deployment %s created %v", aws.ToString(d.Id), aws.ToTime(d.CreatedAt))
	}
	got := tasks(t, e, "")
	want := slices.Repeat([]taskView{{aws.ToString(d.Id), TaskRunning, TaskRunning, t0}}, 3)
	if !slices.Equal(got, want) {
		t.Errorf("tasks = %+v, want %+v", got, want)
	}
	if _, err := e.AddService("prod", "web", 1, t0); err == nil {
		t.Error("duplicate service accepted")
	}
	if _, err := e.AddService("prod", "", 1, t0); err == nil {
		t.Error("nameless service accepted")
	}
}

func TestUpdateService(t *testing.T) {
	e, clk := newECS(t, WithController(Manual{}))
	old := describe(t, e).Deployments[0]

	// No force, no new task definition: no deployment.
	if _, err := e.UpdateService(testctx.Context(t), &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})

	id := force(t, e)
	s := wantDeps(t, e,
		dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 0},
		dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})
	if aws.ToString(s.Deployments[1].Id) != aws.ToString(old.Id) || id == aws.ToString(old.Id) {
		t.Errorf("ids: new %s, old %s → %s", id, aws.ToString(old.Id), aws.ToString(s.Deployments[1].Id))
	}
	if d := s.Deployments[0]; !aws.ToTime(d.CreatedAt).Equal(clk.Now()) || !aws.ToTime(d.UpdatedAt).Equal(clk.Now()) ||
		aws.ToString(d.RolloutStateReason) == "" {
		t.Errorf("new deployment created %v updated %v reason %q", aws.ToTime(d.CreatedAt), aws.ToTime(d.UpdatedAt), aws.ToString(d.RolloutStateReason))
	}

	// A second forced deployment demotes the first: two ACTIVE behind the PRIMARY.
	force(t, e)
	wantDeps(t, e,
		dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 0},
		dep{StatusActive, types.DeploymentRolloutStateInProgress, 0, 0},
		dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})

	// DesiredCount changes the PRIMARY's desired count; by ARN works too.
	if _, err := e.UpdateService(testctx.Context(t), &ecs.UpdateServiceInput{Cluster: aws.String(clusterARN("prod")), Service: aws.String(ServiceARN("prod", "web")), DesiredCount: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	if s := describe(t, e); s.DesiredCount != 5 || s.Deployments[0].DesiredCount != 5 || len(s.Deployments) != 3 {
		t.Errorf("after DesiredCount 5: service %d, primary %d, %d deployments", s.DesiredCount, s.Deployments[0].DesiredCount, len(s.Deployments))
	}
	// A new task definition starts a deployment without the force flag.
	if _, err := e.UpdateService(testctx.Context(t), &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), TaskDefinition: aws.String("web:2")}); err != nil {
		t.Fatal(err)
	}
	if s := describe(t, e); len(s.Deployments) != 4 || aws.ToString(s.Deployments[0].TaskDefinition) != "web:2" {
		t.Errorf("new task definition: %d deployments", len(s.Deployments))
	}
}

func TestUpdateServiceErrors(t *testing.T) {
	e, _ := newECS(t)
	if _, err := e.AddService("prod", "gone", 1, t0); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteService("prod", "gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   ecs.UpdateServiceInput
		code string
	}{
		{"unknown service", ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("nope"), ForceNewDeployment: true}, "ServiceNotFoundException"},
		{"unknown cluster", ecs.UpdateServiceInput{Cluster: aws.String("qa"), Service: aws.String("web"), ForceNewDeployment: true}, "ClusterNotFoundException"},
		{"default cluster", ecs.UpdateServiceInput{Service: aws.String("web"), ForceNewDeployment: true}, "ClusterNotFoundException"},
		{"deleted service", ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("gone"), ForceNewDeployment: true}, "ServiceNotActiveException"},
		{"no service", ecs.UpdateServiceInput{Cluster: aws.String("prod")}, "InvalidParameterException"},
		{"negative count", ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), DesiredCount: aws.Int32(-1)}, "InvalidParameterException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.UpdateService(testctx.Context(t), &tc.in)
			wantAPIErr(t, err, tc.code)
			wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
		})
	}
}

func TestCompleteDeployment(t *testing.T) {
	e, clk := newECS(t, WithController(Manual{}))
	oldID := aws.ToString(describe(t, e).Deployments[0].Id)
	id := force(t, e)
	now := clk.Advance(time.Minute)
	if err := e.CompleteDeployment("prod", "web"); err != nil {
		t.Fatal(err)
	}
	s := wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
	if aws.ToString(s.Deployments[0].Id) != id || !aws.ToTime(s.Deployments[0].UpdatedAt).Equal(now) {
		t.Errorf("completed deployment %s updated %v", aws.ToString(s.Deployments[0].Id), aws.ToTime(s.Deployments[0].UpdatedAt))
	}
	if got, want := tasks(t, e, ""), slices.Repeat([]taskView{{id, TaskRunning, TaskRunning, now}}, 3); !slices.Equal(got, want) {
		t.Errorf("running tasks = %+v, want %+v", got, want)
	}
	stopped := tasks(t, e, types.DesiredStatusStopped)
	if len(stopped) != 3 {
		t.Fatalf("%d stopped tasks, want 3", len(stopped))
	}
	for _, task := range stopped {
		if task.StartedBy != oldID || task.Last != TaskStopped || !task.Started.Equal(t0) {
			t.Errorf("stopped task = %+v", task)
		}
	}
	if err := e.CompleteDeployment("prod", "web"); !errors.Is(err, ErrSuperseded) {
		t.Errorf("completing twice: %v, want ErrSuperseded", err)
	}
	if err := e.FailDeployment("prod", "web", "late", true); !errors.Is(err, ErrSuperseded) {
		t.Errorf("failing a completed deployment: %v, want ErrSuperseded", err)
	}
	if err := e.CompleteDeployment("prod", "nope"); err == nil {
		t.Error("completing an unknown service succeeded")
	}
}

func TestFailDeployment(t *testing.T) {
	t.Run("rollback restores the previous deployment", func(t *testing.T) {
		e, _ := newECS(t, WithController(Manual{}))
		oldID := aws.ToString(describe(t, e).Deployments[0].Id)
		r, err := e.Rollout("prod", "web")
		if err != nil {
			t.Fatal(err)
		}
		if r.ID() != oldID {
			t.Fatalf("Rollout before the update = %s, want %s", r.ID(), oldID)
		}
		id := force(t, e)
		r, err = e.Rollout("prod", "web")
		if err != nil {
			t.Fatal(err)
		}
		arn, err := r.Launch() // one new task that will be stopped by the failure
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Running(arn); err != nil {
			t.Fatal(err)
		}
		if err := e.FailDeployment("prod", "web", "tasks failed to start", true); err != nil {
			t.Fatal(err)
		}
		s := wantDeps(t, e,
			dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3},
			dep{StatusActive, types.DeploymentRolloutStateFailed, 0, 0})
		if aws.ToString(s.Deployments[0].Id) != oldID || aws.ToString(s.Deployments[1].Id) != id ||
			aws.ToString(s.Deployments[1].RolloutStateReason) != "tasks failed to start" {
			t.Errorf("after rollback: %s, %s (%s)", aws.ToString(s.Deployments[0].Id), aws.ToString(s.Deployments[1].Id), aws.ToString(s.Deployments[1].RolloutStateReason))
		}
		for _, task := range tasks(t, e, "") {
			if task.StartedBy != oldID || !task.Started.Equal(t0) {
				t.Errorf("running task after rollback = %+v", task)
			}
		}
		// Later ECS forgets the failed deployment.
		if err := e.RemoveDeployment("prod", "web", oldID); err == nil {
			t.Error("removing the PRIMARY succeeded")
		}
		if err := e.RemoveDeployment("prod", "web", id); err != nil {
			t.Fatal(err)
		}
		wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
		if err := e.RemoveDeployment("prod", "web", id); err == nil {
			t.Error("removing twice succeeded")
		}
	})
	t.Run("without rollback the failed deployment stays PRIMARY", func(t *testing.T) {
		e, _ := newECS(t, WithController(Manual{}))
		force(t, e)
		if err := e.FailDeployment("prod", "web", "circuit breaker", false); err != nil {
			t.Fatal(err)
		}
		wantDeps(t, e,
			dep{StatusPrimary, types.DeploymentRolloutStateFailed, 3, 0},
			dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})
	})
	t.Run("rollback needs a completed deployment", func(t *testing.T) {
		e, _ := newECS(t, WithController(Manual{}))
		force(t, e)
		force(t, e)
		if err := e.RemoveDeployment("prod", "web", aws.ToString(describe(t, e).Deployments[2].Id)); err != nil {
			t.Fatal(err)
		}
		if err := e.FailDeployment("prod", "web", "x", true); err == nil {
			t.Fatal("rollback without a completed deployment succeeded")
		}
		wantDeps(t, e, // unchanged
			dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 0},
			dep{StatusActive, types.DeploymentRolloutStateInProgress, 0, 0})
	})
}

func TestAutoController(t *testing.T) {
	t.Run("instant", func(t *testing.T) {
		e, clk := newECS(t) // Auto{} is the default
		id := force(t, e)   // the output still says IN_PROGRESS
		s := wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
		if aws.ToString(s.Deployments[0].Id) != id {
			t.Errorf("completed %s, want %s", aws.ToString(s.Deployments[0].Id), id)
		}
		if got, want := tasks(t, e, ""), slices.Repeat([]taskView{{id, TaskRunning, TaskRunning, clk.Now()}}, 3); !slices.Equal(got, want) {
			t.Errorf("tasks = %+v, want %+v", got, want)
		}
	})
	t.Run("delayed", func(t *testing.T) {
		e, _ := newECS(t, WithController(Auto{Delay: 50 * time.Millisecond}))
		force(t, e)
		wantDeps(t, e,
			dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 0},
			dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})
		waitRollout(t, e, types.DeploymentRolloutStateCompleted)
		wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
	})
	t.Run("a superseded deployment never completes", func(t *testing.T) {
		e, _ := newECS(t, WithController(Auto{Delay: 50 * time.Millisecond}))
		first := force(t, e)
		second := force(t, e)
		waitRollout(t, e, types.DeploymentRolloutStateCompleted)
		s := wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
		if aws.ToString(s.Deployments[0].Id) != second {
			t.Errorf("completed %s, want the second deployment %s (first %s)", aws.ToString(s.Deployments[0].Id), second, first)
		}
		if n := len(tasks(t, e, "")); n != 3 {
			t.Errorf("%d running tasks, want 3", n)
		}
	})
	t.Run("Close stops pending work", func(t *testing.T) {
		e, _ := newECS(t, WithController(Auto{Delay: time.Hour}))
		force(t, e)
		done := make(chan struct{})
		go func() { e.Close(); close(done) }()
		// The delay outlasts the test's deadline: a Close that waited for it fails here.
		select {
		case <-done:
		case <-testctx.Context(t).Done():
			t.Fatal("Close waited for an hour-long delay")
		}
	})
}

// waitRollout polls until the PRIMARY deployment reaches state.
func waitRollout(t *testing.T, e *ECS, state types.DeploymentRolloutState) {
	t.Helper()
	testDone := testctx.Context(t).Done()
	for describe(t, e).Deployments[0].RolloutState != state {
		select {
		case <-testDone:
			t.Fatalf("PRIMARY deployment never reached %s", state)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestRollingController(t *testing.T) {
	// A controller shaped like the local demo's process fleet: new tasks first, healthy,
	// then the old ones drain and stop. Each phase waits for the test, which checks what
	// DescribeServices, ListTasks and DescribeTasks show in between.
	step := make(chan string)
	next := make(chan struct{})
	testDone := testctx.Context(t).Done()
	fleet := ControllerFunc(func(ctx context.Context, r *Rollout) {
		r.Go(func() {
			pause := func(phase string) bool {
				select {
				case step <- phase:
				case <-ctx.Done():
					return false
				}
				select {
				case <-next:
					return true
				case <-ctx.Done():
					return false
				}
			}
			var launched []string
			for range r.Desired() {
				arn, err := r.Launch()
				if err != nil {
					t.Error(err)
					return
				}
				launched = append(launched, arn)
			}
			if !pause("launched") {
				return
			}
			for _, arn := range launched {
				if err := r.Running(arn); err != nil {
					t.Error(err)
				}
			}
			if !pause("running") {
				return
			}
			old := r.OldTasks()
			for _, arn := range old {
				if err := r.Stop(arn, "replaced"); err != nil {
					t.Error(err)
				}
			}
			if !pause("draining") {
				return
			}
			for _, arn := range old {
				if err := r.Stopped(arn); err != nil {
					t.Error(err)
				}
			}
			if len(r.Tasks()) != 3 || len(r.OldTasks()) != 0 {
				t.Errorf("before Complete: %d new tasks, %d old", len(r.Tasks()), len(r.OldTasks()))
			}
			if err := r.Complete(); err != nil {
				t.Error(err)
			}
			select {
			case step <- "completed":
			case <-testDone: // the test gave up; let Close return
			}
		})
	})
	e, _ := newECS(t, WithController(fleet))
	oldID := aws.ToString(describe(t, e).Deployments[0].Id)
	id := force(t, e)

	expect := func(phase string) {
		t.Helper()
		select {
		case got := <-step:
			if got != phase {
				t.Fatalf("phase %s, want %s", got, phase)
			}
		case <-testDone:
			t.Fatalf("controller never reached %s", phase)
		}
	}
	count := func(views []taskView, startedBy, last string) int {
		n := 0
		for _, v := range views {
			if v.StartedBy == startedBy && v.Last == last {
				n++
			}
		}
		return n
	}

	expect("launched")
	s := wantDeps(t, e,
		dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 0},
		dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})
	if s.Deployments[0].PendingCount != 3 || s.PendingCount != 3 {
		t.Errorf("pending: deployment %d, service %d; want 3", s.Deployments[0].PendingCount, s.PendingCount)
	}
	if v := tasks(t, e, ""); count(v, id, TaskPending) != 3 || count(v, oldID, TaskRunning) != 3 {
		t.Errorf("launched: tasks %+v", v)
	}
	next <- struct{}{}

	expect("running")
	wantDeps(t, e,
		dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 3},
		dep{StatusActive, types.DeploymentRolloutStateCompleted, 3, 3})
	next <- struct{}{}

	expect("draining")
	// Draining tasks are no longer listed by default, but DesiredStatus STOPPED shows them
	// still DEACTIVATING: they hold the old credentials until they stop.
	if v := tasks(t, e, ""); len(v) != 3 || count(v, id, TaskRunning) != 3 {
		t.Errorf("draining, desired RUNNING: %+v", v)
	}
	if v := tasks(t, e, types.DesiredStatusStopped); len(v) != 3 || count(v, oldID, TaskDeactivating) != 3 {
		t.Errorf("draining, desired STOPPED: %+v", v)
	}
	wantDeps(t, e,
		dep{StatusPrimary, types.DeploymentRolloutStateInProgress, 3, 3},
		dep{StatusActive, types.DeploymentRolloutStateCompleted, 0, 0})
	next <- struct{}{}

	expect("completed")
	wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3})
	if v := tasks(t, e, types.DesiredStatusStopped); count(v, oldID, TaskStopped) != 3 {
		t.Errorf("completed, desired STOPPED: %+v", v)
	}
}

func TestRolloutTaskErrors(t *testing.T) {
	e, _ := newECS(t, WithController(Manual{}))
	if _, err := e.AddService("prod", "other", 1, t0); err != nil {
		t.Fatal(err)
	}
	otherTask := func() string {
		l, err := e.ListTasks(testctx.Context(t), &ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("other")})
		if err != nil {
			t.Fatal(err)
		}
		return l.TaskArns[0]
	}()
	force(t, e)
	r, err := e.Rollout("prod", "web")
	if err != nil {
		t.Fatal(err)
	}
	arn, err := r.Launch()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Running(arn); err != nil {
		t.Fatal(err)
	}
	if err := r.Running(arn); err == nil {
		t.Error("starting a RUNNING task succeeded")
	}
	if err := r.Stop(otherTask, "x"); err == nil {
		t.Error("stopping another service's task succeeded")
	}
	if err := r.Stopped("arn:aws:ecs:local:000000000000:task/prod/nope"); err == nil {
		t.Error("stopping an unknown task succeeded")
	}
	// A task that never ran stops at once.
	pending, err := r.Launch()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(pending, "not needed"); err != nil {
		t.Fatal(err)
	}
	d, err := e.DescribeTasks(testctx.Context(t), &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: []string{pending}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Tasks[0]; aws.ToString(got.LastStatus) != TaskStopped || aws.ToString(got.StoppedReason) != "not needed" || got.StartedAt != nil {
		t.Errorf("stopped pending task: %s %q started %v", aws.ToString(got.LastStatus), aws.ToString(got.StoppedReason), got.StartedAt)
	}
	// Once superseded, the old handle can no longer launch or complete.
	force(t, e)
	if _, err := r.Launch(); !errors.Is(err, ErrSuperseded) {
		t.Errorf("Launch on a superseded deployment: %v", err)
	}
	if err := r.Complete(); !errors.Is(err, ErrSuperseded) {
		t.Errorf("Complete on a superseded deployment: %v", err)
	}
}

func TestDescribeServices(t *testing.T) {
	e, _ := newECS(t)
	if _, err := e.AddService("prod", "worker", 1, t0); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteService("prod", "worker"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		cluster      string
		services     []string
		wantNames    []string
		wantStatus   []string
		wantFailures []string
		wantCode     string
	}{
		{name: "by name", cluster: "prod", services: []string{"web"}, wantNames: []string{"web"}, wantStatus: []string{"ACTIVE"}},
		{name: "by ARN", cluster: "prod", services: []string{ServiceARN("prod", "web")}, wantNames: []string{"web"}, wantStatus: []string{"ACTIVE"}},
		{name: "cluster by ARN", cluster: clusterARN("prod"), services: []string{"web"}, wantNames: []string{"web"}, wantStatus: []string{"ACTIVE"}},
		{
			name: "unknown service is MISSING", cluster: "prod", services: []string{"web", "nope"},
			wantNames: []string{"web"}, wantStatus: []string{"ACTIVE"}, wantFailures: []string{ServiceARN("prod", "nope")},
		},
		{name: "deleted service is INACTIVE", cluster: "prod", services: []string{"worker"}, wantNames: []string{"worker"}, wantStatus: []string{"INACTIVE"}},
		{name: "unknown cluster", cluster: "qa", services: []string{"web"}, wantCode: "ClusterNotFoundException"},
		{name: "no service", cluster: "prod", wantCode: "InvalidParameterException"},
		{name: "eleven services", cluster: "prod", services: slices.Repeat([]string{"web"}, 11), wantCode: "InvalidParameterException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.DescribeServices(testctx.Context(t), &ecs.DescribeServicesInput{Cluster: aws.String(tc.cluster), Services: tc.services})
			if tc.wantCode != "" {
				wantAPIErr(t, err, tc.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names, status, failures []string
			for _, s := range out.Services {
				names = append(names, aws.ToString(s.ServiceName))
				status = append(status, aws.ToString(s.Status))
			}
			for _, f := range out.Failures {
				if aws.ToString(f.Reason) != "MISSING" {
					t.Errorf("failure reason %q", aws.ToString(f.Reason))
				}
				failures = append(failures, aws.ToString(f.Arn))
			}
			if !slices.Equal(names, tc.wantNames) || !slices.Equal(status, tc.wantStatus) || !slices.Equal(failures, tc.wantFailures) {
				t.Errorf("services %v %v failures %v; want %v %v %v", names, status, failures, tc.wantNames, tc.wantStatus, tc.wantFailures)
			}
		})
	}
}

func TestListAndDescribeTasks(t *testing.T) {
	e, _ := newECS(t)
	if _, err := e.AddService("prod", "big", 150, t0); err != nil {
		t.Fatal(err)
	}
	big := describe2(t, e, "big")
	list := func(t *testing.T, in ecs.ListTasksInput) []string {
		t.Helper()
		var all []string
		for {
			out, err := e.ListTasks(testctx.Context(t), &in)
			if err != nil {
				t.Fatal(err)
			}
			limit := 100
			if in.MaxResults != nil {
				limit = int(*in.MaxResults)
			}
			if len(out.TaskArns) > limit {
				t.Fatalf("page of %d > %d", len(out.TaskArns), limit)
			}
			all = append(all, out.TaskArns...)
			if in.NextToken = out.NextToken; in.NextToken == nil {
				return all
			}
		}
	}
	tests := []struct {
		name string
		in   ecs.ListTasksInput
		want int
	}{
		{"one service", ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("web")}, 3},
		{"service by ARN", ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String(ServiceARN("prod", "web"))}, 3},
		{"paged", ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("big")}, 150},
		{"small pages", ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("web"), MaxResults: aws.Int32(2)}, 3},
		{"whole cluster", ecs.ListTasksInput{Cluster: aws.String("prod")}, 153},
		{"started by", ecs.ListTasksInput{Cluster: aws.String("prod"), StartedBy: aws.String(big)}, 150},
		{"stopped", ecs.ListTasksInput{Cluster: aws.String("prod"), DesiredStatus: types.DesiredStatusStopped}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(t, tc.in); len(got) != tc.want {
				t.Errorf("%d tasks, want %d", len(got), tc.want)
			}
		})
	}
	_, err := e.ListTasks(testctx.Context(t), &ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("nope")})
	wantAPIErr(t, err, "ServiceNotFoundException")
	_, err = e.ListTasks(testctx.Context(t), &ecs.ListTasksInput{Cluster: aws.String("qa")})
	wantAPIErr(t, err, "ClusterNotFoundException")
	_, err = e.ListTasks(testctx.Context(t), &ecs.ListTasksInput{Cluster: aws.String("prod"), MaxResults: aws.Int32(101)})
	wantAPIErr(t, err, "InvalidParameterException")

	arns := list(t, ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("big")})
	_, err = e.DescribeTasks(testctx.Context(t), &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: arns})
	wantAPIErr(t, err, "InvalidParameterException")
	id := arns[0][len(arns[0])-32:]
	out, err := e.DescribeTasks(testctx.Context(t), &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: []string{id, "arn:aws:ecs:local:000000000000:task/prod/nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].TaskArn) != arns[0] || aws.ToString(out.Tasks[0].Group) != "service:big" ||
		len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "MISSING" {
		t.Errorf("DescribeTasks by id: %d tasks, failures %v", len(out.Tasks), out.Failures)
	}
	if !regexp.MustCompile(`^arn:aws:ecs:local:000000000000:task/prod/[0-9a-f]{32}$`).MatchString(arns[0]) {
		t.Errorf("task ARN %s", arns[0])
	}
}

func describe2(t *testing.T, e *ECS, name string) string {
	t.Helper()
	out, err := e.DescribeServices(testctx.Context(t), &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{name}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("describe %s: %v", name, err)
	}
	return aws.ToString(out.Services[0].Deployments[0].Id)
}

func TestHooks(t *testing.T) {
	e, _ := newECS(t)
	e.FailNext(OpUpdateService, &types.ServerException{Message: aws.String("boom")})
	_, err := e.UpdateService(testctx.Context(t), &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true})
	wantAPIErr(t, err, "ServerException")
	wantDeps(t, e, dep{StatusPrimary, types.DeploymentRolloutStateCompleted, 3, 3}) // nothing started
	force(t, e)
	calls := e.CallsOf(OpUpdateService)
	if len(calls) != 2 || calls[0].Err == nil || calls[1].Err != nil || !calls[1].ForceNewDeployment ||
		calls[1].Cluster != "prod" || !slices.Equal(calls[1].Services, []string{"web"}) {
		t.Errorf("UpdateService calls = %+v", calls)
	}
	var intercepted bool
	e.Intercept(OpDescribeTasks, func() error { intercepted = true; return nil })
	tasks(t, e, "")
	if !intercepted {
		t.Error("interceptor did not run")
	}
	if c := e.CallsOf(OpDescribeTasks); len(c) != 1 || c[0].Tasks != 3 {
		t.Errorf("DescribeTasks calls = %+v", c)
	}
	if len(e.Calls()) != 2+1+1+1 { // 2 updates, the describe in wantDeps, list, describe tasks
		t.Errorf("%d calls recorded", len(e.Calls()))
	}
}

func TestConcurrentUse(t *testing.T) {
	e, _ := newECS(t, WithController(Auto{Delay: time.Millisecond}))
	for i := range 4 {
		if _, err := e.AddService("prod", fmt.Sprintf("svc%d", i), 2, t0); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testctx.Context(t)
	var wg sync.WaitGroup
	for i := range 4 {
		name := fmt.Sprintf("svc%d", i)
		wg.Go(func() {
			for range 20 {
				if _, err := e.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String(name), ForceNewDeployment: true}); err != nil {
					t.Error(err)
					return
				}
				if _, err := e.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{name, "web"}}); err != nil {
					t.Error(err)
				}
				l, err := e.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String(name)})
				if err != nil {
					t.Error(err)
					continue
				}
				if len(l.TaskArns) > 0 {
					if _, err := e.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: l.TaskArns}); err != nil {
						t.Error(err)
					}
				}
				_ = e.CompleteDeployment("prod", name) // may race with Auto: ErrSuperseded is fine
			}
		})
	}
	wg.Wait()
	for i := range 4 {
		name := fmt.Sprintf("svc%d", i)
		for {
			out, err := e.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{name}})
			if err != nil {
				t.Fatal(err)
			}
			s := out.Services[0]
			if len(s.Deployments) == 1 && s.Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted {
				if s.RunningCount != 2 {
					t.Errorf("%s: %d running, want 2", name, s.RunningCount)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never settled: %+v", name, deps(s))
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
}
