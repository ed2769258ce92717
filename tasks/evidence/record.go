// Package evidence writes the audit evidence of every rotation: one JSON record
// (schema pgrotate.evidence/v1) per execution run of the rotation state machine, and one per
// Secrets Manager rotation failure, to an S3 bucket with Object Lock, so the evidence outlives
// Step Functions' 90-day history and cannot be altered.
//
// The handler runs on EventBridge events: "Step Functions Execution Status Change" (a run
// ended) and the CloudTrail-delivered "AWS Service Event via CloudTrail" RotationFailed and
// RotationAbandoned of Secrets Manager (a failure that may come before any execution exists).
// It reads the execution's history, keeps references only (secret ARN, version ids, user
// names, endpoints, LSN, service names, deployment ids, error names), and writes the record
// with If-None-Match: *, so a repeated event writes nothing new.
package evidence

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// Schema names the record format; README.md ("Evidence") documents it field by field.
const Schema = "pgrotate.evidence/v1"

// Record kinds.
const (
	KindExecution       = "execution"
	KindRotationFailure = "secretsmanager-rotation-failure"
)

// StateRetirePrevious is the optional state that retires the previous user after Redeploy.
// Its outcome is the record's retirement.
const StateRetirePrevious = "RetirePrevious"

// Record is one piece of evidence. Every field is a reference or a fact about the run,
// never a secret value.
type Record struct {
	Schema          string `json:"schema"`
	Kind            string `json:"kind"`
	PgrotateVersion string `json:"pgrotateVersion"`

	SecretARN string `json:"secretArn"`
	// SecretVersion is the version the rotation promotes (the pending version id).
	SecretVersion string `json:"secretVersion,omitempty"`
	// FromVersion is the version that was AWSCURRENT when the rotation started.
	FromVersion string `json:"fromVersion,omitempty"`
	FromUser    string `json:"fromUser,omitempty"`
	ToUser      string `json:"toUser,omitempty"`

	ExecutionARN  string `json:"executionArn,omitempty"`
	ExecutionName string `json:"executionName,omitempty"`
	// Run is the execution's redrive count at the end this record describes: 0 for the
	// first run, n after the n-th redrive. Each run's end has its own record.
	Run int32 `json:"run"`

	StartedBy StartedBy  `json:"startedBy"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`

	States      []State      `json:"states,omitempty"`
	Replicas    []Replica    `json:"replicas,omitempty"`
	Deployments []Deployment `json:"deployments,omitempty"`
	Retirement  *State       `json:"retirement,omitempty"`
	Outcome     Outcome      `json:"outcome"`

	// Event is the EventBridge event the record was written on.
	Event EventRef `json:"event"`
}

// StartedBy says how the run was started, as far as the events say.
type StartedBy struct {
	// Via is "secretsmanager-rotation" for an execution (the rotation function starts
	// every execution, on a Secrets Manager rotation: the schedule or a RotateSecret call)
	// and "secretsmanager" for a rotation failure event.
	Via string `json:"via"`
	// Principal is the IAM principal the event names, when it names one (CloudTrail's
	// userIdentity.arn); for a scheduled rotation it is empty and InvokedBy is
	// secretsmanager.amazonaws.com.
	Principal string `json:"principal,omitempty"`
	InvokedBy string `json:"invokedBy,omitempty"`
	// ClientRequestToken joins an execution to CloudTrail's RotateSecret entry: the
	// execution is named after the rotation's ClientRequestToken (the version id).
	ClientRequestToken string `json:"clientRequestToken,omitempty"`
}

// State is one entry into a top-level state of the rotation state machine.
type State struct {
	Name    string     `json:"name"`
	Type    string     `json:"type"`
	Entered time.Time  `json:"entered"`
	Exited  *time.Time `json:"exited,omitempty"`
	// Result is succeeded, caught (failed, handled by a Catch), failed, aborted,
	// timed-out, or running (the run ended elsewhere while this state was open).
	Result string `json:"result"`
	// Error is the error name of the last failure in the state, if any.
	Error string `json:"error,omitempty"`
	// Retries counts failures in the state that a Retry recovered from.
	Retries int `json:"retries,omitempty"`
}

// State results.
const (
	ResultSucceeded = "succeeded"
	ResultCaught    = "caught"
	ResultFailed    = "failed"
	ResultAborted   = "aborted"
	ResultTimedOut  = "timed-out"
	ResultRunning   = "running"
)

// Replica is a replica that replayed the password change and accepted the new login.
type Replica struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// LSN is the primary's WAL position after the change; the replica had replayed it.
	LSN string `json:"lsn"`
}

// Deployment is one service's forced deployment after the promotion.
type Deployment struct {
	Cluster      string `json:"cluster"`
	Service      string `json:"service"`
	DeploymentID string `json:"deploymentId,omitempty"`
	RolloutState string `json:"rolloutState,omitempty"`
	Checks       int    `json:"checks,omitempty"`
	// DesiredCount and RunningCount are the deployment's task counts at its last check.
	DesiredCount int `json:"desiredCount,omitempty"`
	RunningCount int `json:"runningCount,omitempty"`
}

// Outcome is how the run (or the Secrets Manager rotation) ended.
type Outcome struct {
	// Status is SUCCEEDED, FAILED, TIMED_OUT or ABORTED for an execution; RotationFailed
	// or RotationAbandoned for a Secrets Manager event.
	Status      string     `json:"status"`
	Error       string     `json:"error,omitempty"`
	Cause       string     `json:"cause,omitempty"`
	FailedState string     `json:"failedState,omitempty"`
	PromotedAt  *time.Time `json:"promotedAt,omitempty"`
}

// EventRef identifies the EventBridge event.
type EventRef struct {
	ID         string    `json:"id"`
	DetailType string    `json:"detailType"`
	Time       time.Time `json:"time"`
}

// build turns one run's history into the record's states, users, replicas and deployments.
// events must end at the run's end (see runEvents). Inputs and outputs are decoded into
// workflow.State, which holds references only; nothing else of them is kept.
func build(rec *Record, events []types.HistoryEvent) {
	b := builder{rec: rec, open: -1}
	for _, ev := range events {
		b.event(ev)
	}
	retirement(rec)
	failedState(rec)
}

// builder walks a history in order, keeping the top-level state that is open.
type builder struct {
	rec     *Record
	open    int    // index in rec.States of the open top-level entry, -1 for none
	depth   int    // Map iteration nesting
	pending string // error name of a failure not yet recovered from
	lastErr string // the last failure's name in the open state
}

// event applies one history event.
func (b *builder) event(ev types.HistoryEvent) {
	at := aws.ToTime(ev.Timestamp).UTC()
	switch {
	case ev.Type == types.HistoryEventTypeExecutionStarted:
		b.executionStarted(ev, at)
	case ev.Type == types.HistoryEventTypeMapIterationStarted:
		b.depth++
	case ev.Type == types.HistoryEventTypeMapIterationSucceeded, ev.Type == types.HistoryEventTypeMapIterationFailed,
		ev.Type == types.HistoryEventTypeMapIterationAborted:
		b.depth--
	case ev.StateEnteredEventDetails != nil && b.depth == 0:
		b.stateEntered(ev, at)
	case ev.StateExitedEventDetails != nil && b.depth == 0:
		b.stateExited(ev, at)
	case isFailure(ev.Type):
		b.failed(ev)
	case isSuccess(ev.Type) && b.depth == 0:
		b.succeeded()
	default:
		b.executionEnded(ev.Type)
	}
}

func (b *builder) executionStarted(ev types.HistoryEvent, at time.Time) {
	if st, ok := decode(ev.ExecutionStartedEventDetails.Input); ok {
		b.rec.SecretARN = st.SecretARN
		b.rec.SecretVersion = st.Token
	}
	b.rec.StartedAt = &at
}

func (b *builder) stateEntered(ev types.HistoryEvent, at time.Time) {
	b.closeOpen(ResultSucceeded, &at) // defensive: an exit was missed
	b.rec.States = append(b.rec.States, State{
		Name: aws.ToString(ev.StateEnteredEventDetails.Name), Type: stateType(ev.Type, "StateEntered"),
		Entered: at, Result: ResultRunning,
	})
	b.open = len(b.rec.States) - 1
	if st, ok := decode(ev.StateEnteredEventDetails.Input); ok {
		users(b.rec, st)
	}
}

func (b *builder) stateExited(ev types.HistoryEvent, at time.Time) {
	if b.open >= 0 && b.rec.States[b.open].Name == aws.ToString(ev.StateExitedEventDetails.Name) {
		result := ResultSucceeded
		if b.pending != "" {
			result = ResultCaught
		}
		b.closeOpen(result, &at)
	}
	if st, ok := decode(ev.StateExitedEventDetails.Output); ok {
		users(b.rec, st)
		outputs(b.rec, aws.ToString(ev.StateExitedEventDetails.Name), st)
	}
}

func (b *builder) failed(ev types.HistoryEvent) {
	name := failureName(ev)
	if name == "" {
		name = b.lastErr // MapStateFailed: the iteration's failure named it
	}
	if name == "" {
		name = string(ev.Type)
	}
	b.pending, b.lastErr = name, name
}

// succeeded is a task or state success: a failure before it in the open state was retried.
func (b *builder) succeeded() {
	if b.pending != "" && b.open >= 0 {
		b.rec.States[b.open].Retries++
	}
	b.pending = ""
}

// executionEnded closes the open state with how the execution ended; other events are ignored.
func (b *builder) executionEnded(t types.HistoryEventType) {
	switch t {
	case types.HistoryEventTypeExecutionFailed:
		b.closeOpen(ResultFailed, nil)
	case types.HistoryEventTypeExecutionAborted:
		b.closeOpen(ResultAborted, nil)
	case types.HistoryEventTypeExecutionTimedOut:
		b.closeOpen(ResultTimedOut, nil)
	}
}

func (b *builder) closeOpen(result string, at *time.Time) {
	if b.open < 0 {
		return
	}
	s := &b.rec.States[b.open]
	s.Result, s.Exited = result, at
	if result != ResultSucceeded {
		s.Error = b.lastErr
	}
	b.open, b.pending, b.lastErr = -1, "", ""
}

// retirement copies the RetirePrevious state into rec.Retirement.
func retirement(rec *Record) {
	for i := range rec.States {
		if rec.States[i].Name == StateRetirePrevious {
			r := rec.States[i]
			rec.Retirement = &r
		}
	}
}

// failedState names the last main-path state that did not succeed, when the run did not.
func failedState(rec *Record) {
	if rec.Outcome.Status == string(types.ExecutionStatusSucceeded) {
		return
	}
	for i := len(rec.States) - 1; i >= 0; i-- {
		s := rec.States[i]
		if workflow.IsTopLevel(s.Name) && s.Name != workflow.StateNotifyFailure && s.Result != ResultSucceeded {
			rec.Outcome.FailedState = s.Name
			return
		}
	}
}

// users takes the rotation's users and versions from a state's input or output.
func users(rec *Record, st workflow.State) {
	if st.ActiveUser != "" {
		rec.FromUser, rec.ToUser, rec.FromVersion = st.ActiveUser, st.PendingUser, st.ActiveVersion
	}
}

// outputs takes what a state established from its output: the replicas CheckReplicas
// verified at the LSN, the promotion time, the deployments.
func outputs(rec *Record, state string, st workflow.State) {
	switch state {
	case workflow.StateCheckReplicas:
		rec.Replicas = rec.Replicas[:0]
		for _, r := range st.Replicas {
			rec.Replicas = append(rec.Replicas, Replica{Host: r.Host, Port: r.Port, LSN: st.LSN})
		}
	case workflow.StatePromote:
		if st.Promotion != nil {
			at := st.Promotion.PromotedAt.UTC()
			rec.Outcome.PromotedAt = &at
		}
	case workflow.StateRedeploy:
		rec.Deployments = rec.Deployments[:0]
		for _, r := range st.Rollouts {
			rec.Deployments = append(rec.Deployments, Deployment{
				Cluster: r.Service.Cluster, Service: r.Service.Service, DeploymentID: r.DeploymentID,
				RolloutState: r.RolloutState, Checks: r.Checks, DesiredCount: r.DesiredCount, RunningCount: r.RunningCount,
			})
		}
	}
}

// decode reads a state's input or output as a workflow.State, the references-only shape
// every step passes on. Anything else (a Map item, a failure Pass) is not a State.
func decode(raw *string) (workflow.State, bool) {
	var st workflow.State
	if raw == nil || json.Unmarshal([]byte(*raw), &st) != nil || st.SecretARN == "" {
		return workflow.State{}, false
	}
	return st, true
}

func stateType(t types.HistoryEventType, suffix string) string {
	return strings.TrimSuffix(string(t), suffix)
}

// isFailure reports the events of a failed attempt inside a state (a Retry may recover).
func isFailure(t types.HistoryEventType) bool {
	switch t {
	case types.HistoryEventTypeLambdaFunctionFailed, types.HistoryEventTypeLambdaFunctionTimedOut,
		types.HistoryEventTypeLambdaFunctionStartFailed, types.HistoryEventTypeLambdaFunctionScheduleFailed,
		types.HistoryEventTypeTaskFailed, types.HistoryEventTypeTaskTimedOut, types.HistoryEventTypeTaskStartFailed,
		types.HistoryEventTypeTaskSubmitFailed, types.HistoryEventTypeMapStateFailed:
		return true
	}
	return false
}

// isSuccess reports the end of a successful attempt of a top-level state.
func isSuccess(t types.HistoryEventType) bool {
	switch t {
	case types.HistoryEventTypeLambdaFunctionSucceeded, types.HistoryEventTypeTaskSucceeded, types.HistoryEventTypeMapStateSucceeded:
		return true
	}
	return false
}

// failureName is the error name of a failure event; MapStateFailed carries none (the
// iteration's failure before it named it).
func failureName(ev types.HistoryEvent) string {
	switch {
	case ev.LambdaFunctionFailedEventDetails != nil:
		return aws.ToString(ev.LambdaFunctionFailedEventDetails.Error)
	case ev.LambdaFunctionTimedOutEventDetails != nil:
		return aws.ToString(ev.LambdaFunctionTimedOutEventDetails.Error)
	case ev.LambdaFunctionStartFailedEventDetails != nil:
		return aws.ToString(ev.LambdaFunctionStartFailedEventDetails.Error)
	case ev.LambdaFunctionScheduleFailedEventDetails != nil:
		return aws.ToString(ev.LambdaFunctionScheduleFailedEventDetails.Error)
	case ev.TaskFailedEventDetails != nil:
		return aws.ToString(ev.TaskFailedEventDetails.Error)
	case ev.TaskTimedOutEventDetails != nil:
		return aws.ToString(ev.TaskTimedOutEventDetails.Error)
	case ev.TaskStartFailedEventDetails != nil:
		return aws.ToString(ev.TaskStartFailedEventDetails.Error)
	case ev.TaskSubmitFailedEventDetails != nil:
		return aws.ToString(ev.TaskSubmitFailedEventDetails.Error)
	}
	return ""
}

// runEvents returns the events of history up to the end of run (its redrive count): a
// later redrive's events do not belong to this run's record. ended reports whether the
// run's terminal event is there.
func runEvents(history []types.HistoryEvent, run int32) (events []types.HistoryEvent, ended bool) {
	redrives := int32(0)
	for i, ev := range history {
		if ev.Type == types.HistoryEventTypeExecutionRedriven {
			redrives++
			if redrives > run {
				return history[:i], ended
			}
			ended = false
		}
		switch ev.Type {
		case types.HistoryEventTypeExecutionSucceeded, types.HistoryEventTypeExecutionFailed,
			types.HistoryEventTypeExecutionAborted, types.HistoryEventTypeExecutionTimedOut:
			if redrives == run {
				ended = true
			}
		}
	}
	return history, ended
}
