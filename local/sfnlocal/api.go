package sfnlocal

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

// execution is one execution and every run of it (the first and each redrive). Fields are
// guarded by Machine.mu.
type execution struct {
	arn, name, input string
	status           types.ExecutionStatus
	startDate        time.Time
	stopDate         time.Time
	closed           time.Time // by the Machine's clock, for the redrive and retention windows
	output           *string
	errName, cause   *string
	redriveCount     int32
	redriveDate      time.Time
	redriveFrom      *openState // set when a run ends unsuccessfully in a known state
	events           []types.HistoryEvent
	mapFailed        map[string]bool

	stopRun              func() // asks the current run to abort
	stopRequested        bool
	stopError, stopCause *string
	changed              chan struct{} // closed and replaced on every status change
}

func (e *execution) add(at time.Time, h types.HistoryEvent) {
	h.Id = int64(len(e.events) + 1)
	h.PreviousEventId = h.Id - 1
	h.Timestamp = aws.Time(at)
	e.events = append(e.events, h)
}

func (e *execution) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// apiError wraps a modelled Step Functions error as the SDK client returns it, so that
// errors.As(err, &*types.X) and smithy.APIError work on it alike.
func apiError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "SFN", OperationName: op, Err: err}
}

// Step Functions' windows, both from when an execution closed: a failed, aborted or timed
// out Standard execution can be redriven for 14 days
// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html);
// its history is removed after 90 days, and only then can its name be used again
// (https://docs.aws.amazon.com/step-functions/latest/dg/express-at-least-once-execution.html,
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
const (
	RedriveWindow = 14 * 24 * time.Hour
	Retention     = 90 * 24 * time.Hour
)

// clock is the Machine's time (Options.Now).
func (m *Machine) clock() time.Time {
	if m.now != nil {
		return m.now().UTC()
	}
	return time.Now().UTC()
}

// removed reports whether e's history is gone: it closed more than Retention ago. The
// caller holds m.mu.
func (m *Machine) removed(e *execution) bool {
	return terminal(e.status) && m.clock().Sub(e.closed) > Retention
}

func (m *Machine) lookup(op string, arn *string) (*execution, error) {
	e, ok := m.execs[aws.ToString(arn)]
	if !ok || m.removed(e) {
		return nil, apiError(op, &types.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: '" + aws.ToString(arn) + "'")})
	}
	return e, nil
}

// validName applies Step Functions' rules for execution names.
func validName(name string) bool {
	if name == "" || len(name) > 80 {
		return false
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		switch r {
		case '<', '>', '{', '}', '[', ']', '?', '*', '"', '#', '%', '\\', '^', '|', '~', '`', '$', '&', ',', ';', ':', '/':
			return false
		}
	}
	return true
}

// StartExecution starts an execution. A name still RUNNING with the same input returns
// that execution (Step Functions' idempotent start); any other reuse of a name fails with
// *types.ExecutionAlreadyExists.
func (m *Machine) StartExecution(ctx context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	const op = "StartExecution"
	if aws.ToString(in.StateMachineArn) != m.arn {
		return nil, apiError(op, &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: '" + aws.ToString(in.StateMachineArn) + "'")})
	}
	input := aws.ToString(in.Input)
	if in.Input == nil {
		input = "{}"
	}
	if !json.Valid([]byte(input)) {
		return nil, apiError(op, &types.InvalidExecutionInput{Message: aws.String("Invalid execution input: not JSON")})
	}
	name := aws.ToString(in.Name)
	if in.Name == nil {
		name = newName()
	}
	if !validName(name) {
		return nil, apiError(op, &types.InvalidName{Message: aws.String("Invalid Name: '" + name + "'")})
	}
	arn := m.executionArn(name)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("sfnlocal: StartExecution: machine closed")
	}
	if e, ok := m.execs[arn]; ok && m.removed(e) {
		// The name is free again: the old execution is gone.
		delete(m.execs, arn)
		m.order = slices.DeleteFunc(m.order, func(o *execution) bool { return o == e })
	}
	if e, ok := m.execs[arn]; ok {
		if e.status == types.ExecutionStatusRunning && e.input == input {
			return &sfn.StartExecutionOutput{ExecutionArn: aws.String(arn), StartDate: aws.Time(e.startDate)}, nil
		}
		return nil, apiError(op, &types.ExecutionAlreadyExists{Message: aws.String("Execution Already Exists: '" + arn + "'")})
	}
	e := &execution{
		arn: arn, name: name, input: input,
		status:    types.ExecutionStatusRunning,
		startDate: m.clock(),
		mapFailed: map[string]bool{},
		changed:   make(chan struct{}),
	}
	m.execs[arn] = e
	m.order = append(m.order, e)
	m.start(e, "", json.RawMessage(input), false)
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(arn), StartDate: aws.Time(e.startDate)}, nil
}

func newName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// DescribeExecution reports an execution's status, input, output, error and redrive state.
func (m *Machine) DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.lookup("DescribeExecution", in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	out := &sfn.DescribeExecutionOutput{
		ExecutionArn:    aws.String(e.arn),
		StateMachineArn: aws.String(m.arn),
		Name:            aws.String(e.name),
		Status:          e.status,
		StartDate:       aws.Time(e.startDate),
		Error:           e.errName,
		Cause:           e.cause,
		RedriveCount:    aws.Int32(e.redriveCount),
	}
	if in.IncludedData != types.IncludedDataMetadataOnly {
		out.Input = aws.String(e.input)
		out.InputDetails = &types.CloudWatchEventsExecutionDataDetails{Included: true}
		if e.status == types.ExecutionStatusSucceeded {
			out.Output = e.output
			out.OutputDetails = &types.CloudWatchEventsExecutionDataDetails{Included: true}
		}
	}
	if terminal(e.status) {
		out.StopDate = aws.Time(e.stopDate)
	}
	if !e.redriveDate.IsZero() {
		out.RedriveDate = aws.Time(e.redriveDate)
	}
	out.RedriveStatus, out.RedriveStatusReason = m.redriveStatus(e)
	return out, nil
}

// redriveStatus tells whether e can be redriven, and why not. The caller holds m.mu.
func (m *Machine) redriveStatus(e *execution) (types.ExecutionRedriveStatus, *string) {
	switch {
	case e.status == types.ExecutionStatusRunning:
		return types.ExecutionRedriveStatusNotRedrivable, aws.String("Execution is RUNNING and cannot be redriven")
	case e.status == types.ExecutionStatusSucceeded:
		return types.ExecutionRedriveStatusNotRedrivable, aws.String("Execution is SUCCEEDED and cannot be redriven")
	case e.redriveFrom == nil:
		return types.ExecutionRedriveStatusNotRedrivable, aws.String("Execution ended before entering a state")
	case m.clock().Sub(e.closed) > RedriveWindow:
		return types.ExecutionRedriveStatusNotRedrivable, aws.String("Execution closed more than 14 days ago and can no longer be redriven")
	}
	return types.ExecutionRedriveStatusRedrivable, nil
}

// GetExecutionHistory returns the execution's events. IncludeExecutionData false (the
// default is true) leaves out every input and output; errors and causes stay.
func (m *Machine) GetExecutionHistory(ctx context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	const op = "GetExecutionHistory"
	m.mu.Lock()
	e, err := m.lookup(op, in.ExecutionArn)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	events := slices.Clone(e.events)
	m.mu.Unlock()

	if in.ReverseOrder {
		slices.Reverse(events)
	}
	start, end, next, err := page(op, in.NextToken, in.MaxResults, len(events))
	if err != nil {
		return nil, err
	}
	out := &sfn.GetExecutionHistoryOutput{NextToken: next}
	for _, h := range events[start:end] {
		if in.IncludeExecutionData != nil && !*in.IncludeExecutionData {
			h = withoutData(h)
		}
		out.Events = append(out.Events, h)
	}
	return out, nil
}

// withoutData returns a copy of h without inputs and outputs, as Step Functions returns
// events when includeExecutionData is false.
func withoutData(h types.HistoryEvent) types.HistoryEvent {
	h.ExecutionStartedEventDetails = cleared(h.ExecutionStartedEventDetails, func(c *types.ExecutionStartedEventDetails) { c.Input, c.InputDetails = nil, nil })
	h.ExecutionSucceededEventDetails = cleared(h.ExecutionSucceededEventDetails, func(c *types.ExecutionSucceededEventDetails) { c.Output, c.OutputDetails = nil, nil })
	h.StateEnteredEventDetails = cleared(h.StateEnteredEventDetails, func(c *types.StateEnteredEventDetails) { c.Input, c.InputDetails = nil, nil })
	h.StateExitedEventDetails = cleared(h.StateExitedEventDetails, func(c *types.StateExitedEventDetails) { c.Output, c.OutputDetails = nil, nil })
	h.LambdaFunctionScheduledEventDetails = cleared(h.LambdaFunctionScheduledEventDetails, func(c *types.LambdaFunctionScheduledEventDetails) { c.Input, c.InputDetails = nil, nil })
	h.LambdaFunctionSucceededEventDetails = cleared(h.LambdaFunctionSucceededEventDetails, func(c *types.LambdaFunctionSucceededEventDetails) { c.Output, c.OutputDetails = nil, nil })
	h.TaskScheduledEventDetails = cleared(h.TaskScheduledEventDetails, func(c *types.TaskScheduledEventDetails) { c.Parameters = nil })
	h.TaskSucceededEventDetails = cleared(h.TaskSucceededEventDetails, func(c *types.TaskSucceededEventDetails) { c.Output, c.OutputDetails = nil, nil })
	return h
}

// cleared returns a copy of *d with clear applied (nil for nil), so that the event shares
// nothing with the stored history.
func cleared[T any](d *T, clear func(*T)) *T {
	if d == nil {
		return nil
	}
	c := *d
	clear(&c)
	return &c
}

// StopExecution aborts a running execution and returns once it is ABORTED. Stopping an
// execution that has ended changes nothing.
func (m *Machine) StopExecution(ctx context.Context, in *sfn.StopExecutionInput, _ ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error) {
	m.mu.Lock()
	e, err := m.lookup("StopExecution", in.ExecutionArn)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if e.status == types.ExecutionStatusRunning {
		e.stopRequested = true
		e.stopError, e.stopCause = in.Error, in.Cause
		e.stopRun()
	}
	m.mu.Unlock()

	if _, err := m.Wait(ctx, e.arn); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return &sfn.StopExecutionOutput{StopDate: aws.Time(e.stopDate)}, nil
}

// RedriveExecution resumes a FAILED, ABORTED or TIMED_OUT execution from the top-level
// state it ended in, with the input that state received: states that succeeded are not
// run again, the failed one is (a Map state as a whole). Events append to the same history.
func (m *Machine) RedriveExecution(ctx context.Context, in *sfn.RedriveExecutionInput, _ ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error) {
	const op = "RedriveExecution"
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.lookup(op, in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	if m.closed {
		return nil, fmt.Errorf("sfnlocal: RedriveExecution: machine closed")
	}
	if status, reason := m.redriveStatus(e); status != types.ExecutionRedriveStatusRedrivable {
		return nil, apiError(op, &types.ExecutionNotRedrivable{Message: reason})
	}
	from := e.redriveFrom
	e.redriveCount++
	e.redriveDate = m.clock()
	e.status = types.ExecutionStatusRunning
	e.errName, e.cause, e.output = nil, nil, nil
	e.stopRequested, e.stopError, e.stopCause = false, nil, nil
	e.redriveFrom = nil
	e.notify()
	m.start(e, from.name, from.input, true)
	return &sfn.RedriveExecutionOutput{RedriveDate: aws.Time(e.redriveDate)}, nil
}

// ListExecutions lists this machine's executions, newest first, optionally by status.
func (m *Machine) ListExecutions(ctx context.Context, in *sfn.ListExecutionsInput, _ ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error) {
	const op = "ListExecutions"
	if aws.ToString(in.StateMachineArn) != m.arn {
		return nil, apiError(op, &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: '" + aws.ToString(in.StateMachineArn) + "'")})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var items []types.ExecutionListItem
	for _, e := range slices.Backward(m.order) {
		if m.listed(e, in.StatusFilter, in.RedriveFilter) {
			items = append(items, m.listItem(e))
		}
	}
	start, end, next, err := page(op, in.NextToken, in.MaxResults, len(items))
	if err != nil {
		return nil, err
	}
	return &sfn.ListExecutionsOutput{Executions: items[start:end], NextToken: next}, nil
}

// page is the window [start, end) of n items that a NextToken (an index) and MaxResults (100
// when 0, at most 1000) select, and the token of the next page (nil after the last).
func page(op string, token *string, maxResults int32, n int) (start, end int, next *string, err error) {
	if token != nil {
		i, err := strconv.Atoi(*token)
		if err != nil || i < 0 || i > n {
			return 0, 0, nil, apiError(op, &types.InvalidToken{Message: aws.String("Invalid Token")})
		}
		start = i
	}
	limit := int(maxResults)
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	end = min(start+limit, n)
	if end < n {
		next = aws.String(strconv.Itoa(end))
	}
	return start, end, next, nil
}

// listed reports whether ListExecutions lists e with these filters ("" matches every
// execution). The caller holds m.mu.
func (m *Machine) listed(e *execution, status types.ExecutionStatus, redrive types.ExecutionRedriveFilter) bool {
	if m.removed(e) || (status != "" && e.status != status) {
		return false
	}
	switch redrive {
	case types.ExecutionRedriveFilterRedriven:
		return e.redriveCount > 0
	case types.ExecutionRedriveFilterNotRedriven:
		return e.redriveCount == 0
	}
	return true
}

// listItem is e as ListExecutions lists it. The caller holds m.mu.
func (m *Machine) listItem(e *execution) types.ExecutionListItem {
	item := types.ExecutionListItem{
		ExecutionArn: aws.String(e.arn), StateMachineArn: aws.String(m.arn), Name: aws.String(e.name),
		Status: e.status, StartDate: aws.Time(e.startDate), RedriveCount: aws.Int32(e.redriveCount),
	}
	if terminal(e.status) {
		item.StopDate = aws.Time(e.stopDate)
	}
	if !e.redriveDate.IsZero() {
		item.RedriveDate = aws.Time(e.redriveDate)
	}
	return item
}

// DescribeStateMachine describes this machine: a STANDARD state machine, ACTIVE, with its
// definition. Any other ARN is StateMachineDoesNotExist.
func (m *Machine) DescribeStateMachine(ctx context.Context, in *sfn.DescribeStateMachineInput, _ ...func(*sfn.Options)) (*sfn.DescribeStateMachineOutput, error) {
	if aws.ToString(in.StateMachineArn) != m.arn {
		return nil, apiError("DescribeStateMachine", &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: '" + aws.ToString(in.StateMachineArn) + "'")})
	}
	def, err := json.Marshal(m.def.raw)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: DescribeStateMachine: %w", err)
	}
	parts := strings.Split(m.arn, ":") // arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME
	return &sfn.DescribeStateMachineOutput{
		StateMachineArn: aws.String(m.arn),
		Name:            aws.String(parts[6]),
		Status:          types.StateMachineStatusActive,
		Type:            types.StateMachineTypeStandard,
		Definition:      aws.String(string(def)),
		RoleArn:         aws.String("arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + parts[6] + "-local"),
		CreationDate:    aws.Time(m.created),
	}, nil
}

// Wait blocks until the execution is no longer RUNNING and returns its status.
func (m *Machine) Wait(ctx context.Context, executionArn string) (types.ExecutionStatus, error) {
	for {
		m.mu.Lock()
		e, err := m.lookup("Wait", aws.String(executionArn))
		if err != nil {
			m.mu.Unlock()
			return "", err
		}
		status, changed := e.status, e.changed
		m.mu.Unlock()
		if terminal(status) {
			return status, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status, fmt.Errorf("wait for %s: %w", executionArn, ctx.Err())
		}
	}
}

// Events returns every history event of the execution so far, inputs and outputs
// included: for tests that scan the whole history (for secrets, say).
func (m *Machine) Events(executionArn string) ([]types.HistoryEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.lookup("Events", aws.String(executionArn))
	if err != nil {
		return nil, err
	}
	return slices.Clone(e.events), nil
}

func (m *Machine) region() string {
	return strings.Split(m.arn, ":")[3] // arn:PARTITION:states:REGION:…
}
