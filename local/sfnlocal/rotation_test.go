package sfnlocal_test

import (
	"context"
	"encoding/json"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/workflow"
)

const (
	topicArn  = "arn:aws:sns:us-east-1:123456789012:pgrotate-alarms"
	snsArn    = "arn:aws:states:::sns:publish"
	secretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
)

var promotedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// rotationHandlers are stubs with the real steps' signatures (workflow types through
// aws-lambda-go's JSON handling). Each can be replaced by a test.
type rotationHandlers struct {
	mu    sync.Mutex
	calls map[string]int
	funcs map[string]any // by substitution key, a Go Lambda handler function
	sns   func(ctx context.Context, payload []byte) ([]byte, error)
	// retireAfter is the RetirePreviousAfter substitution; default statemachine.RetireOff.
	retireAfter string
}

func newRotationHandlers() *rotationHandlers {
	echo := func(_ context.Context, s workflow.State) (workflow.State, error) { return s, nil }
	return &rotationHandlers{
		calls: map[string]int{},
		funcs: map[string]any{
			statemachine.PreflightFunctionArn:     echo,
			statemachine.CloneUserFunctionArn:     echo,
			statemachine.SetPasswordFunctionArn:   echo,
			statemachine.TestLoginFunctionArn:     echo,
			statemachine.CheckReplicasFunctionArn: echo,
			statemachine.RotationFunctionArn: func(ctx context.Context, ev rotator.Event) (*workflow.PromoteResult, error) {
				if ev.Action != workflow.ActionPromote || ev.SecretARN != secretArn || ev.Token == "" {
					return nil, &workflow.InvalidSecret{Secret: "state", Reason: "bad promote request"}
				}
				return &workflow.PromoteResult{PromotedAt: promotedAt}, nil
			},
			// The real rethrow: the failure decision is RotationFailed's own function's.
			statemachine.RethrowFunctionArn: func(ctx context.Context, ev tasks.CaughtFailure) error {
				return (&tasks.Rethrow{}).Handle(ctx, ev)
			},
			statemachine.RedeployFunctionArn: func(_ context.Context, r workflow.Rollout) (workflow.Rollout, error) {
				r.DeploymentID = "ecs-svc/" + r.Service.Service
				return r, nil
			},
			statemachine.CheckRolloutFunctionArn: func(_ context.Context, r workflow.Rollout) (workflow.Rollout, error) {
				r.Checks++
				r.Done = r.Checks >= 2 // go round the Wait → CheckRollout loop once
				if r.Done {
					r.RolloutState = "COMPLETED"
				}
				return r, nil
			},
			statemachine.RetirePreviousFunctionArn: echo,
		},
		sns: func(_ context.Context, p []byte) ([]byte, error) { return []byte(`{"MessageId":"m-1"}`), nil },
	}
}

func (h *rotationHandlers) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[key]
}

// machine renders rotation.asl.json and runs it with every Wait and Retry pause at zero.
func (h *rotationHandlers) machine(t *testing.T) *sfnlocal.Machine {
	t.Helper()
	values := map[string]string{statemachine.AlarmTopicArn: topicArn}
	handlers := map[string]sfnlocal.Handler{}
	values[statemachine.RetirePreviousAfter] = statemachine.RetireOff
	if h.retireAfter != "" {
		values[statemachine.RetirePreviousAfter] = h.retireAfter
	}
	for _, key := range statemachine.Keys() {
		if key == statemachine.AlarmTopicArn || key == statemachine.RetirePreviousAfter {
			continue
		}
		arn := fnArn(strings.TrimSuffix(key, "FunctionArn"))
		values[key] = arn
		inner := sfnlocal.LambdaFunc(h.funcs[key])
		handlers[arn] = func(ctx context.Context, p []byte) ([]byte, error) {
			h.mu.Lock()
			h.calls[key]++
			h.mu.Unlock()
			return inner(ctx, p)
		}
	}
	handlers[snsArn] = func(ctx context.Context, p []byte) ([]byte, error) {
		h.mu.Lock()
		h.calls["sns"]++
		h.mu.Unlock()
		return h.sns(ctx, p)
	}
	def, err := statemachine.Render(values)
	if err != nil {
		t.Fatal(err)
	}
	return newMachine(t, sfnlocal.Options{
		Definition:             def,
		StateMachineArn:        "arn:aws:states:us-east-1:123456789012:stateMachine:pgrotate-rotation",
		Handlers:               handlers,
		WaitOverrides:          map[string]time.Duration{"*": 0},
		RetryIntervalOverrides: map[string]time.Duration{"*": 0},
	})
}

func rotationInput(t *testing.T, token string) string {
	t.Helper()
	b, err := json.Marshal(workflow.State{SecretARN: secretArn, Token: token, Services: []workflow.Service{
		{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// topLevelEntered lists the top-level states entered, in order.
func topLevelEntered(evs []types.HistoryEvent) []string {
	var out []string
	for _, e := range evs {
		if d := e.StateEnteredEventDetails; d != nil {
			switch n := aws.ToString(d.Name); n {
			case "UpdateService", "WaitRollout", "CheckRollout", "RolloutDone", "RolloutComplete":
			default:
				out = append(out, n)
			}
		}
	}
	return out
}

func TestRotationDefinitionRunsEndToEnd(t *testing.T) {
	h := newRotationHandlers()
	m := h.machine(t)
	arn := start(t, m, "token-1", rotationInput(t, "token-1"))
	if want := "arn:aws:states:us-east-1:123456789012:execution:pgrotate-rotation:token-1"; arn != want {
		t.Errorf("execution ARN %s, want %s", arn, want)
	}
	d := waitFor(t, m, arn, types.ExecutionStatusSucceeded)

	var out workflow.State
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Promotion == nil || !out.Promotion.PromotedAt.Equal(promotedAt) {
		t.Errorf("promotion = %+v", out.Promotion)
	}
	if len(out.Rollouts) != 2 {
		t.Fatalf("rollouts = %+v", out.Rollouts)
	}
	for i, r := range out.Rollouts {
		if !r.Done || r.Checks != 2 || r.Service != out.Services[i] || r.Token != "token-1" || !r.PromotedAt.Equal(promotedAt) || r.DeploymentID == "" {
			t.Errorf("rollout %d = %+v", i, r)
		}
	}

	evs := events(t, m, arn)
	want := []string{"Preflight", "CloneUser", "SetPassword", "TestLogin", "CheckReplicas", "Promote", "Redeploy", "RetirementPolicy", "RetireOrDone", "Done"}
	if got := topLevelEntered(evs); !slices.Equal(got, want) {
		t.Errorf("states entered %v, want %v", got, want)
	}
	tr := trace(evs)
	for _, line := range []string{"MapIterationSucceeded Redeploy[0]", "MapIterationSucceeded Redeploy[1]", "TaskStateExited Promote", "MapStateExited Redeploy"} {
		if count(tr, line) != 1 {
			t.Errorf("%q %d times in history", line, count(tr, line))
		}
	}
	if h.count(statemachine.CheckRolloutFunctionArn) != 4 || h.count("sns") != 0 {
		t.Errorf("CheckRollout called %d times (want 4), SNS %d (want 0)", h.count(statemachine.CheckRolloutFunctionArn), h.count("sns"))
	}
}

func TestRotationRetriesReplicaNotReady(t *testing.T) {
	h := newRotationHandlers()
	var calls atomic.Int32
	h.funcs[statemachine.CheckReplicasFunctionArn] = func(_ context.Context, s workflow.State) (workflow.State, error) {
		if calls.Add(1) <= 2 {
			return workflow.State{}, &workflow.ReplicaNotReady{Replica: "replica-1:5432", Reason: "replay LSN behind"}
		}
		return s, nil
	}
	m := h.machine(t)
	arn := start(t, m, "token-2", rotationInput(t, "token-2"))
	waitFor(t, m, arn, types.ExecutionStatusSucceeded)

	tr := trace(events(t, m, arn))
	i := slices.Index(tr, "TaskStateEntered CheckReplicas")
	j := slices.Index(tr, "TaskStateExited CheckReplicas")
	if i < 0 || j < i {
		t.Fatalf("history:\n%s", strings.Join(tr, "\n"))
	}
	within := tr[i : j+1]
	if n := count(within, "LambdaFunctionFailed ReplicaNotReady"); n != 2 {
		t.Errorf("%d ReplicaNotReady failures, want 2", n)
	}
	if n := count(within, "LambdaFunctionScheduled CheckReplicas"); n != 3 {
		t.Errorf("%d CheckReplicas invocations, want 3", n)
	}
	if n := count(tr, "TaskStateEntered CheckReplicas"); n != 1 {
		t.Errorf("CheckReplicas entered %d times: a retry stays in the state", n)
	}
}

func TestRotationFailureNotifiesThenFails(t *testing.T) {
	tests := []struct {
		name        string
		snsFails    bool
		wantSNSCall int
	}{
		{"notification sent", false, 1},
		// NotifyFailure retries 3 times, then RotationFailed still reports the rotation's error.
		{"notification fails too", true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newRotationHandlers()
			h.funcs[statemachine.CloneUserFunctionArn] = func(context.Context, workflow.State) (workflow.State, error) {
				return workflow.State{}, &workflow.PrivilegeMismatch{Active: "app", Pending: "app_clone", Differences: []string{"SELECT on t"}}
			}
			var (
				mu        sync.Mutex
				published []map[string]string
			)
			h.sns = func(_ context.Context, p []byte) ([]byte, error) {
				var msg map[string]string
				if err := json.Unmarshal(p, &msg); err != nil {
					return nil, err
				}
				mu.Lock()
				published = append(published, msg)
				mu.Unlock()
				if tc.snsFails {
					return nil, messages.InvokeResponse_Error{Type: "SNS.NotFoundException", Message: "Topic does not exist"}
				}
				return []byte(`{"MessageId":"m-1"}`), nil
			}
			m := h.machine(t)
			arn := start(t, m, "token-3", rotationInput(t, "token-3"))
			d := waitFor(t, m, arn, types.ExecutionStatusFailed)

			if aws.ToString(d.Error) != "PrivilegeMismatch" {
				t.Errorf("Error = %q, want PrivilegeMismatch", aws.ToString(d.Error))
			}
			if _, typ := lambdaCause(t, aws.ToString(d.Cause)); typ != "PrivilegeMismatch" {
				t.Errorf("Cause = %s", aws.ToString(d.Cause))
			}
			if h.count(statemachine.SetPasswordFunctionArn) != 0 {
				t.Error("SetPassword ran after CloneUser failed")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(published) != tc.wantSNSCall {
				t.Fatalf("SNS published %d times, want %d", len(published), tc.wantSNSCall)
			}
			msg := published[0]
			if msg["TopicArn"] != topicArn || msg["Subject"] != "pgrotate rotation failed" ||
				!strings.Contains(msg["Message"], secretArn) || !strings.Contains(msg["Message"], "token-3") || !strings.Contains(msg["Message"], "PrivilegeMismatch") {
				t.Errorf("published %v", msg)
			}
			tr := trace(events(t, m, arn))
			if tr[len(tr)-1] != "ExecutionFailed PrivilegeMismatch" || count(tr, "TaskStateEntered RotationFailed") != 1 || count(tr, "TaskScheduled sns:publish") != tc.wantSNSCall {
				t.Errorf("history:\n%s", strings.Join(tr, "\n"))
			}
		})
	}
}

// TestRotationRedriveAfterCaughtFailure: every failure is caught, notified, and rethrown
// by RotationFailed (a Task). A redrive restarts that unsuccessful Task, which now lets the
// execution resume at the state that failed; the states before it do not run again.
func TestRotationRedriveAfterCaughtFailure(t *testing.T) {
	h := newRotationHandlers()
	var mu sync.Mutex
	failures := 1
	h.funcs[statemachine.TestLoginFunctionArn] = func(_ context.Context, s workflow.State) (workflow.State, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return workflow.State{}, &workflow.CredentialRejected{User: "app_clone", Host: "primary", Reason: "password authentication failed"}
		}
		return s, nil
	}
	m := h.machine(t)
	arn := start(t, m, "token-4", rotationInput(t, "token-4"))
	d := waitFor(t, m, arn, types.ExecutionStatusFailed)
	if aws.ToString(d.Error) != "CredentialRejected" {
		t.Fatalf("Error = %s, want CredentialRejected", aws.ToString(d.Error))
	}
	if _, err := m.RedriveExecution(testctx.Context(t), &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	if aws.ToInt32(d.RedriveCount) != 1 {
		t.Errorf("redriveCount %d", aws.ToInt32(d.RedriveCount))
	}
	tr := trace(events(t, m, arn))
	if h.count(statemachine.TestLoginFunctionArn) != 2 || h.count(statemachine.SetPasswordFunctionArn) != 1 || h.count(statemachine.PreflightFunctionArn) != 1 {
		t.Errorf("TestLogin ran %d times, SetPassword %d, Preflight %d; history:\n%s", h.count(statemachine.TestLoginFunctionArn),
			h.count(statemachine.SetPasswordFunctionArn), h.count(statemachine.PreflightFunctionArn), strings.Join(tr, "\n"))
	}
}
