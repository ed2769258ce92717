package rotator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/workflow"
)

// TestRotationResumesPastTheRedriveWindowEndToEnd runs statemachine/rotation.asl.json in the
// local Step Functions model (whose clock the test moves), with this rotation function for
// its Promote and fail actions and stubs for the database and ECS steps. The rotation fails
// in Preflight; 15 days later Secrets Manager retries it with the same version: the model
// refuses the redrive (14 days) and the name (90 days), createSecret starts a successor
// execution, and the four steps complete the rotation through it.
func TestRotationResumesPastTheRedriveWindowEndToEnd(t *testing.T) {
	f := newFixture(t, Config{})
	clock := &testClock{}
	var mu sync.Mutex
	preflights := 0
	echo := func(_ context.Context, s workflow.State) (workflow.State, error) { return s, nil }
	funcs := map[string]any{
		statemachine.PreflightFunctionArn: func(_ context.Context, s workflow.State) (workflow.State, error) {
			mu.Lock()
			defer mu.Unlock()
			if preflights++; preflights == 1 {
				return s, &workflow.InvalidSecret{Secret: "admin", Field: "host", Reason: "fixed by an operator later"}
			}
			return s, nil
		},
		statemachine.CloneUserFunctionArn:     echo,
		statemachine.SetPasswordFunctionArn:   echo,
		statemachine.TestLoginFunctionArn:     echo,
		statemachine.CheckReplicasFunctionArn: echo,
		statemachine.RotationFunctionArn:      f.r.Handle,
		statemachine.RethrowFunctionArn:       (&tasks.Rethrow{}).Handle,
		statemachine.RedeployFunctionArn: func(_ context.Context, r workflow.Rollout) (workflow.Rollout, error) {
			r.DeploymentID = "ecs-svc/" + r.Service.Service
			return r, nil
		},
		statemachine.CheckRolloutFunctionArn: func(_ context.Context, r workflow.Rollout) (workflow.Rollout, error) {
			r.Done = true
			return r, nil
		},
	}
	// Retirement is off: RetirePrevious is never entered, but the interpreter needs a handler
	// for every Task resource.
	const retireARN = "arn:aws:lambda:local:000000000000:function:retireprevious"
	values := map[string]string{statemachine.AlarmTopicArn: "arn:aws:sns:local:000000000000:alarms",
		statemachine.RetirePreviousAfter: statemachine.RetireOff, statemachine.RetirePreviousFunctionArn: retireARN}
	handlers := map[string]sfnlocal.Handler{
		"arn:aws:states:::sns:publish": func(context.Context, []byte) ([]byte, error) { return []byte(`{"MessageId":"m-1"}`), nil },
		retireARN:                      func(context.Context, []byte) ([]byte, error) { return nil, errors.New("retirement is off") },
	}
	for key, fn := range funcs {
		arn := "arn:aws:lambda:local:000000000000:function:" + strings.TrimSuffix(key, "FunctionArn")
		values[key] = arn
		handlers[arn] = sfnlocal.LambdaFunc(fn)
	}
	def, err := statemachine.Render(values)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sfnlocal.New(sfnlocal.Options{
		Definition: def, StateMachineArn: machineARN, Handlers: handlers, Now: clock.now,
		WaitOverrides: map[string]time.Duration{"*": 0}, RetryIntervalOverrides: map[string]time.Duration{"*": 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	f.r.SFN = m
	ctx := testctx.Context(t)
	wait := func(name string, want types.ExecutionStatus) {
		t.Helper()
		if got, err := m.Wait(ctx, executions.ExecutionARN(machineARN, name)); err != nil || got != want {
			t.Fatalf("execution %s: %s, %v; want %s", name, got, err, want)
		}
	}

	f.createPending(tok)
	wait(tok, types.ExecutionStatusFailed)
	if _, err := f.handle(ctx, f.event(StepSet, tok)); err == nil || !strings.Contains(err.Error(), "in state Preflight") {
		t.Fatalf("setSecret after the failure: %v", err)
	}

	clock.advance(15 * 24 * time.Hour)
	for _, step := range []string{StepCreate, StepSet, StepTest, StepFinish} {
		if _, err := f.handle(ctx, f.event(step, tok)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	succ := executions.AttemptName(tok, 2)
	wait(succ, types.ExecutionStatusSucceeded)
	if v := f.stages(); !v.Has(tok, workflow.StageCurrent) || !v.Has(v1, workflow.StagePrevious) {
		t.Errorf("stages %v, want %s AWSCURRENT", v, tok)
	}
	mu.Lock()
	if preflights != 2 {
		t.Errorf("Preflight ran %d times, want 2 (once per execution)", preflights)
	}
	mu.Unlock()
	// Preflight's next rotation finds the promotion time in the successor.
	if _, found, err := (&executions.Reader{API: m, StateMachineARN: machineARN}).PromotedAt(ctx, tok); err != nil || !found {
		t.Errorf("PromotedAt(%s): found %v, %v", tok, found, err)
	}
}
