package operator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
)

const (
	machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:pgrotate"
	secret  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-AbCdEf"
	current = "00000000-0000-4000-8000-000000000001"
	pending = "11111111-1111-4111-8111-111111111111"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeSFN is a hand-written Step Functions: executions by name, each with a status, a stop
// date, a redrive status and a short history.
type fakeSFN struct {
	execs      map[string]*sfn.DescribeExecutionOutput
	redriven   []string
	redriveErr error
}

func (f *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	if d, ok := f.execs[aws.ToString(in.ExecutionArn)]; ok {
		return d, nil
	}
	return nil, &types.ExecutionDoesNotExist{Message: aws.String("no such execution")}
}

func (f *fakeSFN) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	ts := aws.Time(now.Add(-time.Hour))
	events := []types.HistoryEvent{
		{Id: 1, Timestamp: ts, Type: types.HistoryEventTypeTaskStateEntered, StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String("SetPassword")}},
		{Id: 2, Timestamp: ts, Type: types.HistoryEventTypeLambdaFunctionFailed, LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String("StepFailed")}},
	}
	if in.ReverseOrder {
		slices.Reverse(events)
	}
	if in.MaxResults > 0 && int(in.MaxResults) < len(events) {
		events = events[:in.MaxResults]
	}
	return &sfn.GetExecutionHistoryOutput{Events: events}, nil
}

func (f *fakeSFN) RedriveExecution(_ context.Context, in *sfn.RedriveExecutionInput, _ ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error) {
	if f.redriveErr != nil {
		return nil, f.redriveErr
	}
	f.redriven = append(f.redriven, aws.ToString(in.ExecutionArn))
	return &sfn.RedriveExecutionOutput{RedriveDate: aws.Time(now)}, nil
}

func execution(status types.ExecutionStatus, stopped time.Duration, redrive types.ExecutionRedriveStatus, reason string) *sfn.DescribeExecutionOutput {
	d := &sfn.DescribeExecutionOutput{Status: status, StartDate: aws.Time(now.Add(-stopped - time.Minute)), RedriveStatus: redrive}
	if status == types.ExecutionStatusFailed {
		d.Error = aws.String("StepFailed")
	}
	if status != types.ExecutionStatusRunning {
		d.StopDate = aws.Time(now.Add(-stopped))
	}
	if reason != "" {
		d.RedriveStatusReason = aws.String(reason)
	}
	return d
}

// Redrive resumes the pending version's failed execution, or refuses with the one reason
// that applies, its message saying exactly why.
func TestRedriveRefusals(t *testing.T) {
	arn := executions.ExecutionARN(machine, pending)
	stages := map[string][]string{current: {"AWSCURRENT"}, pending: {"AWSPENDING"}}
	tests := []struct {
		name     string
		versions map[string][]string
		exec     *sfn.DescribeExecutionOutput
		redrive  error
		want     RefusalReason
		says     string
	}{
		{"redrivable", stages, execution(types.ExecutionStatusFailed, time.Hour, types.ExecutionRedriveStatusRedrivable, ""), nil, "", ""},
		{"nothing pending", map[string][]string{current: {"AWSCURRENT", "AWSPENDING"}}, nil, nil, NoPendingVersion, "no version"},
		{"no execution", stages, nil, nil, NoExecution, "no execution of it exists"},
		{"running", stages, execution(types.ExecutionStatusRunning, 0, types.ExecutionRedriveStatusNotRedrivable, "RUNNING"), nil, ExecutionRunning, "still running"},
		{"succeeded", stages, execution(types.ExecutionStatusSucceeded, time.Hour, types.ExecutionRedriveStatusNotRedrivable, ""), nil, ExecutionSucceeded, "succeeded"},
		{"past the window", stages, execution(types.ExecutionStatusFailed, 15*24*time.Hour, types.ExecutionRedriveStatusNotRedrivable, ""), nil, RedriveWindowPassed, "more than 14 days ago"},
		{"not redrivable", stages, execution(types.ExecutionStatusFailed, time.Hour, types.ExecutionRedriveStatusNotRedrivable, "Execution ended before entering a state"), nil, NotRedrivable, "ended before entering a state"},
		{"refused by the redrive", stages, execution(types.ExecutionStatusFailed, time.Hour, types.ExecutionRedriveStatusRedrivable, ""),
			&types.ExecutionNotRedrivable{Message: aws.String("limit of redrives")}, NotRedrivable, "limit of redrives"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSFN{execs: map[string]*sfn.DescribeExecutionOutput{}, redriveErr: tt.redrive}
			if tt.exec != nil {
				f.execs[arn] = tt.exec
			}
			r, err := Redrive(context.Background(), f, &Deployment{SecretARN: secret, StateMachine: machine, Versions: tt.versions}, now)
			var refused *RedriveRefused
			if tt.want == "" {
				if err != nil || r.FailedState != "SetPassword" || r.Error != "StepFailed" || r.Execution != pending || len(f.redriven) != 1 || r.LastEvent != 2 {
					t.Errorf("Redrive = %+v, %v; redriven %v", r, err, f.redriven)
				}
				return
			}
			if !errors.As(err, &refused) || refused.Reason != tt.want || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Redrive error %v, want %s saying %q", err, tt.want, tt.says)
			}
			if len(f.redriven) != 0 {
				t.Errorf("a refused redrive called RedriveExecution")
			}
		})
	}
}
