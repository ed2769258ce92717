package tasks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/workflow"
)

var web = workflow.Service{Cluster: "prod", Service: "web"}

// promoteAt is when the rollout tests' Promote ran: after the services' first deployment.
var promoteAt = pendingAt.Add(10 * time.Minute)

func rollout(svc workflow.Service) workflow.Rollout {
	return workflow.Rollout{SecretARN: "arn:aws:secretsmanager:local:000000000000:secret:pgrotate-app", Token: tok, Service: svc, PromotedAt: promoteAt}
}

func deployments(t *testing.T, e *env, svc workflow.Service) []ecsservice.Deployment {
	t.Helper()
	d, err := ecsservice.New(e.ecs).Deployments(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func forcedDeployments(e *env) int {
	n := 0
	for _, c := range e.ecs.CallsOf(localecs.OpUpdateService) {
		if c.ForceNewDeployment {
			n++
		}
	}
	return n
}

func TestRedeploy(t *testing.T) {
	tests := []struct {
		name string
		// prepare runs at promoteAt+1m; it returns the deployment Redeploy must reuse, or "".
		prepare   func(t *testing.T, e *env) string
		wantForce bool
	}{
		{
			name:      "forces a deployment when none followed the promotion",
			prepare:   func(*testing.T, *env) string { return "" },
			wantForce: true,
		},
		{
			name: "re-drive: reuses the deployment created after the promotion",
			prepare: func(t *testing.T, e *env) string {
				return e.deploy(web)
			},
		},
		{
			name: "re-drive: a deployment completed after the promotion is reused",
			prepare: func(t *testing.T, e *env) string {
				id := e.deploy(web)
				if err := e.ecs.CompleteDeployment("prod", "web"); err != nil {
					t.Fatal(err)
				}
				return id
			},
		},
		{
			name: "a deployment that failed after the promotion is not reused",
			prepare: func(t *testing.T, e *env) string {
				e.deploy(web)
				if err := e.ecs.FailDeployment("prod", "web", "tasks failed to start", false); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			wantForce: true,
		},
		{
			name: "a deployment rolled back after the promotion is not reused",
			prepare: func(t *testing.T, e *env) string {
				e.deploy(web)
				if err := e.ecs.FailDeployment("prod", "web", "circuit breaker", true); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			wantForce: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.clock.Set(promoteAt.Add(time.Minute))
			reuse := tc.prepare(t, e)
			before := forcedDeployments(e)
			e.clock.Set(promoteAt.Add(2 * time.Minute))

			out, err := e.redeploy().Handle(context.Background(), rollout(web))
			if err != nil {
				t.Fatalf("redeploy: %v", err)
			}
			forced := forcedDeployments(e) - before
			primary := deployments(t, e, web)[0]
			switch {
			case tc.wantForce && forced != 1:
				t.Fatalf("%d forced deployments, want 1", forced)
			case tc.wantForce && (out.DeploymentID != primary.ID || primary.RolloutState != "IN_PROGRESS"):
				t.Errorf("deployment id %q, want the new PRIMARY %+v", out.DeploymentID, primary)
			case !tc.wantForce && forced != 0:
				t.Fatalf("%d forced deployments, want the existing one reused", forced)
			case !tc.wantForce && out.DeploymentID != reuse:
				t.Errorf("deployment id %q, want %q", out.DeploymentID, reuse)
			}
			if out.Done || out.Checks != 0 {
				t.Errorf("Redeploy touched the loop fields: %+v", out)
			}

			// The same item again (a retried UpdateService state): no new deployment.
			again, err := e.redeploy().Handle(context.Background(), out)
			if err != nil || again.DeploymentID != out.DeploymentID || forcedDeployments(e)-before != forced {
				t.Errorf("repeated redeploy: %+v %v, %d forced", again, err, forcedDeployments(e)-before)
			}
		})
	}
}

func TestRedeployRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ro *workflow.Rollout)
		want   string // workflow error name, or text of a plain error
		named  bool
	}{
		{name: "no service", mutate: func(ro *workflow.Rollout) { ro.Service = workflow.Service{} }, want: "InvalidSecret", named: true},
		{name: "no promotion time", mutate: func(ro *workflow.Rollout) { ro.PromotedAt = time.Time{} }, want: "InvalidSecret", named: true},
		// No name of its own, but never an unnamed error type: StepFailed, naming the service.
		{name: "the service does not exist", mutate: func(ro *workflow.Rollout) { ro.Service.Service = "gone" }, want: "StepFailed", named: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ro := rollout(web)
			tc.mutate(&ro)
			_, err := e.redeploy().Handle(context.Background(), ro)
			if tc.named {
				wantNamed(t, err, tc.want)
				if tc.want == "StepFailed" && !strings.Contains(err.Error(), "prod/gone") {
					t.Fatalf("%v does not name the service", err)
				}
			} else if err == nil || namedType(err) != "" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a plain error naming %q, got %T %v", tc.want, err, err)
			}
			if n := forcedDeployments(e); n != 0 {
				t.Errorf("%d deployments forced", n)
			}
		})
	}
}

func TestCheckRollout(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		checks  int // the item's Checks before this invocation
		prepare func(t *testing.T, e *env, id string)
		want    string // workflow error name; "" for no error
		done    bool
		reason  string // in the error
	}{
		{name: "in progress: loop", prepare: func(*testing.T, *env, string) {}},
		{name: "completed", done: true, prepare: func(t *testing.T, e *env, _ string) {
			if err := e.ecs.CompleteDeployment("prod", "web"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "failed", want: "DeploymentFailed", reason: "tasks failed to start", prepare: func(t *testing.T, e *env, _ string) {
			if err := e.ecs.FailDeployment("prod", "web", "tasks failed to start", false); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "rolled back (still listed, FAILED)", want: "DeploymentFailed", reason: "circuit breaker", prepare: func(t *testing.T, e *env, _ string) {
			if err := e.ecs.FailDeployment("prod", "web", "circuit breaker", true); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "gone", want: "DeploymentFailed", reason: "gone", prepare: func(t *testing.T, e *env, id string) {
			if err := e.ecs.FailDeployment("prod", "web", "circuit breaker", true); err != nil {
				t.Fatal(err)
			}
			if err := e.ecs.RemoveDeployment("prod", "web", id); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "replaced by a newer deployment", want: "DeploymentFailed", reason: "gone", prepare: func(t *testing.T, e *env, _ string) {
			e.deploy(web)
			if err := e.ecs.CompleteDeployment("prod", "web"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "bound reached", max: 3, checks: 2, want: "RolloutTimedOut", prepare: func(*testing.T, *env, string) {}},
		{name: "completed on the last check", max: 3, checks: 2, done: true, prepare: func(t *testing.T, e *env, _ string) {
			if err := e.ecs.CompleteDeployment("prod", "web"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.clock.Set(promoteAt.Add(time.Minute))
			ro, err := e.redeploy().Handle(context.Background(), rollout(web))
			if err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, e, ro.DeploymentID)
			ro.Checks = tc.checks

			out, err := e.checkRollout(tc.max).Handle(context.Background(), ro)
			if out.Checks != tc.checks+1 {
				t.Errorf("checks = %d, want %d", out.Checks, tc.checks+1)
			}
			if tc.want != "" {
				wantNamed(t, err, tc.want)
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("error %q does not give the reason %q", err, tc.reason)
				}
				if to, ok := err.(*workflow.RolloutTimedOut); ok && to.Checks != tc.checks+1 {
					t.Errorf("timed out after %d checks, want %d", to.Checks, tc.checks+1)
				}
				return
			}
			if err != nil {
				t.Fatalf("check rollout: %v", err)
			}
			if out.Done != tc.done {
				t.Errorf("done = %v, want %v", out.Done, tc.done)
			}
			wantState := "IN_PROGRESS"
			if tc.done {
				wantState = "COMPLETED"
			}
			if out.RolloutState != wantState {
				t.Errorf("rollout state = %q, want %q", out.RolloutState, wantState)
			}
		})
	}
}

// The Wait → CheckRollout → Choice loop as the state machine runs it: one DescribeServices
// per invocation, Checks counting up, done once ECS reports COMPLETED.
func TestCheckRolloutLoop(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(promoteAt.Add(time.Minute))
	ro, err := e.redeploy().Handle(context.Background(), rollout(web))
	if err != nil {
		t.Fatal(err)
	}
	h := e.checkRollout(10)
	for i := 1; i <= 3; i++ {
		before := len(e.ecs.CallsOf(localecs.OpDescribeServices))
		if ro, err = h.Handle(context.Background(), ro); err != nil || ro.Done || ro.Checks != i {
			t.Fatalf("check %d: %+v %v", i, ro, err)
		}
		if n := len(e.ecs.CallsOf(localecs.OpDescribeServices)) - before; n != 1 {
			t.Errorf("check %d made %d DescribeServices calls, want 1", i, n)
		}
	}
	if err := e.ecs.CompleteDeployment("prod", "web"); err != nil {
		t.Fatal(err)
	}
	if ro, err = h.Handle(context.Background(), ro); err != nil || !ro.Done || ro.Checks != 4 {
		t.Fatalf("after completion: %+v %v", ro, err)
	}
	// Done: a re-run (retry) reads nothing and changes nothing.
	before := len(e.ecs.CallsOf(localecs.OpDescribeServices))
	again, err := h.Handle(context.Background(), ro)
	if err != nil || again != ro || len(e.ecs.CallsOf(localecs.OpDescribeServices)) != before {
		t.Errorf("re-run of a done item: %+v %v", again, err)
	}
}

func TestCheckRolloutNeedsADeployment(t *testing.T) {
	e := newEnv(t)
	_, err := e.checkRollout(0).Handle(context.Background(), rollout(web))
	wantNamed(t, err, "InvalidSecret")
	if n := len(e.ecs.CallsOf(localecs.OpDescribeServices)); n != 0 {
		t.Errorf("%d DescribeServices calls without a deployment id", n)
	}
}
