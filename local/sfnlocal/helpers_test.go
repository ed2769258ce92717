package sfnlocal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// The subset of *sfn.Client that consumers use; both must satisfy it.
type stepFunctions interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	GetExecutionHistory(context.Context, *sfn.GetExecutionHistoryInput, ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error)
	StopExecution(context.Context, *sfn.StopExecutionInput, ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error)
	RedriveExecution(context.Context, *sfn.RedriveExecutionInput, ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error)
	ListExecutions(context.Context, *sfn.ListExecutionsInput, ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error)
}

var (
	_ stepFunctions = (*sfn.Client)(nil)
	_ stepFunctions = (*sfnlocal.Machine)(nil)
)

func fnArn(name string) string { return "arn:aws:lambda:us-east-1:123456789012:function:" + name }

// MyError and OtherError are handler errors whose Go type names are the ASL error names.
type MyError struct{ Msg string }

func (e *MyError) Error() string { return e.Msg }

type OtherError struct{ Msg string }

func (e OtherError) Error() string { return e.Msg }

func newMachine(t *testing.T, opts sfnlocal.Options) *sfnlocal.Machine {
	t.Helper()
	m, err := sfnlocal.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func start(t *testing.T, m *sfnlocal.Machine, name, input string) string {
	t.Helper()
	out, err := m.StartExecution(testctx.Context(t), &sfn.StartExecutionInput{
		StateMachineArn: aws.String(m.StateMachineArn()), Name: aws.String(name), Input: aws.String(input),
	})
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	return aws.ToString(out.ExecutionArn)
}

func waitFor(t *testing.T, m *sfnlocal.Machine, arn string, want types.ExecutionStatus) *sfn.DescribeExecutionOutput {
	t.Helper()
	ctx := testctx.Context(t)
	got, err := m.Wait(ctx, arn)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	d, err := m.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatalf("DescribeExecution: %v", err)
	}
	if got != want {
		t.Fatalf("execution ended %s (%s: %s), want %s\n%s", got, aws.ToString(d.Error), aws.ToString(d.Cause), want, strings.Join(trace(events(t, m, arn)), "\n"))
	}
	return d
}

func events(t *testing.T, m *sfnlocal.Machine, arn string) []types.HistoryEvent {
	t.Helper()
	ev, err := m.Events(arn)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	return ev
}

// trace renders events as "Type detail" lines: the state name, the error, the resource.
func trace(evs []types.HistoryEvent) []string {
	var out []string
	for _, e := range evs {
		line := string(e.Type)
		switch {
		case e.StateEnteredEventDetails != nil:
			line += " " + aws.ToString(e.StateEnteredEventDetails.Name)
		case e.StateExitedEventDetails != nil:
			line += " " + aws.ToString(e.StateExitedEventDetails.Name)
		case e.LambdaFunctionScheduledEventDetails != nil:
			line += " " + strings.TrimPrefix(aws.ToString(e.LambdaFunctionScheduledEventDetails.Resource), fnArn(""))
		case e.LambdaFunctionFailedEventDetails != nil:
			line += " " + aws.ToString(e.LambdaFunctionFailedEventDetails.Error)
		case e.TaskFailedEventDetails != nil:
			line += " " + aws.ToString(e.TaskFailedEventDetails.Error)
		case e.TaskScheduledEventDetails != nil:
			line += " " + aws.ToString(e.TaskScheduledEventDetails.ResourceType) + ":" + aws.ToString(e.TaskScheduledEventDetails.Resource)
		case e.ExecutionFailedEventDetails != nil:
			line += " " + aws.ToString(e.ExecutionFailedEventDetails.Error)
		case e.MapIterationStartedEventDetails != nil:
			line += fmt.Sprintf(" %s[%d]", aws.ToString(e.MapIterationStartedEventDetails.Name), e.MapIterationStartedEventDetails.Index)
		case e.MapIterationSucceededEventDetails != nil:
			line += fmt.Sprintf(" %s[%d]", aws.ToString(e.MapIterationSucceededEventDetails.Name), e.MapIterationSucceededEventDetails.Index)
		case e.MapIterationFailedEventDetails != nil:
			line += fmt.Sprintf(" %s[%d]", aws.ToString(e.MapIterationFailedEventDetails.Name), e.MapIterationFailedEventDetails.Index)
		}
		out = append(out, line)
	}
	return out
}

func count(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// recorder is a Handler that counts calls, keeps inputs and answers from a script.
type recorder struct {
	mu     sync.Mutex
	inputs []string
	answer func(call int, input []byte) ([]byte, error)
}

func (r *recorder) handle(ctx context.Context, payload []byte) ([]byte, error) {
	r.mu.Lock()
	r.inputs = append(r.inputs, string(payload))
	call := len(r.inputs)
	r.mu.Unlock()
	if r.answer == nil {
		return payload, nil
	}
	return r.answer(call, payload)
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inputs)
}

func (r *recorder) input(i int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inputs[i]
}

// merge returns the JSON object in with extra's fields set.
func merge(in []byte, extra map[string]any) []byte {
	var v map[string]any
	if err := json.Unmarshal(in, &v); err != nil {
		panic(err)
	}
	for k, x := range extra {
		v[k] = x
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// lambdaCause decodes a Lambda error cause, {"errorMessage","errorType"}.
func lambdaCause(t *testing.T, cause string) (message, errorType string) {
	t.Helper()
	var c struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if err := json.Unmarshal([]byte(cause), &c); err != nil {
		t.Fatalf("cause %q is not Lambda's JSON error payload: %v", cause, err)
	}
	return c.ErrorMessage, c.ErrorType
}
