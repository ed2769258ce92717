package executions

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:pgrotate"

// history is a hand-written Step Functions history: a list of (type, state) pairs, paged
// two events at a time so the reader must follow NextToken.
type history struct {
	status types.ExecutionStatus
	events []types.HistoryEvent
}

func (h *history) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	if h == nil || aws.ToString(in.ExecutionArn) != ExecutionARN(machine, "v1") {
		return nil, &types.ExecutionDoesNotExist{Message: aws.String("no such execution")}
	}
	return &sfn.DescribeExecutionOutput{Status: h.status, Error: aws.String("E"), Cause: aws.String("C")}, nil
}

func (h *history) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	if aws.ToBool(in.IncludeExecutionData) {
		panic("history must be read without execution data")
	}
	start := 0
	if in.NextToken != nil {
		start = int((*in.NextToken)[0] - '0')
	}
	end := min(start+2, len(h.events))
	out := &sfn.GetExecutionHistoryOutput{Events: h.events[start:end]}
	if end < len(h.events) {
		out.NextToken = aws.String(string(rune('0' + end)))
	}
	return out, nil
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func build(status types.ExecutionStatus, steps ...string) *history {
	h := &history{status: status}
	for i, s := range steps {
		ev := types.HistoryEvent{Id: int64(i + 1), Timestamp: aws.Time(t0.Add(time.Duration(i) * time.Second))}
		kind, name := s[:1], s[1:]
		switch kind {
		case ">":
			ev.Type = types.HistoryEventTypeTaskStateEntered
			ev.StateEnteredEventDetails = &types.StateEnteredEventDetails{Name: aws.String(name)}
		case "<":
			ev.Type = types.HistoryEventTypeTaskStateExited
			ev.StateExitedEventDetails = &types.StateExitedEventDetails{Name: aws.String(name)}
		case "!":
			ev.Type = types.HistoryEventTypeLambdaFunctionFailed
		case "R":
			ev.Type = types.HistoryEventTypeExecutionRedriven
		}
		h.events = append(h.events, ev)
	}
	return h
}

func TestProgress(t *testing.T) {
	ok := []string{">Preflight", "<Preflight", ">CloneUser", "<CloneUser", ">SetPassword", "<SetPassword", ">TestLogin", "<TestLogin",
		">CheckReplicas", "!", "!", "<CheckReplicas", ">Promote", "<Promote", ">Redeploy", "<Redeploy"}
	caught := []string{">Preflight", "<Preflight", ">CloneUser", "<CloneUser", ">SetPassword", "!", "<SetPassword",
		">CaughtSetPassword", "<CaughtSetPassword", ">NotifyFailure", "<NotifyFailure", ">RotationFailed", "!"}
	redriven := append(append([]string{}, caught...), "R", ">RotationFailed", "<RotationFailed", ">ResumeAt", "<ResumeAt",
		">SetPassword", "<SetPassword", ">TestLogin", "!", "<TestLogin", ">CaughtTestLogin", "<CaughtTestLogin", ">NotifyFailure", "<NotifyFailure", ">RotationFailed", "!")
	tests := []struct {
		name       string
		h          *history
		found      bool
		passed     []string
		notPassed  []string
		failedIn   string
		promotedAt bool
	}{
		{"missing", nil, false, nil, []string{"Preflight"}, "", false},
		{"succeeded with retries", build(types.ExecutionStatusSucceeded, ok...), true,
			[]string{"Preflight", "SetPassword", "CheckReplicas", "Promote", "Redeploy"}, nil, "", true},
		{"running", build(types.ExecutionStatusRunning, ok[:9]...), true, []string{"TestLogin"}, []string{"CheckReplicas", "Promote"}, "", false},
		{"caught failure exits its state but did not pass", build(types.ExecutionStatusFailed, caught...), true,
			[]string{"CloneUser"}, []string{"SetPassword", "Promote"}, "SetPassword", false},
		{"redriven, then failed elsewhere", build(types.ExecutionStatusFailed, redriven...), true,
			[]string{"SetPassword"}, []string{"TestLogin"}, "TestLogin", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var api API = tc.h
			if tc.h == nil {
				api = (*history)(nil)
			}
			r := &Reader{API: api, StateMachineARN: machine}
			p, err := r.Progress(context.Background(), "v1")
			if err != nil {
				t.Fatal(err)
			}
			if p.Found != tc.found {
				t.Fatalf("Found = %v", p.Found)
			}
			for _, s := range tc.passed {
				if !p.Passed(s) {
					t.Errorf("%s should have passed", s)
				}
			}
			for _, s := range tc.notPassed {
				if p.Passed(s) {
					t.Errorf("%s should not have passed", s)
				}
			}
			if p.FailedState != tc.failedIn {
				t.Errorf("FailedState = %q, want %q", p.FailedState, tc.failedIn)
			}
			at, found, err := r.PromotedAt(context.Background(), "v1")
			if err != nil || found != tc.promotedAt {
				t.Fatalf("PromotedAt found = %v, err %v", found, err)
			}
			if found && !at.Equal(t0.Add(14*time.Second)) {
				t.Errorf("PromotedAt = %v, want when Redeploy was entered", at)
			}
		})
	}
}

func TestExecutionARN(t *testing.T) {
	if got := ExecutionARN(machine, "v1"); got != "arn:aws:states:eu-west-1:123456789012:execution:pgrotate:v1" {
		t.Fatalf("ExecutionARN = %s", got)
	}
}
