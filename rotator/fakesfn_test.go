package rotator

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// fakeSFN is a hand-written Step Functions with Standard-workflow naming rules: a name is
// unique per state machine; the same name while running with the same input returns the
// running execution; otherwise ExecutionAlreadyExists. Tests move executions along with
// pass/fail/catch, which append the history events Step Functions records for a Lambda
// Task state, including the TaskStateExited that follows a caught error.
type fakeSFN struct {
	mu         sync.Mutex
	machine    string
	executions map[string]*fakeExecution
	calls      []string
	// listPage, when > 0, is how many executions one ListExecutions page holds.
	listPage int
	failNext map[string]error
	// now is the clock of the 14-day redrive window and the 90-day name reuse; default
	// time.Now.
	now func() time.Time
	// machineStatus and machineType are what DescribeStateMachine reports; default ACTIVE
	// and STANDARD.
	machineStatus types.StateMachineStatus
	machineType   types.StateMachineType
}

type fakeExecution struct {
	arn, name, input string
	status           types.ExecutionStatus
	events           []types.HistoryEvent
	errName, cause   string
	failedIn         string // the state whose caught failure ended the execution
	redrives         int32
	started          time.Time
	closed           time.Time
}

func newFakeSFN(machine string) *fakeSFN {
	return &fakeSFN{machine: machine, executions: map[string]*fakeExecution{}, failNext: map[string]error{}}
}

func (f *fakeSFN) record(call string) { f.calls = append(f.calls, call) }

func (f *fakeSFN) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// close records that ex closed now. The caller holds f.mu.
func (f *fakeSFN) close(ex *fakeExecution, status types.ExecutionStatus) {
	ex.status, ex.closed = status, f.clock()
}

// gone reports whether ex closed more than 90 days ago: its history is removed and its name
// free (https://docs.aws.amazon.com/step-functions/latest/dg/express-at-least-once-execution.html).
func (f *fakeSFN) gone(ex *fakeExecution) bool {
	return !ex.closed.IsZero() && ex.status != types.ExecutionStatusRunning && f.clock().Sub(ex.closed) > 90*24*time.Hour
}

func (f *fakeSFN) DescribeStateMachine(_ context.Context, in *sfn.DescribeStateMachineInput, _ ...func(*sfn.Options)) (*sfn.DescribeStateMachineOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DescribeStateMachine")
	if err := f.injected("DescribeStateMachine"); err != nil {
		return nil, err
	}
	if aws.ToString(in.StateMachineArn) != f.machine {
		return nil, &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: " + aws.ToString(in.StateMachineArn))}
	}
	out := &sfn.DescribeStateMachineOutput{StateMachineArn: aws.String(f.machine), Status: f.machineStatus, Type: f.machineType}
	if out.Status == "" {
		out.Status = types.StateMachineStatusActive
	}
	if out.Type == "" {
		out.Type = types.StateMachineTypeStandard
	}
	return out, nil
}

// injected returns the error queued for op, once. The caller holds f.mu.
func (f *fakeSFN) injected(op string) error {
	err := f.failNext[op]
	delete(f.failNext, op)
	return err
}

// failOnce makes the next call of op (e.g. "StartExecution") fail with err.
func (f *fakeSFN) failOnce(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[op] = err
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := aws.ToString(in.Name)
	f.record("StartExecution " + name)
	if err := f.injected("StartExecution"); err != nil {
		return nil, err
	}
	if aws.ToString(in.StateMachineArn) != f.machine {
		return nil, &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: " + aws.ToString(in.StateMachineArn))}
	}
	if !validExecutionName(name) {
		return nil, &types.InvalidName{Message: aws.String("Invalid Name: '" + name + "'")}
	}
	if ex, ok := f.executions[name]; ok && f.gone(ex) {
		delete(f.executions, name)
	}
	if ex, ok := f.executions[name]; ok {
		if ex.status == types.ExecutionStatusRunning && ex.input == aws.ToString(in.Input) {
			return &sfn.StartExecutionOutput{ExecutionArn: aws.String(ex.arn), StartDate: aws.Time(ex.started)}, nil
		}
		return nil, &types.ExecutionAlreadyExists{Message: aws.String("Execution Already Exists: " + ex.arn)}
	}
	ex := f.newExecution(name, aws.ToString(in.Input))
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(ex.arn), StartDate: aws.Time(ex.started)}, nil
}

// newExecution records a running execution. The caller holds f.mu.
func (f *fakeSFN) newExecution(name, input string) *fakeExecution {
	ex := &fakeExecution{
		arn:     strings.Replace(f.machine, ":stateMachine:", ":execution:", 1) + ":" + name,
		name:    name,
		input:   input,
		status:  types.ExecutionStatusRunning,
		started: f.clock(),
	}
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionStarted})
	f.executions[name] = ex
	return ex
}

func (ex *fakeExecution) add(ev types.HistoryEvent) {
	ev.Id = int64(len(ex.events) + 1)
	ev.PreviousEventId = ev.Id - 1
	ev.Timestamp = aws.Time(time.Now())
	ex.events = append(ex.events, ev)
}

func (ex *fakeExecution) enter(state string) {
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeTaskStateEntered, StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String(state)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionScheduled})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionStarted})
}

func (ex *fakeExecution) exit(state string) {
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeTaskStateExited, StateExitedEventDetails: &types.StateExitedEventDetails{Name: aws.String(state)}})
}

func (f *fakeSFN) byARN(arn string) (*fakeExecution, error) {
	for _, ex := range f.executions {
		if ex.arn == arn && !f.gone(ex) {
			return ex, nil
		}
	}
	return nil, &types.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: " + arn)}
}

func (f *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, err := f.byARN(aws.ToString(in.ExecutionArn))
	f.record("DescribeExecution " + lastSegment(aws.ToString(in.ExecutionArn)))
	if err != nil {
		return nil, err
	}
	out := &sfn.DescribeExecutionOutput{ExecutionArn: aws.String(ex.arn), Name: aws.String(ex.name), Input: aws.String(ex.input),
		Status: ex.status, StartDate: aws.Time(ex.started), RedriveCount: aws.Int32(ex.redrives)}
	if ex.errName != "" {
		out.Error, out.Cause = aws.String(ex.errName), aws.String(ex.cause)
	}
	return out, nil
}

// historyPage is how many events one GetExecutionHistory page holds in the fake, small so
// that readers must follow NextToken.
const historyPage = 4

func (f *fakeSFN) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, err := f.byARN(aws.ToString(in.ExecutionArn))
	if err != nil {
		return nil, err
	}
	if in.IncludeExecutionData == nil || aws.ToBool(in.IncludeExecutionData) {
		// The API's default is true: a reader must ask for false explicitly.
		panic("the rotation function must read history without execution data")
	}
	f.record("GetExecutionHistory " + ex.name)
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	end := min(start+historyPage, len(ex.events))
	out := &sfn.GetExecutionHistoryOutput{Events: append([]types.HistoryEvent(nil), ex.events[start:end]...)}
	if end < len(ex.events) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fakeSFN) StopExecution(_ context.Context, in *sfn.StopExecutionInput, _ ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, err := f.byARN(aws.ToString(in.ExecutionArn))
	if err != nil {
		return nil, err
	}
	f.record("StopExecution " + ex.name + " " + aws.ToString(in.Error))
	f.close(ex, types.ExecutionStatusAborted)
	ex.errName, ex.cause = aws.ToString(in.Error), aws.ToString(in.Cause)
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionAborted})
	return &sfn.StopExecutionOutput{StopDate: aws.Time(time.Now())}, nil
}

func (f *fakeSFN) RedriveExecution(_ context.Context, in *sfn.RedriveExecutionInput, _ ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, err := f.byARN(aws.ToString(in.ExecutionArn))
	if err != nil {
		return nil, err
	}
	f.record("RedriveExecution " + ex.name)
	switch ex.status {
	case types.ExecutionStatusFailed, types.ExecutionStatusAborted, types.ExecutionStatusTimedOut:
	default:
		return nil, &types.ExecutionNotRedrivable{Message: aws.String("not redrivable: " + string(ex.status))}
	}
	if f.clock().Sub(ex.closed) > 14*24*time.Hour {
		return nil, &types.ExecutionNotRedrivable{Message: aws.String("Execution closed more than 14 days ago and can no longer be redriven")}
	}
	ex.status, ex.errName, ex.cause = types.ExecutionStatusRunning, "", ""
	ex.redrives++
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionRedriven})
	if ex.failedIn != "" {
		// RotationFailed runs again, sees the redrive and lets ResumeAt go back to the
		// failed state; the test moves the execution on from there.
		ex.enter("RotationFailed")
		ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionSucceeded})
		ex.exit("RotationFailed")
		ex.add(types.HistoryEvent{Type: types.HistoryEventTypeChoiceStateEntered, StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String("ResumeAt")}})
		ex.add(types.HistoryEvent{Type: types.HistoryEventTypeChoiceStateExited, StateExitedEventDetails: &types.StateExitedEventDetails{Name: aws.String("ResumeAt")}})
		ex.failedIn = ""
	}
	return &sfn.RedriveExecutionOutput{RedriveDate: aws.Time(time.Now())}, nil
}

func (f *fakeSFN) ListExecutions(_ context.Context, in *sfn.ListExecutionsInput, _ ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListExecutions " + string(in.StatusFilter))
	var all []types.ExecutionListItem
	names := make([]string, 0, len(f.executions))
	for n := range f.executions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ex := f.executions[n]
		if in.StatusFilter != "" && ex.status != in.StatusFilter {
			continue
		}
		all = append(all, types.ExecutionListItem{ExecutionArn: aws.String(ex.arn), Name: aws.String(ex.name), Status: ex.status, StartDate: aws.Time(ex.started)})
	}
	if f.listPage <= 0 {
		return &sfn.ListExecutionsOutput{Executions: all}, nil
	}
	// The token is the name to resume at, so stopping an execution between pages does
	// not shift the listing.
	start := 0
	if in.NextToken != nil {
		for start < len(all) && aws.ToString(all[start].Name) < *in.NextToken {
			start++
		}
	}
	end := min(start+f.listPage, len(all))
	out := &sfn.ListExecutionsOutput{Executions: all[start:end]}
	if end < len(all) {
		out.NextToken = all[end].Name
	}
	return out, nil
}

// seed records an execution as if another invocation had started it.
func (f *fakeSFN) seed(name, input string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.newExecution(name, input)
}

// pass runs states to a successful exit, in order.
func (f *fakeSFN) pass(name string, states ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex := f.executions[name]
	for _, s := range states {
		ex.enter(s)
		ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionSucceeded})
		ex.exit(s)
	}
}

// catch makes state fail with errName after one retried failure, caught by the state's
// Catch as rotation.asl.json does: the state exits with the error output, Caught<state>
// records it, NotifyFailure publishes. The execution is still running; end finishes it.
func (f *fakeSFN) catch(name, state, errName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex := f.executions[name]
	ex.enter(state)
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionFailed,
		LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String(errName)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionScheduled})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionStarted})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionFailed,
		LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String(errName)}})
	ex.exit(state)
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypePassStateEntered, StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String("Caught" + state)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypePassStateExited, StateExitedEventDetails: &types.StateExitedEventDetails{Name: aws.String("Caught" + state)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeTaskStateEntered, StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String(workflow.StateNotifyFailure)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeTaskScheduled})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeTaskSucceeded})
	ex.failedIn = state
}

// end finishes a caught failure: NotifyFailure exits and RotationFailed (the rotation
// function's fail action) rethrows the error, which fails the execution.
func (f *fakeSFN) end(name, errName, cause string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex := f.executions[name]
	ex.exit(workflow.StateNotifyFailure)
	ex.enter("RotationFailed")
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionFailed,
		LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String(errName)}})
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionFailed})
	f.close(ex, types.ExecutionStatusFailed)
	ex.errName, ex.cause = errName, cause
}

// fail ends an execution in state with a caught error, as the state machine does.
func (f *fakeSFN) fail(name, state, errName, cause string) {
	f.catch(name, state, errName)
	f.end(name, errName, cause)
}

// stall leaves state entered and running (a Lambda invocation in flight).
func (f *fakeSFN) stall(name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.executions[name].enter(state)
}

// timeOut ends an execution with States.Timeout while it is in its current state.
func (f *fakeSFN) timeOut(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex := f.executions[name]
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionTimedOut})
	f.close(ex, types.ExecutionStatusTimedOut)
	ex.errName = "States.Timeout"
}

func (f *fakeSFN) succeed(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex := f.executions[name]
	ex.add(types.HistoryEvent{Type: types.HistoryEventTypeExecutionSucceeded})
	f.close(ex, types.ExecutionStatusSucceeded)
}

// setPendingRedrive marks a failed execution as being redriven (status PENDING_REDRIVE).
func (f *fakeSFN) setPendingRedrive(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.executions[name].status = types.ExecutionStatusPendingRedrive
}

func (f *fakeSFN) status(name string) types.ExecutionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ex, ok := f.executions[name]; ok {
		return ex.status
	}
	return ""
}

func (f *fakeSFN) execution(name string) (input, errName, cause string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, ok := f.executions[name]
	if !ok {
		return "", "", "", false
	}
	return ex.input, ex.errName, ex.cause, true
}

func (f *fakeSFN) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.executions)
}

func (f *fakeSFN) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// callsWith returns the recorded calls that start with prefix.
func (f *fakeSFN) callsWith(prefix string) []string {
	var out []string
	for _, c := range f.callLog() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSFN) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func lastSegment(arn string) string {
	if i := strings.LastIndexByte(arn, ':'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// validExecutionName is Step Functions' rule for execution names
// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html):
// 1 to 80 characters; no whitespace, brackets < > { } [ ], wildcards ? *, special characters
// " # % \ ^ | ~ ` $ & , ; : /, or control characters.
func validExecutionName(name string) bool {
	if name == "" || len([]rune(name)) > 80 {
		return false
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r) {
			return false
		}
	}
	return true
}
