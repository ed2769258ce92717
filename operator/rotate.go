package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/internal/wait"
	"github.com/pgrotate/pgrotate/workflow"
)

// SecretRotator starts a rotation.
type SecretRotator interface {
	RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error)
}

// Rotate asks Secrets Manager to rotate the secret now, with its configured rotation
// function and schedule, and returns the new version's id: Secrets Manager invokes the
// rotation function, whose createSecret starts the execution named after that id
// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html).
// While a version is AWSPENDING, Secrets Manager refuses (InvalidRequestException).
func Rotate(ctx context.Context, sm SecretRotator, d *Deployment) (string, error) {
	out, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(d.SecretARN)})
	if err != nil {
		return "", fmt.Errorf("rotate secret %s: %w", d.SecretName, err)
	}
	return aws.ToString(out.VersionId), nil
}

// Step kinds.
const (
	StepEntered   = "entered"
	StepExited    = "exited"
	StepFailed    = "failed"    // a failure inside a state (it may be retried or caught)
	StepRedriven  = "redriven"  // the execution was redriven
	StepSucceeded = "succeeded" // the execution ended: SUCCEEDED
	StepEnded     = "ended"     // the execution ended otherwise (Error says how)
)

// Step is one event of a followed execution.
type Step struct {
	Kind  string    `json:"kind"`
	State string    `json:"state,omitempty"`
	At    time.Time `json:"at"`
	// TopLevel is false for the states inside Redeploy's Map.
	TopLevel bool `json:"topLevel"`
	// Took is the time in the state, on StepExited.
	Took  time.Duration `json:"took,omitempty"`
	Error string        `json:"error,omitempty"`
}

// Outcome is how a followed execution ended.
type Outcome struct {
	Version      string `json:"version"`
	Execution    string `json:"execution"`
	ExecutionARN string `json:"executionArn"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
	FailedState  string `json:"failedState,omitempty"`
}

// Succeeded reports whether the execution succeeded.
func (o Outcome) Succeeded() bool { return o.Status == string(types.ExecutionStatusSucceeded) }

// ExecutionNotStarted: no execution of the version appeared while Find waited (the rotation
// function failed before starting one; its logs say why).
type ExecutionNotStarted struct {
	Version string
	Waited  time.Duration
}

func (e *ExecutionNotStarted) Error() string {
	return fmt.Sprintf("no execution of version %s started within %s: the rotation function failed before starting one (see its CloudWatch logs, or Secrets Manager's RotationFailed event)", e.Version, e.Waited)
}

// Follower follows executions by polling (GetExecutionHistory without execution data, so
// no payload is read; https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html).
// The SDK client's standard retryer retries throttling between polls.
type Follower struct {
	API          executions.API
	StateMachine string
	// Poll is the time between two reads; default 2s.
	Poll time.Duration
	// OnStep receives each step as it is read.
	OnStep func(Step)

	entered map[string]time.Time
}

func (f *Follower) poll() time.Duration {
	if f.Poll > 0 {
		return f.Poll
	}
	return 2 * time.Second
}

// Find waits, up to timeout, for the newest execution of the rotation to version and returns
// its name.
func (f *Follower) Find(ctx context.Context, version string, timeout time.Duration) (string, error) {
	r := &executions.Reader{API: f.API, StateMachineARN: f.StateMachine}
	deadline := time.Now().Add(timeout)
	for {
		a, found, err := r.Latest(ctx, version)
		if err != nil {
			return "", err
		}
		if found {
			return a.Name, nil
		}
		if time.Now().After(deadline) {
			return "", &ExecutionNotStarted{Version: version, Waited: timeout}
		}
		if err := wait.Sleep(ctx, f.poll()); err != nil {
			return "", err
		}
	}
}

// Follow reports the steps of the execution called name after event after (0: from the
// start) until it is no longer running, and returns its outcome.
func (f *Follower) Follow(ctx context.Context, version, name string, after int64) (Outcome, error) {
	arn := executions.ExecutionARN(f.StateMachine, name)
	f.entered = map[string]time.Time{}
	for {
		var err error
		if after, err = f.read(ctx, arn, after); err != nil {
			return Outcome{}, err
		}
		desc, err := f.API.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return Outcome{}, fmt.Errorf("describe execution %s: %w", name, err)
		}
		if desc.Status != types.ExecutionStatusRunning && desc.Status != types.ExecutionStatusPendingRedrive {
			// The events written between the last read and the end.
			if _, err := f.read(ctx, arn, after); err != nil {
				return Outcome{}, err
			}
			return f.outcome(ctx, version, name, desc)
		}
		if err := wait.Sleep(ctx, f.poll()); err != nil {
			return Outcome{}, err
		}
	}
}

func (f *Follower) outcome(ctx context.Context, version, name string, desc *sfn.DescribeExecutionOutput) (Outcome, error) {
	o := Outcome{Version: version, Execution: name, ExecutionARN: aws.ToString(desc.ExecutionArn), Status: string(desc.Status), Error: aws.ToString(desc.Error)}
	if !o.Succeeded() {
		p, err := (&executions.Reader{API: f.API, StateMachineARN: f.StateMachine}).Progress(ctx, name)
		if err != nil {
			return o, err
		}
		o.FailedState = p.FailedState
	}
	return o, nil
}

// read reports the events after event after and returns the last event id read.
func (f *Follower) read(ctx context.Context, arn string, after int64) (int64, error) {
	in := &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), IncludeExecutionData: aws.Bool(false), MaxResults: 1000}
	for {
		out, err := f.API.GetExecutionHistory(ctx, in)
		if err != nil {
			return after, fmt.Errorf("read the history of %s: %w", arn, err)
		}
		for _, ev := range out.Events {
			if ev.Id > after {
				f.event(ev)
				after = ev.Id
			}
		}
		if out.NextToken == nil {
			return after, nil
		}
		in.NextToken = out.NextToken
	}
}

// event turns a history event into a step.
func (f *Follower) event(ev types.HistoryEvent) {
	at := aws.ToTime(ev.Timestamp)
	s := Step{At: at}
	switch {
	case ev.StateEnteredEventDetails != nil:
		s.Kind, s.State = StepEntered, aws.ToString(ev.StateEnteredEventDetails.Name)
		f.entered[s.State] = at
	case ev.StateExitedEventDetails != nil:
		s.Kind, s.State = StepExited, aws.ToString(ev.StateExitedEventDetails.Name)
		if in, ok := f.entered[s.State]; ok {
			s.Took = at.Sub(in)
		}
	case ev.Type == types.HistoryEventTypeExecutionRedriven:
		s.Kind = StepRedriven
	case ev.Type == types.HistoryEventTypeExecutionSucceeded:
		s.Kind = StepSucceeded
	case ev.ExecutionFailedEventDetails != nil:
		s.Kind, s.Error = StepEnded, aws.ToString(ev.ExecutionFailedEventDetails.Error)
	case ev.Type == types.HistoryEventTypeExecutionAborted, ev.Type == types.HistoryEventTypeExecutionTimedOut:
		s.Kind, s.Error = StepEnded, string(ev.Type)
	case ev.LambdaFunctionFailedEventDetails != nil:
		s.Kind, s.Error = StepFailed, aws.ToString(ev.LambdaFunctionFailedEventDetails.Error)
	case ev.TaskFailedEventDetails != nil:
		s.Kind, s.Error = StepFailed, aws.ToString(ev.TaskFailedEventDetails.Error)
	default:
		return
	}
	s.TopLevel = s.State == "" || workflow.IsTopLevel(s.State)
	if f.OnStep != nil {
		f.OnStep(s)
	}
}
