package ecsservice

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/workflow"
)

var (
	_ API = (*ecs.Client)(nil)
	_ API = (*localecs.ECS)(nil)
)

var (
	t0  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	web = workflow.Service{Cluster: "prod", Service: "web"}
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newECS returns a local ECS with prod/web running 3 tasks launched at t0, a clock at
// t0+1h, and the adapter.
func newECS(t *testing.T, opts ...localecs.Option) (*localecs.ECS, *clock, *Services) {
	t.Helper()
	clk := &clock{t: t0}
	e := localecs.New(append([]localecs.Option{localecs.WithClock(clk.Now)}, opts...)...)
	t.Cleanup(e.Close)
	if _, err := e.AddService("prod", "web", 3, t0); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(time.Hour))
	return e, clk, New(e)
}

func TestForceDeployment(t *testing.T) {
	e, clk, s := newECS(t, localecs.WithController(localecs.Manual{}))
	id, err := s.ForceDeployment(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := s.Deployments(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 2 {
		t.Fatalf("%d deployments, want 2", len(deps))
	}
	want := Deployment{
		ID: id, Status: "PRIMARY", RolloutState: "IN_PROGRESS", RolloutStateReason: "ECS deployment " + id + " in progress.",
		CreatedAt: clk.Now(), UpdatedAt: clk.Now(), Desired: 3, Running: 0,
	}
	if deps[0] != want {
		t.Errorf("new deployment = %+v, want %+v", deps[0], want)
	}
	if d := deps[1]; d.Status != "ACTIVE" || d.RolloutState != "COMPLETED" || !d.CreatedAt.Equal(t0) || d.Desired != 3 || d.Running != 3 {
		t.Errorf("old deployment = %+v", d)
	}
	if c := e.CallsOf(localecs.OpUpdateService); len(c) != 1 || !c[0].ForceNewDeployment {
		t.Errorf("UpdateService calls = %+v", c)
	}
}

func TestMissingService(t *testing.T) {
	e, _, s := newECS(t)
	if _, err := e.AddService("prod", "gone", 1, t0); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteService("prod", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckService(testctx.Context(t), workflow.Service{Cluster: "prod", Service: "web"}); err != nil {
		t.Errorf("CheckService of an ACTIVE service: %v", err)
	}
	tests := []struct {
		name string
		svc  workflow.Service
	}{
		{"unknown service", workflow.Service{Cluster: "prod", Service: "nope"}},
		{"unknown cluster", workflow.Service{Cluster: "qa", Service: "web"}},
		{"deleted service", workflow.Service{Cluster: "prod", Service: "gone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ForceDeployment(testctx.Context(t), tc.svc)
			if !IsMissing(err) || !strings.Contains(err.Error(), "force a new deployment of "+tc.svc.String()) {
				t.Errorf("ForceDeployment: %v, want a ServiceMissing naming the action", err)
			}
			_, err = s.Deployments(testctx.Context(t), tc.svc)
			if !IsMissing(err) || !strings.Contains(err.Error(), "describe service "+tc.svc.String()) {
				t.Errorf("Deployments: %v, want a ServiceMissing naming the action", err)
			}
			err = s.CheckService(testctx.Context(t), tc.svc)
			if !IsMissing(err) || !strings.Contains(err.Error(), "describe service "+tc.svc.String()) {
				t.Errorf("CheckService: %v, want a ServiceMissing naming the action", err)
			}
			if tc.name == "deleted service" {
				return // ListTasks on a deleted service is valid in ECS: it has no task
			}
			_, err = s.TaskLaunchTimes(testctx.Context(t), tc.svc)
			if !IsMissing(err) || !strings.Contains(err.Error(), "list tasks of "+tc.svc.String()) {
				t.Errorf("TaskLaunchTimes: %v, want a ServiceMissing naming the action", err)
			}
		})
	}
	if got, err := s.TaskLaunchTimes(testctx.Context(t), workflow.Service{Cluster: "prod", Service: "gone"}); err != nil || len(got) != 0 {
		t.Errorf("TaskLaunchTimes of a deleted service = %v, %v; want none", got, err)
	}
}

func TestAPIErrorsWrapped(t *testing.T) {
	e, _, s := newECS(t)
	boom := &types.ServerException{Message: aws.String("boom")}
	tests := []struct {
		op   string
		call func() error
		want string
	}{
		{localecs.OpUpdateService, func() error { _, err := s.ForceDeployment(testctx.Context(t), web); return err }, "force a new deployment of prod/web"},
		{localecs.OpDescribeServices, func() error { _, err := s.Deployments(testctx.Context(t), web); return err }, "describe service prod/web"},
		{localecs.OpListTasks, func() error { _, err := s.TaskLaunchTimes(testctx.Context(t), web); return err }, "list tasks of prod/web"},
		{localecs.OpDescribeTasks, func() error { _, err := s.TaskLaunchTimes(testctx.Context(t), web); return err }, "describe tasks of prod/web"},
	}
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			e.FailNext(tc.op, boom)
			err := tc.call()
			var server *types.ServerException
			if !errors.As(err, &server) || IsMissing(err) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v, want a ServerException wrapped with %q", err, tc.want)
			}
		})
	}
}

func TestDeploymentsAfterRollback(t *testing.T) {
	e, _, s := newECS(t, localecs.WithController(localecs.Manual{}))
	id, err := s.ForceDeployment(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.FailDeployment("prod", "web", "circuit breaker: 3 tasks failed", true); err != nil {
		t.Fatal(err)
	}
	deps, err := s.Deployments(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	got := func(d Deployment) [4]string { return [4]string{d.ID, d.Status, d.RolloutState, d.RolloutStateReason} }
	if len(deps) != 2 || deps[0].Status != "PRIMARY" || deps[0].ID == id ||
		got(deps[1]) != [4]string{id, "ACTIVE", "FAILED", "circuit breaker: 3 tasks failed"} {
		t.Errorf("after rollback: %+v", deps)
	}
	if err := e.RemoveDeployment("prod", "web", id); err != nil {
		t.Fatal(err)
	}
	deps, err = s.Deployments(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 1 || deps[0].ID == id {
		t.Errorf("after the failed deployment is gone: %+v", deps)
	}
}

func TestTaskLaunchTimes(t *testing.T) {
	// A rolling replacement, stopped halfway: 3 old tasks (t0) of which one is draining and
	// one stopped, 2 new ones running (t1) and 1 pending (created t2, not started).
	e, clk, s := newECS(t, localecs.WithController(localecs.Manual{}))
	t1, t2 := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	if _, err := s.ForceDeployment(testctx.Context(t), web); err != nil {
		t.Fatal(err)
	}
	r, err := e.Rollout("prod", "web")
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t1)
	for range 2 {
		arn, err := r.Launch()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Running(arn); err != nil {
			t.Fatal(err)
		}
	}
	clk.Set(t2)
	if _, err := r.Launch(); err != nil {
		t.Fatal(err)
	}
	old := r.OldTasks()
	if err := r.Stop(old[0], "replaced"); err != nil { // draining: still holds its password
		t.Fatal(err)
	}
	if err := r.Stop(old[1], "replaced"); err != nil {
		t.Fatal(err)
	}
	if err := r.Stopped(old[1]); err != nil {
		t.Fatal(err)
	}

	got, err := s.TaskLaunchTimes(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, time.Time.Compare)
	want := []time.Time{t0, t0, t1, t1, t2}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("launch times = %v, want %v", got, want)
	}
}

func TestTaskLaunchTimesBatches(t *testing.T) {
	e, _, s := newECS(t)
	if _, err := e.AddService("prod", "big", 250, t0); err != nil {
		t.Fatal(err)
	}
	big := workflow.Service{Cluster: "prod", Service: "big"}
	// A task that stops between ListTasks and DescribeTasks is left out.
	e.Intercept(localecs.OpDescribeTasks, func() error {
		r, err := e.Rollout("prod", "big")
		if err != nil {
			return err
		}
		return r.Stopped(r.Tasks()[0])
	})
	got, err := s.TaskLaunchTimes(testctx.Context(t), big)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 249 {
		t.Errorf("%d launch times, want 249", len(got))
	}
	for _, at := range got {
		if !at.Equal(t0) {
			t.Errorf("launch time %v, want %v", at, t0)
		}
	}
	var sizes []int
	for _, c := range e.CallsOf(localecs.OpDescribeTasks) {
		sizes = append(sizes, c.Tasks)
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("DescribeTasks batch sizes = %v, want [100 100 50]", sizes)
	}
	if n := len(e.CallsOf(localecs.OpListTasks)); n != 4 { // RUNNING: 3 pages; STOPPED: 1
		t.Errorf("%d ListTasks calls, want 4", n)
	}
}

// fakeAPI is an API whose operations are functions; nil ones panic.
type fakeAPI struct {
	API
	update        func(*ecs.UpdateServiceInput) (*ecs.UpdateServiceOutput, error)
	describeTasks func(*ecs.DescribeTasksInput) (*ecs.DescribeTasksOutput, error)
	listTasks     func(*ecs.ListTasksInput) (*ecs.ListTasksOutput, error)
	describe      func(*ecs.DescribeServicesInput) (*ecs.DescribeServicesOutput, error)
}

func (f fakeAPI) UpdateService(_ context.Context, in *ecs.UpdateServiceInput, _ ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error) {
	return f.update(in)
}

func (f fakeAPI) DescribeServices(_ context.Context, in *ecs.DescribeServicesInput, _ ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error) {
	return f.describe(in)
}

func (f fakeAPI) ListTasks(_ context.Context, in *ecs.ListTasksInput, _ ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	return f.listTasks(in)
}

func (f fakeAPI) DescribeTasks(_ context.Context, in *ecs.DescribeTasksInput, _ ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error) {
	return f.describeTasks(in)
}

func TestMalformedAnswers(t *testing.T) {
	oneTask := func(in *ecs.ListTasksInput) (*ecs.ListTasksOutput, error) {
		if in.DesiredStatus == types.DesiredStatusRunning {
			return &ecs.ListTasksOutput{TaskArns: []string{"arn:task/1"}}, nil
		}
		return &ecs.ListTasksOutput{}, nil
	}
	tests := []struct {
		name string
		api  fakeAPI
		call func(s *Services) error
		want string
	}{
		{
			name: "UpdateService without a PRIMARY deployment",
			api: fakeAPI{update: func(*ecs.UpdateServiceInput) (*ecs.UpdateServiceOutput, error) {
				return &ecs.UpdateServiceOutput{Service: &types.Service{Deployments: []types.Deployment{{Id: aws.String("x"), Status: aws.String("ACTIVE")}}}}, nil
			}},
			call: func(s *Services) error { _, err := s.ForceDeployment(testctx.Context(t), web); return err },
			want: "no PRIMARY deployment",
		},
		{
			name: "a task without a launch time",
			api: fakeAPI{listTasks: oneTask, describeTasks: func(*ecs.DescribeTasksInput) (*ecs.DescribeTasksOutput, error) {
				return &ecs.DescribeTasksOutput{Tasks: []types.Task{{TaskArn: aws.String("arn:task/1"), LastStatus: aws.String("PENDING")}}}, nil
			}},
			call: func(s *Services) error { _, err := s.TaskLaunchTimes(testctx.Context(t), web); return err },
			want: "has no launch time",
		},
		{
			name: "DescribeServices with no service and no failure",
			api: fakeAPI{describe: func(*ecs.DescribeServicesInput) (*ecs.DescribeServicesOutput, error) {
				return &ecs.DescribeServicesOutput{}, nil
			}},
			call: func(s *Services) error { _, err := s.Deployments(testctx.Context(t), web); return err },
			want: "returned 0 services",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(New(tc.api))
			if err == nil || !strings.Contains(err.Error(), tc.want) || IsMissing(err) {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAutoControllerEndToEnd(t *testing.T) {
	// With the default controller a forced deployment completes at once and every task is
	// relaunched after the call: what Preflight of the next rotation wants to see.
	_, clk, s := newECS(t)
	id, err := s.ForceDeployment(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := s.Deployments(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 1 || deps[0].ID != id || deps[0].RolloutState != "COMPLETED" || deps[0].Running != 3 {
		t.Errorf("deployments = %+v", deps)
	}
	times, err := s.TaskLaunchTimes(testctx.Context(t), web)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 3 {
		t.Fatalf("%d tasks, want 3", len(times))
	}
	for _, at := range times {
		if !at.Equal(clk.Now()) {
			t.Errorf("task launched %v, want %v", at, clk.Now())
		}
	}
}
