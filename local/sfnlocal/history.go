package sfnlocal

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// libEvent is an event of aws-local-stepfunctions' event log (docs/execution-event-logs.md
// of that package).
type libEvent struct {
	Type        string          `json:"type"`
	Timestamp   int64           `json:"timestamp"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output"`
	Error       string          `json:"Error"`
	Cause       json.RawMessage `json:"Cause"`
	Index       *int32          `json:"index"`
	State       *libState       `json:"state"`
	ParentState *struct {
		Name string `json:"name"`
	} `json:"parentState"`
}

// libState is the state an event of the log is about.
type libState struct {
	Name   string          `json:"name"`
	Type   string          `json:"type"`
	Input  json.RawMessage `json:"input"`
	Output json.RawMessage `json:"output"`
}

// openState is a top-level state entered and not exited: where a redrive resumes.
type openState struct {
	name  string
	input json.RawMessage
}

// converter turns one run's runner output into Step Functions history events on e.
type converter struct {
	m       *Machine
	e       *execution
	redrive bool
	open    *openState
	ended   bool
}

func newConverter(m *Machine, e *execution, redrive bool) *converter {
	return &converter{m: m, e: e, redrive: redrive}
}

func ms(t int64) time.Time { return time.UnixMilli(t).UTC() }

func str(raw json.RawMessage) *string {
	if len(raw) == 0 {
		return aws.String("null")
	}
	return aws.String(string(raw))
}

// causeString renders the interpreter's Cause, a string or (for its own errors) any value.
func causeString(raw json.RawMessage) *string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return aws.String(s)
	}
	return aws.String(string(raw))
}

var notTruncated = &types.HistoryEventExecutionDataDetails{Truncated: false}

// line handles one line of runner output, then passes the new events to OnEvent.
func (c *converter) line(l runnerLine) {
	c.apply(func() {
		switch l.Kind {
		case "task":
			c.task(l)
		case "event":
			var ev libEvent
			if err := json.Unmarshal(l.Event, &ev); err == nil {
				c.event(ev)
			}
		}
	})
}

// apply runs change with the machine locked, unless the run has ended (whatever a finished
// run still prints must not mix with a redrive's events), then publishes the events it added.
func (c *converter) apply(change func()) {
	c.m.mu.Lock()
	if c.ended {
		c.m.mu.Unlock()
		return
	}
	before := len(c.e.events)
	change()
	added := slices.Clone(c.e.events[before:])
	c.m.mu.Unlock()
	c.m.publish(c.e.arn, added)
}

func (c *converter) task(l runnerLine) {
	at := ms(l.Timestamp)
	if isServiceIntegration(l.Resource) {
		rtype, res := serviceResource(l.Resource)
		switch l.Phase {
		case "started":
			c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeTaskScheduled, TaskScheduledEventDetails: &types.TaskScheduledEventDetails{
				Resource: aws.String(res), ResourceType: aws.String(rtype), Region: aws.String(c.m.region()),
				Parameters: str(l.Input), TimeoutInSeconds: aws.Int64(l.TimeoutSeconds),
			}})
			c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeTaskStarted, TaskStartedEventDetails: &types.TaskStartedEventDetails{
				Resource: aws.String(res), ResourceType: aws.String(rtype),
			}})
		case "succeeded":
			c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeTaskSucceeded, TaskSucceededEventDetails: &types.TaskSucceededEventDetails{
				Resource: aws.String(res), ResourceType: aws.String(rtype), Output: str(l.Output), OutputDetails: notTruncated,
			}})
		case "failed":
			c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeTaskFailed, TaskFailedEventDetails: &types.TaskFailedEventDetails{
				Resource: aws.String(res), ResourceType: aws.String(rtype), Error: aws.String(l.Error), Cause: aws.String(l.Cause),
			}})
		}
		return
	}
	switch l.Phase {
	case "started":
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionScheduled, LambdaFunctionScheduledEventDetails: &types.LambdaFunctionScheduledEventDetails{
			Resource: aws.String(l.Resource), Input: str(l.Input), InputDetails: notTruncated, TimeoutInSeconds: aws.Int64(l.TimeoutSeconds),
		}})
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionStarted})
	case "succeeded":
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionSucceeded, LambdaFunctionSucceededEventDetails: &types.LambdaFunctionSucceededEventDetails{
			Output: str(l.Output), OutputDetails: notTruncated,
		}})
	case "failed":
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionFailed, LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{
			Error: aws.String(l.Error), Cause: aws.String(l.Cause),
		}})
	}
}

func (c *converter) event(ev libEvent) {
	at := ms(ev.Timestamp)
	e := c.e
	switch ev.Type {
	case "ExecutionStarted":
		if c.redrive {
			e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionRedriven, ExecutionRedrivenEventDetails: &types.ExecutionRedrivenEventDetails{
				RedriveCount: aws.Int32(e.redriveCount),
			}})
			return
		}
		e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionStarted, ExecutionStartedEventDetails: &types.ExecutionStartedEventDetails{
			Input: str(ev.Input), InputDetails: notTruncated,
		}})

	case "StateEntered", "StateExited", "StateFailed":
		if ev.State == nil {
			return
		}
		c.stateEvent(at, ev)

	case "MapIterationStarted", "MapIterationSucceeded", "MapIterationFailed":
		if ev.ParentState == nil || ev.Index == nil {
			return
		}
		d := &types.MapIterationEventDetails{Name: aws.String(ev.ParentState.Name), Index: *ev.Index}
		h := types.HistoryEvent{Type: types.HistoryEventType(ev.Type)}
		switch ev.Type {
		case "MapIterationStarted":
			h.MapIterationStartedEventDetails = d
		case "MapIterationSucceeded":
			h.MapIterationSucceededEventDetails = d
		default:
			h.MapIterationFailedEventDetails = d
		}
		e.add(at, h)

	case "ExecutionSucceeded":
		e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionSucceeded, ExecutionSucceededEventDetails: &types.ExecutionSucceededEventDetails{
			Output: str(ev.Output), OutputDetails: notTruncated,
		}})
		e.output = str(ev.Output)
		c.end(at, types.ExecutionStatusSucceeded, nil, nil)

	case "ExecutionFailed":
		cause := causeString(ev.Cause)
		e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionFailed, ExecutionFailedEventDetails: &types.ExecutionFailedEventDetails{
			Error: aws.String(ev.Error), Cause: cause,
		}})
		c.end(at, types.ExecutionStatusFailed, aws.String(ev.Error), cause)

	case "ExecutionAborted":
		errName, cause := e.stopError, e.stopCause
		e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionAborted, ExecutionAbortedEventDetails: &types.ExecutionAbortedEventDetails{
			Error: errName, Cause: cause,
		}})
		c.end(at, types.ExecutionStatusAborted, errName, cause)

	case "ExecutionTimeout":
		e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeExecutionTimedOut, ExecutionTimedOutEventDetails: &types.ExecutionTimedOutEventDetails{
			Error: aws.String("States.Timeout"),
		}})
		c.end(at, types.ExecutionStatusTimedOut, aws.String("States.Timeout"), nil)
	}
}

// stateEvent maps StateEntered/StateExited/StateFailed to the typed events of Step
// Functions (TaskStateEntered, MapStateExited, …). A caught error still exits its state,
// with the error output, as on AWS.
func (c *converter) stateEvent(at time.Time, ev libEvent) {
	topLevel := ev.Index == nil && c.m.def.topLevelState(ev.State.Name)
	switch ev.Type {
	case "StateEntered":
		c.stateEntered(at, ev.State, topLevel)
	case "StateExited":
		c.stateExited(at, ev.State, topLevel)
	case "StateFailed":
		c.stateFailed(at, ev)
	}
}

func (c *converter) stateEntered(at time.Time, s *libState, topLevel bool) {
	if topLevel {
		c.open = &openState{name: s.Name, input: s.Input}
	}
	if s.Type == "Map" {
		delete(c.e.mapFailed, s.Name)
	}
	c.e.add(at, types.HistoryEvent{Type: types.HistoryEventType(s.Type + "StateEntered"), StateEnteredEventDetails: &types.StateEnteredEventDetails{
		Name: aws.String(s.Name), Input: str(s.Input), InputDetails: notTruncated,
	}})
}

func (c *converter) stateExited(at time.Time, s *libState, topLevel bool) {
	if topLevel && c.open != nil && c.open.name == s.Name {
		c.open = nil
	}
	if s.Type == "Map" && !c.e.mapFailed[s.Name] {
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeMapStateSucceeded})
	}
	delete(c.e.mapFailed, s.Name)
	c.e.add(at, types.HistoryEvent{Type: types.HistoryEventType(s.Type + "StateExited"), StateExitedEventDetails: &types.StateExitedEventDetails{
		Name: aws.String(s.Name), Output: str(s.Output), OutputDetails: notTruncated,
	}})
}

func (c *converter) stateFailed(at time.Time, ev libEvent) {
	s := ev.State
	switch {
	case s.Type == "Map":
		c.e.mapFailed[s.Name] = true
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeMapStateFailed})
	case s.Type == "Task" && ev.Error == "States.Timeout":
		// The handler's own outcome never arrived; other Task failures were recorded
		// from the runner's task lines.
		c.taskTimedOut(at, ev)
	}
}

// taskTimedOut records a Task state's timeout as a service integration or a Lambda records it.
func (c *converter) taskTimedOut(at time.Time, ev libEvent) {
	cause := causeString(ev.Cause)
	resource := c.m.def.tasks[ev.State.Name].Resource
	if isServiceIntegration(resource) {
		rtype, res := serviceResource(resource)
		c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeTaskTimedOut, TaskTimedOutEventDetails: &types.TaskTimedOutEventDetails{
			Resource: aws.String(res), ResourceType: aws.String(rtype), Error: aws.String(ev.Error), Cause: cause,
		}})
		return
	}
	c.e.add(at, types.HistoryEvent{Type: types.HistoryEventTypeLambdaFunctionTimedOut, LambdaFunctionTimedOutEventDetails: &types.LambdaFunctionTimedOutEventDetails{
		Error: aws.String(ev.Error), Cause: cause,
	}})
}

// end records the run's terminal status. The caller holds m.mu.
func (c *converter) end(at time.Time, status types.ExecutionStatus, errName, cause *string) {
	if c.ended {
		return
	}
	c.ended = true
	e := c.e
	e.status = status
	e.stopDate = at
	e.closed = c.m.clock()
	e.errName, e.cause = errName, cause
	e.redriveFrom = nil
	if status != types.ExecutionStatusSucceeded && c.open != nil {
		e.redriveFrom = c.open
	}
	e.notify()
}

// finish is called when the Node process has exited. A run that ended without a
// terminal event (the process died, or could not start) is closed here.
func (c *converter) finish(runErr error) { c.apply(func() { c.close(runErr) }) }

func (c *converter) close(runErr error) {
	now := c.m.clock()
	e := c.e
	if e.stopRequested || c.m.ctx.Err() != nil {
		c.e.add(now, types.HistoryEvent{Type: types.HistoryEventTypeExecutionAborted, ExecutionAbortedEventDetails: &types.ExecutionAbortedEventDetails{
			Error: e.stopError, Cause: e.stopCause,
		}})
		c.end(now, types.ExecutionStatusAborted, e.stopError, e.stopCause)
		return
	}
	msg := "the local interpreter exited without ending the execution"
	if runErr != nil {
		msg = fmt.Sprintf("local interpreter: %v", runErr)
	}
	c.e.add(now, types.HistoryEvent{Type: types.HistoryEventTypeExecutionFailed, ExecutionFailedEventDetails: &types.ExecutionFailedEventDetails{
		Error: aws.String("States.Runtime"), Cause: aws.String(msg),
	}})
	c.end(now, types.ExecutionStatusFailed, aws.String("States.Runtime"), aws.String(msg))
}
