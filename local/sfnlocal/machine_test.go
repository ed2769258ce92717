package sfnlocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// tinyDef is Task → Choice → Wait → Task, with a Retry on MyError and a Catch on OtherError.
var tinyDef = fmt.Sprintf(`{
  "StartAt": "First",
  "States": {
    "First": {
      "Type": "Task", "Resource": %q,
      "Retry": [{"ErrorEquals": ["MyError"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2}],
      "Catch": [{"ErrorEquals": ["OtherError"], "ResultPath": "$.error", "Next": "Caught"}],
      "Next": "Decide"
    },
    "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "Pause"}], "Default": "Caught"},
    "Pause": {"Type": "Wait", "Seconds": 3600, "Next": "Second"},
    "Second": {"Type": "Task", "Resource": %q, "End": true},
    "Caught": {"Type": "Pass", "End": true}
  }
}`, fnArn("first"), fnArn("second"))

// tinyMachine runs tinyDef; the one-hour Wait is overridden to nothing.
func tinyMachine(t *testing.T, first, second *recorder) *sfnlocal.Machine {
	t.Helper()
	return newMachine(t, sfnlocal.Options{
		Definition:             tinyDef,
		Handlers:               map[string]sfnlocal.Handler{fnArn("first"): first.handle, fnArn("second"): second.handle},
		WaitOverrides:          map[string]time.Duration{"Pause": 0},
		RetryIntervalOverrides: map[string]time.Duration{"*": 10 * time.Millisecond},
	})
}

// failThen answers with the given errors on the first calls, then with the input plus go=true.
func failThen(errs ...error) func(int, []byte) ([]byte, error) {
	return func(call int, in []byte) ([]byte, error) {
		if call <= len(errs) {
			return nil, errs[call-1]
		}
		return merge(in, map[string]any{"go": true}), nil
	}
}

func TestRetryOnGoErrorTypeThenSucceed(t *testing.T) {
	first := &recorder{answer: failThen(&MyError{"not yet"}, &MyError{"not yet"})}
	second := &recorder{}
	m := tinyMachine(t, first, second)
	arn := start(t, m, "retry", `{"n":1}`)
	d := waitFor(t, m, arn, types.ExecutionStatusSucceeded)

	want := []string{
		"ExecutionStarted",
		"TaskStateEntered First",
		"LambdaFunctionScheduled first", "LambdaFunctionStarted", "LambdaFunctionFailed MyError",
		"LambdaFunctionScheduled first", "LambdaFunctionStarted", "LambdaFunctionFailed MyError",
		"LambdaFunctionScheduled first", "LambdaFunctionStarted", "LambdaFunctionSucceeded",
		"TaskStateExited First",
		"ChoiceStateEntered Decide", "ChoiceStateExited Decide",
		"WaitStateEntered Pause", "WaitStateExited Pause",
		"TaskStateEntered Second",
		"LambdaFunctionScheduled second", "LambdaFunctionStarted", "LambdaFunctionSucceeded",
		"TaskStateExited Second",
		"ExecutionSucceeded",
	}
	evs := events(t, m, arn)
	if got := trace(evs); !slices.Equal(got, want) {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range evs {
		if d := e.LambdaFunctionFailedEventDetails; d != nil {
			msg, typ := lambdaCause(t, aws.ToString(d.Cause))
			if msg != "not yet" || typ != "MyError" {
				t.Errorf("cause = %s", aws.ToString(d.Cause))
			}
		}
	}
	for i, e := range evs {
		if e.Id != int64(i+1) || e.PreviousEventId != int64(i) || e.Timestamp == nil {
			t.Fatalf("event %d: id %d, previous %d, timestamp %v", i, e.Id, e.PreviousEventId, e.Timestamp)
		}
	}
	if first.calls() != 3 || second.calls() != 1 {
		t.Errorf("calls: first %d, second %d; want 3, 1", first.calls(), second.calls())
	}
	if got := aws.ToString(d.Output); got != `{"go":true,"n":1}` {
		t.Errorf("output = %s", got)
	}
	if d.StopDate == nil || d.StartDate == nil || d.StopDate.Before(*d.StartDate) {
		t.Errorf("dates: start %v, stop %v", d.StartDate, d.StopDate)
	}
}

func TestRetriesExhaustedFailExecution(t *testing.T) {
	first := &recorder{answer: failThen(&MyError{"a"}, &MyError{"b"}, &MyError{"c"})}
	m := tinyMachine(t, first, &recorder{})
	arn := start(t, m, "exhausted", `{}`)
	d := waitFor(t, m, arn, types.ExecutionStatusFailed)
	if aws.ToString(d.Error) != "MyError" {
		t.Errorf("Error = %q, want MyError", aws.ToString(d.Error))
	}
	if msg, typ := lambdaCause(t, aws.ToString(d.Cause)); msg != "c" || typ != "MyError" {
		t.Errorf("Cause = %s", aws.ToString(d.Cause))
	}
	if first.calls() != 3 {
		t.Errorf("first called %d times, want 1 + MaxAttempts 2", first.calls())
	}
	tr := trace(events(t, m, arn))
	if tr[len(tr)-1] != "ExecutionFailed MyError" || count(tr, "TaskStateExited First") != 0 {
		t.Errorf("history:\n%s", strings.Join(tr, "\n"))
	}
}

func TestCatchOnGoErrorType(t *testing.T) {
	first := &recorder{answer: failThen(OtherError{"wrong"})}
	second := &recorder{}
	m := tinyMachine(t, first, second)
	arn := start(t, m, "catch", `{"n":2}`)
	d := waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	var out struct {
		N     int
		Error struct{ Error, Cause string }
	}
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatal(err)
	}
	if out.N != 2 || out.Error.Error != "OtherError" {
		t.Fatalf("output = %s", aws.ToString(d.Output))
	}
	if msg, typ := lambdaCause(t, out.Error.Cause); msg != "wrong" || typ != "OtherError" {
		t.Errorf("caught Cause = %s", out.Error.Cause)
	}
	if first.calls() != 1 || second.calls() != 0 {
		t.Errorf("calls: first %d, second %d; want 1, 0 (OtherError is not retried)", first.calls(), second.calls())
	}
	// As on AWS, a caught error exits its state (with the error output).
	tr := trace(events(t, m, arn))
	i := slices.Index(tr, "LambdaFunctionFailed OtherError")
	if i < 0 || tr[i+1] != "TaskStateExited First" || tr[i+2] != "PassStateEntered Caught" {
		t.Errorf("history:\n%s", strings.Join(tr, "\n"))
	}
}

// blocker is a handler that blocks until released, and reports its context's end.
type blocker struct {
	entered  chan struct{}
	release  chan struct{}
	canceled chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{}), canceled: make(chan struct{}, 16)}
}

func (b *blocker) handle(ctx context.Context, payload []byte) ([]byte, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return merge(payload, map[string]any{"go": true}), nil
	case <-ctx.Done():
		b.canceled <- struct{}{}
		return nil, ctx.Err()
	}
}

func receive(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-testctx.Context(t).Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestStartExecutionIdempotency(t *testing.T) {
	b := newBlocker()
	m := newMachine(t, sfnlocal.Options{
		Definition:    tinyDef,
		Handlers:      map[string]sfnlocal.Handler{fnArn("first"): b.handle, fnArn("second"): (&recorder{}).handle},
		WaitOverrides: map[string]time.Duration{"*": 0},
	})
	ctx := testctx.Context(t)
	startIn := func(name, input string) (*sfn.StartExecutionOutput, error) {
		return m.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(m.StateMachineArn()), Name: aws.String(name), Input: aws.String(input)})
	}
	first, err := startIn("token-1", `{"a":1}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:states:local:000000000000:execution:local:token-1"; aws.ToString(first.ExecutionArn) != want {
		t.Errorf("ExecutionArn = %s, want %s", aws.ToString(first.ExecutionArn), want)
	}
	receive(t, b.entered, "the first task")

	again, err := startIn("token-1", `{"a":1}`)
	if err != nil {
		t.Fatalf("same name and input while RUNNING: %v", err)
	}
	if aws.ToString(again.ExecutionArn) != aws.ToString(first.ExecutionArn) || !again.StartDate.Equal(*first.StartDate) {
		t.Errorf("idempotent start returned %v, want the running execution %v", again, first)
	}
	var exists *types.ExecutionAlreadyExists
	if _, err := startIn("token-1", `{"a":2}`); !errors.As(err, &exists) {
		t.Errorf("same name, other input: error %v, want ExecutionAlreadyExists", err)
	}
	var apiErr smithy.APIError
	if _, err := startIn("token-1", `{"a":2}`); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ExecutionAlreadyExists" {
		t.Errorf("error %v does not carry the API error code", err)
	}
	list, err := m.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(m.StateMachineArn()), StatusFilter: types.ExecutionStatusRunning})
	if err != nil || len(list.Executions) != 1 {
		t.Fatalf("ListExecutions RUNNING = %v, %v; want one", list, err)
	}

	close(b.release)
	waitFor(t, m, aws.ToString(first.ExecutionArn), types.ExecutionStatusSucceeded)
	if _, err := startIn("token-1", `{"a":1}`); !errors.As(err, &exists) {
		t.Errorf("same name after it ended: error %v, want ExecutionAlreadyExists", err)
	}
	list, err = m.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(m.StateMachineArn()), StatusFilter: types.ExecutionStatusSucceeded})
	if err != nil || len(list.Executions) != 1 || aws.ToString(list.Executions[0].Name) != "token-1" {
		t.Fatalf("ListExecutions SUCCEEDED = %v, %v", list, err)
	}

	var invalidName *types.InvalidName
	if _, err := startIn("bad name", `{}`); !errors.As(err, &invalidName) {
		t.Errorf("name with a space: error %v, want InvalidName", err)
	}
	var noMachine *types.StateMachineDoesNotExist
	if _, err := m.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:local:000000000000:stateMachine:other")}); !errors.As(err, &noMachine) {
		t.Errorf("other state machine: error %v, want StateMachineDoesNotExist", err)
	}
	var noExec *types.ExecutionDoesNotExist
	if _, err := m.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(m.StateMachineArn() + ":nope")}); !errors.As(err, &noExec) {
		t.Errorf("unknown execution: error %v, want ExecutionDoesNotExist", err)
	}
}

func TestStopExecution(t *testing.T) {
	b := newBlocker()
	m := newMachine(t, sfnlocal.Options{
		Definition: tinyDef,
		Handlers:   map[string]sfnlocal.Handler{fnArn("first"): b.handle, fnArn("second"): (&recorder{}).handle},
	})
	ctx := testctx.Context(t)
	arn := start(t, m, "stop-me", `{}`)
	receive(t, b.entered, "the first task")
	out, err := m.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(arn), Error: aws.String("Superseded"), Cause: aws.String("by the test")})
	if err != nil {
		t.Fatalf("StopExecution: %v", err)
	}
	d, err := m.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != types.ExecutionStatusAborted || aws.ToString(d.Error) != "Superseded" || aws.ToString(d.Cause) != "by the test" {
		t.Fatalf("after StopExecution: %s %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	if !out.StopDate.Equal(*d.StopDate) {
		t.Errorf("StopDate %v, described %v", out.StopDate, d.StopDate)
	}
	receive(t, b.canceled, "the running handler's context to end")
	tr := trace(events(t, m, arn))
	if tr[len(tr)-1] != "ExecutionAborted" {
		t.Errorf("history:\n%s", strings.Join(tr, "\n"))
	}
	if _, err := m.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
		t.Errorf("stopping an ended execution: %v", err)
	}
}

func TestTaskTimeout(t *testing.T) {
	def := fmt.Sprintf(`{"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": %q, "TimeoutSeconds": 1, "End": true}}}`, fnArn("slow"))
	b := newBlocker()
	m := newMachine(t, sfnlocal.Options{Definition: def, Handlers: map[string]sfnlocal.Handler{fnArn("slow"): b.handle}})
	arn := start(t, m, "slow", `{}`)
	d := waitFor(t, m, arn, types.ExecutionStatusFailed)
	if aws.ToString(d.Error) != "States.Timeout" {
		t.Errorf("Error = %s, want States.Timeout", aws.ToString(d.Error))
	}
	receive(t, b.canceled, "the handler's context to reach its deadline")
	if tr := trace(events(t, m, arn)); count(tr, "LambdaFunctionTimedOut") != 1 {
		t.Errorf("history:\n%s", strings.Join(tr, "\n"))
	}
}

// chainDef is A → B, no Catch: a failure in B fails the execution in B.
var chainDef = fmt.Sprintf(`{
  "StartAt": "A",
  "States": {
    "A": {"Type": "Task", "Resource": %q, "ResultPath": "$.a", "Next": "B"},
    "B": {"Type": "Task", "Resource": %q, "ResultPath": "$.b", "End": true}
  }
}`, fnArn("a"), fnArn("b"))

func TestRedriveFromFailedState(t *testing.T) {
	a := &recorder{answer: func(call int, _ []byte) ([]byte, error) { return []byte(fmt.Sprintf(`{"call":%d}`, call)), nil }}
	b := &recorder{answer: func(call int, _ []byte) ([]byte, error) {
		if call == 1 {
			return nil, &MyError{"transient"}
		}
		return []byte(`"ok"`), nil
	}}
	m := newMachine(t, sfnlocal.Options{Definition: chainDef, Handlers: map[string]sfnlocal.Handler{fnArn("a"): a.handle, fnArn("b"): b.handle}})
	ctx := testctx.Context(t)
	arn := start(t, m, "redrive", `{"x":1}`)
	d := waitFor(t, m, arn, types.ExecutionStatusFailed)
	if d.RedriveStatus != types.ExecutionRedriveStatusRedrivable {
		t.Fatalf("RedriveStatus = %s (%s)", d.RedriveStatus, aws.ToString(d.RedriveStatusReason))
	}

	if _, err := m.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
		t.Fatalf("RedriveExecution: %v", err)
	}
	d = waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	if a.calls() != 1 || b.calls() != 2 {
		t.Fatalf("calls: A %d, B %d; want 1 (not re-run), 2", a.calls(), b.calls())
	}
	if b.input(1) != b.input(0) {
		t.Errorf("B redriven with %s, first ran with %s", b.input(1), b.input(0))
	}
	if aws.ToInt32(d.RedriveCount) != 1 || d.RedriveDate == nil {
		t.Errorf("RedriveCount %d, RedriveDate %v", aws.ToInt32(d.RedriveCount), d.RedriveDate)
	}
	if got := aws.ToString(d.Output); got != `{"x":1,"a":{"call":1},"b":"ok"}` {
		t.Errorf("output = %s", got)
	}
	tr := trace(events(t, m, arn))
	want := []string{"ExecutionFailed MyError", "ExecutionRedriven", "TaskStateEntered B"}
	if i := slices.Index(tr, want[0]); i < 0 || !slices.Equal(tr[i:i+3], want) || count(tr, "TaskStateEntered A") != 1 {
		t.Errorf("history:\n%s", strings.Join(tr, "\n"))
	}

	var notRedrivable *types.ExecutionNotRedrivable
	if _, err := m.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); !errors.As(err, &notRedrivable) {
		t.Errorf("redrive a SUCCEEDED execution: error %v, want ExecutionNotRedrivable", err)
	}
}

func TestRedriveFromMapState(t *testing.T) {
	def := fmt.Sprintf(`{
  "StartAt": "Prep",
  "States": {
    "Prep": {"Type": "Task", "Resource": %q, "Next": "Fan"},
    "Fan": {
      "Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.results",
      "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": %q, "End": true}}},
      "End": true
    }
  }
}`, fnArn("prep"), fnArn("work"))
	prep := &recorder{}
	var failed atomic.Bool // iterations run concurrently
	work := &recorder{answer: func(_ int, in []byte) ([]byte, error) {
		if string(in) == "2" && failed.CompareAndSwap(false, true) {
			return nil, &MyError{"item 2"}
		}
		return in, nil
	}}
	m := newMachine(t, sfnlocal.Options{Definition: def, Handlers: map[string]sfnlocal.Handler{fnArn("prep"): prep.handle, fnArn("work"): work.handle}})
	arn := start(t, m, "map", `{"items":[1,2,3]}`)
	waitFor(t, m, arn, types.ExecutionStatusFailed)
	if _, err := m.RedriveExecution(testctx.Context(t), &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	if prep.calls() != 1 {
		t.Errorf("Prep ran %d times, want 1", prep.calls())
	}
	if got := aws.ToString(d.Output); got != `{"items":[1,2,3],"results":[1,2,3]}` {
		t.Errorf("output = %s", got)
	}
	tr := trace(events(t, m, arn))
	for _, line := range []string{"MapStateEntered Fan", "MapIterationFailed Fan[1]", "MapStateFailed", "ExecutionRedriven", "MapIterationSucceeded Fan[2]", "MapStateSucceeded", "MapStateExited Fan"} {
		if count(tr, line) == 0 {
			t.Errorf("no %q in history:\n%s", line, strings.Join(tr, "\n"))
		}
	}
	if count(tr, "MapStateEntered Fan") != 2 {
		t.Errorf("Map entered %d times, want 2 (the redrive re-runs it)", count(tr, "MapStateEntered Fan"))
	}
}

func TestHistoryWithoutExecutionData(t *testing.T) {
	m := tinyMachine(t, &recorder{answer: failThen()}, &recorder{})
	const marker = "marker-7f3a"
	arn := start(t, m, "data", `{"note":"`+marker+`"}`)
	waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	ctx := testctx.Context(t)

	full, err := json.Marshal(events(t, m, arn))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(full), marker) {
		t.Fatal("Events lacks the input: the check below would prove nothing")
	}
	withData, err := m.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(withData.Events); !strings.Contains(string(b), marker) {
		t.Error("GetExecutionHistory without IncludeExecutionData must include data (the API default)")
	}
	noData, err := m.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), IncludeExecutionData: aws.Bool(false), MaxResults: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(noData.Events)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{marker, `"Input":"`, `"Output":"`, `"Parameters":"`} {
		if strings.Contains(string(b), bad) {
			t.Errorf("history without data contains %s", bad)
		}
	}
	if len(noData.Events) != len(withData.Events) {
		t.Errorf("%d events without data, %d with", len(noData.Events), len(withData.Events))
	}

	// Paging and reverse order.
	var paged []types.HistoryEvent
	in := &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 4, ReverseOrder: true}
	for {
		out, err := m.GetExecutionHistory(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, out.Events...)
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	want := slices.Clone(withData.Events)
	slices.Reverse(want)
	if !slices.Equal(trace(paged), trace(want)) {
		t.Errorf("paged reverse history differs:\n%s", strings.Join(trace(paged), "\n"))
	}
}

func TestCloseAbortsRunningExecutions(t *testing.T) {
	b := newBlocker()
	m, err := sfnlocal.New(sfnlocal.Options{
		Definition: tinyDef,
		Handlers:   map[string]sfnlocal.Handler{fnArn("first"): b.handle, fnArn("second"): (&recorder{}).handle},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := start(t, m, "closing", `{}`)
	receive(t, b.entered, "the first task")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	receive(t, b.canceled, "the handler's context to end")
	if st, err := m.Wait(testctx.Context(t), arn); err != nil || st != types.ExecutionStatusAborted {
		t.Fatalf("after Close: %s, %v; want ABORTED", st, err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	handlers := map[string]sfnlocal.Handler{fnArn("first"): (&recorder{}).handle, fnArn("second"): (&recorder{}).handle}
	missing := filepath.Join(t.TempDir(), "nothing")
	tests := []struct {
		name string
		opts sfnlocal.Options
		want string
	}{
		{"handler missing", sfnlocal.Options{Definition: tinyDef, Handlers: map[string]sfnlocal.Handler{fnArn("first"): (&recorder{}).handle}}, "no handler for Task resource " + fnArn("second")},
		{"not JSON", sfnlocal.Options{Definition: "{", Handlers: handlers}, "parse definition"},
		{"bad state machine ARN", sfnlocal.Options{Definition: tinyDef, Handlers: handlers, StateMachineArn: "nope"}, "state machine ARN"},
		{"override of no state", sfnlocal.Options{Definition: tinyDef, Handlers: handlers, WaitOverrides: map[string]time.Duration{"Nope": 0}}, `"Nope": no such state`},
		{"invalid for the interpreter", sfnlocal.Options{Definition: strings.Replace(tinyDef, `"Next": "Decide"`, `"Next": "Nowhere"`, 1), Handlers: handlers}, "validate definition"},
		{"negative TimeScale", sfnlocal.Options{Definition: tinyDef, Handlers: handlers, TimeScale: -1}, "TimeScale"},
		{"node missing", sfnlocal.Options{Definition: tinyDef, Handlers: handlers, Node: missing}, "run `npm ci`"},
		{"node_modules missing", sfnlocal.Options{Definition: tinyDef, Handlers: handlers, NodeModules: missing}, "run `npm ci`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := sfnlocal.New(tc.opts)
			if err == nil {
				m.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFindToolsFromEnvironment(t *testing.T) {
	tl, err := sfnlocal.FindTools("", "")
	if err != nil {
		t.Fatalf("the Node tooling is required: %v", err)
	}
	t.Setenv(sfnlocal.EnvNode, tl.Node)
	t.Setenv(sfnlocal.EnvNodeModules, tl.NodeModules)
	t.Chdir(os.TempDir()) // no go.mod above: only the environment can tell
	got, err := sfnlocal.FindTools("", "")
	if err != nil || got != tl {
		t.Fatalf("FindTools from the environment = %+v, %v; want %+v", got, err, tl)
	}
	t.Setenv(sfnlocal.EnvNode, "")
	if _, err := sfnlocal.FindTools("", ""); err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Fatalf("without go.mod or environment: error %v, want one that says to run npm ci", err)
	}
}

func TestTimeScale(t *testing.T) {
	def := fmt.Sprintf(`{
  "StartAt": "Flaky",
  "States": {
    "Flaky": {"Type": "Task", "Resource": %q, "Retry": [{"ErrorEquals": ["MyError"], "IntervalSeconds": 20, "MaxAttempts": 1}], "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 30, "End": true}
  }
}`, fnArn("flaky"))
	flaky := &recorder{answer: failThen(&MyError{"once"})}
	m := newMachine(t, sfnlocal.Options{Definition: def, Handlers: map[string]sfnlocal.Handler{fnArn("flaky"): flaky.handle}, TimeScale: 0.01})
	began := time.Now()
	arn := start(t, m, "scaled", `{}`)
	waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	// Bounds are the unscaled durations, which only an unscaled run reaches, however busy
	// the machine.
	if took := time.Since(began); took >= 30*time.Second {
		t.Fatalf("took %v: the 30 s Wait was not scaled", took)
	}
	var entered, exited time.Time
	for _, e := range events(t, m, arn) {
		switch e.Type {
		case types.HistoryEventTypeWaitStateEntered:
			entered = *e.Timestamp
		case types.HistoryEventTypeWaitStateExited:
			exited = *e.Timestamp
		}
	}
	// 30 s × 0.01: the Wait still waits, for about 300 ms.
	if d := exited.Sub(entered); d < 250*time.Millisecond || d >= 30*time.Second {
		t.Errorf("Wait lasted %v, want about 300ms", d)
	}
	if flaky.calls() != 2 {
		t.Errorf("Flaky called %d times, want 2", flaky.calls())
	}
}

func TestOnEventStreamsHistory(t *testing.T) {
	var (
		mu  sync.Mutex
		got []types.HistoryEvent
	)
	a, b := &recorder{}, &recorder{}
	m := newMachine(t, sfnlocal.Options{
		Definition: chainDef,
		Handlers:   map[string]sfnlocal.Handler{fnArn("a"): a.handle, fnArn("b"): b.handle},
		OnEvent: func(arn string, ev types.HistoryEvent) {
			mu.Lock()
			defer mu.Unlock()
			if !strings.HasSuffix(arn, ":stream") {
				t.Errorf("event for %s", arn)
			}
			got = append(got, ev)
		},
	})
	arn := start(t, m, "stream", `{}`)
	waitFor(t, m, arn, types.ExecutionStatusSucceeded)
	want := trace(events(t, m, arn))
	// The terminal event is published just after the status changes: allow it a moment.
	testDone := testctx.Context(t).Done()
poll:
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(want) {
			break
		}
		select {
		case <-testDone: // the comparison below reports what is missing
			break poll
		case <-time.After(10 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(trace(got), want) {
		t.Fatalf("OnEvent saw:\n%s\nhistory:\n%s", strings.Join(trace(got), "\n"), strings.Join(want, "\n"))
	}
}
