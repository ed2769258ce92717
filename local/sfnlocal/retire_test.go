package sfnlocal_test

import (
	"context"
	"encoding/json"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/workflow"
)

// The retirement path of rotation.asl.json: RetirePrevious runs after a Redeploy whose every
// rollout COMPLETED, with the grace from the definition, and only then.
func TestRotationRetirement(t *testing.T) {
	tests := []struct {
		name        string
		after       string
		failDeploy  bool // CheckRollout of one service reports DeploymentFailed
		failRetire  bool // the first RetirePrevious fails (then a redrive)
		wantStatus  types.ExecutionStatus
		wantStates  []string
		wantRetired int
	}{
		{name: "off", after: statemachine.RetireOff, wantStatus: types.ExecutionStatusSucceeded,
			wantStates: []string{"Redeploy", "RetirementPolicy", "RetireOrDone", "Done"}},
		{name: "on", after: "1h0m0s", wantStatus: types.ExecutionStatusSucceeded, wantRetired: 1,
			wantStates: []string{"Redeploy", "RetirementPolicy", "RetireOrDone", "RetirePrevious", "Done"}},
		{name: "on, the redeploy fails", after: "1h0m0s", failDeploy: true, wantStatus: types.ExecutionStatusFailed,
			wantStates: []string{"Redeploy", "CaughtRedeploy", "NotifyFailure", "Rethrow", "RotationFailed"}},
		{name: "on, RetirePrevious fails", after: "1s", failRetire: true, wantStatus: types.ExecutionStatusFailed, wantRetired: 1,
			wantStates: []string{"Redeploy", "RetirementPolicy", "RetireOrDone", "RetirePrevious", "CaughtRetirePrevious", "NotifyFailure", "Rethrow", "RotationFailed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newRotationHandlers()
			h.retireAfter = tc.after
			if tc.failDeploy {
				h.funcs[statemachine.CheckRolloutFunctionArn] = func(_ context.Context, r workflow.Rollout) (workflow.Rollout, error) {
					if r.Service.Service == "worker" {
						return r, &workflow.DeploymentFailed{Service: r.Service.String(), Deployment: "ecs-svc/worker", Reason: "circuit breaker: rolled back"}
					}
					r.Done, r.RolloutState = true, "COMPLETED"
					return r, nil
				}
			}
			var (
				mu    sync.Mutex
				seen  []workflow.State
				fails = 0
			)
			if tc.failRetire {
				fails = 1
			}
			h.funcs[statemachine.RetirePreviousFunctionArn] = func(_ context.Context, s workflow.State) (workflow.State, error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, s)
				if fails > 0 {
					fails--
					return workflow.State{}, &workflow.InvalidSecret{Secret: "previous", Reason: "injected"}
				}
				return s, nil
			}
			m := h.machine(t)
			arn := start(t, m, "token-r", rotationInput(t, "token-r"))
			d := waitFor(t, m, arn, tc.wantStatus)
			got := topLevelEntered(events(t, m, arn))
			if i := slices.Index(got, "Redeploy"); i < 0 || !slices.Equal(got[i:], tc.wantStates) {
				t.Fatalf("states entered %v, want %v from Redeploy on", got, tc.wantStates)
			}
			if n := h.count(statemachine.RetirePreviousFunctionArn); n != tc.wantRetired {
				t.Fatalf("RetirePrevious ran %d times, want %d", n, tc.wantRetired)
			}
			if tc.wantRetired > 0 {
				mu.Lock()
				in := seen[0]
				mu.Unlock()
				if in.Retirement == nil || in.Retirement.After != tc.after || len(in.Rollouts) != 2 || in.Promotion == nil {
					t.Fatalf("RetirePrevious input %+v; want the grace %s, the rollouts and the promotion", in, tc.after)
				}
				for _, r := range in.Rollouts {
					if !r.Done || r.RolloutState != "COMPLETED" {
						t.Fatalf("RetirePrevious ran with rollout %+v", r)
					}
				}
			}
			if tc.wantStatus == types.ExecutionStatusSucceeded {
				var out workflow.State
				if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
					t.Fatal(err)
				}
				if out.Retirement == nil || out.Retirement.After != tc.after {
					t.Fatalf("output retirement %+v, want after %s", out.Retirement, tc.after)
				}
			}
			if !tc.failRetire {
				return
			}
			// A redrive resumes at RetirePrevious; nothing before it runs again.
			if _, err := m.RedriveExecution(testctx.Context(t), &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, m, arn, types.ExecutionStatusSucceeded)
			if h.count(statemachine.RetirePreviousFunctionArn) != 2 || h.count(statemachine.RedeployFunctionArn) != 2 {
				t.Fatalf("after the redrive RetirePrevious ran %d times (want 2), Redeploy %d (want 2, one per service)\n%s",
					h.count(statemachine.RetirePreviousFunctionArn), h.count(statemachine.RedeployFunctionArn), strings.Join(trace(events(t, m, arn)), "\n"))
			}
		})
	}
}
