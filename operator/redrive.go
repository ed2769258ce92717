package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/workflow"
)

// ExecutionRedriver reads and redrives executions.
type ExecutionRedriver interface {
	executions.API
	RedriveExecution(ctx context.Context, in *sfn.RedriveExecutionInput, optFns ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error)
}

// RedriveWindow is how long after it closed a Standard execution can be redriven
// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html).
const RedriveWindow = 14 * 24 * time.Hour

// Why a redrive was refused.
type RefusalReason string

// The reasons, each with its own message and exit status.
const (
	NoPendingVersion    RefusalReason = "no-pending-version"
	NoExecution         RefusalReason = "no-execution"
	ExecutionRunning    RefusalReason = "execution-running"
	ExecutionSucceeded  RefusalReason = "execution-succeeded"
	RedriveWindowPassed RefusalReason = "redrive-window-passed"
	NotRedrivable       RefusalReason = "not-redrivable"
)

// RedriveRefused says exactly why the pending version's execution is not redriven.
type RedriveRefused struct {
	Reason    RefusalReason
	Secret    string
	Version   string
	Execution string
	// Detail is Step Functions' own reason, or when the execution closed.
	Detail string
}

func (e *RedriveRefused) Error() string {
	switch e.Reason {
	case NoPendingVersion:
		return fmt.Sprintf("nothing to redrive: no version of %s is AWSPENDING (no rotation is in progress or failed)", e.Secret)
	case NoExecution:
		return fmt.Sprintf("nothing to redrive: version %s is AWSPENDING but no execution of it exists (the rotation function failed before starting one; Secrets Manager retries it, or see its logs)", e.Version)
	case ExecutionRunning:
		return fmt.Sprintf("not redriven: execution %s of version %s is still running (follow it with pgrotate status, or wait)", e.Execution, e.Version)
	case ExecutionSucceeded:
		return fmt.Sprintf("not redriven: execution %s of version %s succeeded; the version is still AWSPENDING, which the rotation function's finishSecret clears", e.Execution, e.Version)
	case RedriveWindowPassed:
		return fmt.Sprintf("not redriven: execution %s of version %s closed %s, more than 14 days ago, and Step Functions no longer redrives it; Secrets Manager's next attempt makes the rotation function start a successor execution, or end the rotation with: aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s",
			e.Execution, e.Version, e.Detail, e.Secret, e.Version)
	}
	return fmt.Sprintf("not redriven: Step Functions says execution %s of version %s cannot be redriven: %s", e.Execution, e.Version, e.Detail)
}

// Redriven is a started redrive.
type Redriven struct {
	Version      string    `json:"version"`
	Execution    string    `json:"execution"`
	ExecutionARN string    `json:"executionArn"`
	FailedState  string    `json:"failedState"`
	Error        string    `json:"error,omitempty"`
	RedriveDate  time.Time `json:"redriveDate"`
	// LastEvent is the last history event before the redrive: follow from there.
	LastEvent int64 `json:"-"`
}

// Redrive redrives the newest execution of the pending version (AWSPENDING's version id),
// which resumes at the state that failed, or returns a *RedriveRefused. now is the clock for
// the 14-day window.
func Redrive(ctx context.Context, api ExecutionRedriver, d *Deployment, now time.Time) (*Redriven, error) {
	v := workflow.Versions(d.Versions)
	pending := v.With(workflow.StagePending)
	refuse := func(r RefusalReason, execution, detail string) error {
		return &RedriveRefused{Reason: r, Secret: d.SecretARN, Version: pending, Execution: execution, Detail: detail}
	}
	if pending == "" || pending == v.With(workflow.StageCurrent) {
		return nil, refuse(NoPendingVersion, "", "")
	}
	r := &executions.Reader{API: api, StateMachineARN: d.StateMachine}
	a, found, err := r.Latest(ctx, pending)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(NoExecution, "", "")
	}
	desc, err := api.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(r.ARN(a.Name))})
	if err != nil {
		return nil, fmt.Errorf("describe execution %s: %w", a.Name, err)
	}
	if reason, detail := notRedrivable(desc, now); reason != "" {
		return nil, refuse(reason, a.Name, detail)
	}
	p, err := r.Progress(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	last, err := lastEvent(ctx, api, r.ARN(a.Name))
	if err != nil {
		return nil, err
	}
	out, err := api.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(r.ARN(a.Name))})
	var notRedrivable *types.ExecutionNotRedrivable
	if errors.As(err, &notRedrivable) {
		return nil, refuse(NotRedrivable, a.Name, aws.ToString(notRedrivable.Message))
	}
	if err != nil {
		return nil, fmt.Errorf("redrive execution %s: %w", a.Name, err)
	}
	return &Redriven{Version: pending, Execution: a.Name, ExecutionARN: r.ARN(a.Name), FailedState: p.FailedState,
		Error: p.Error, RedriveDate: aws.ToTime(out.RedriveDate), LastEvent: last}, nil
}

// notRedrivable says why the described execution cannot be redriven, or "" when it can
// (as far as DescribeExecution tells: RedriveExecution may still refuse).
func notRedrivable(desc *sfn.DescribeExecutionOutput, now time.Time) (RefusalReason, string) {
	switch {
	case desc.Status == types.ExecutionStatusRunning || desc.Status == types.ExecutionStatusPendingRedrive:
		return ExecutionRunning, ""
	case desc.Status == types.ExecutionStatusSucceeded:
		return ExecutionSucceeded, ""
	case desc.StopDate != nil && now.Sub(*desc.StopDate) > RedriveWindow:
		return RedriveWindowPassed, desc.StopDate.UTC().Format(time.RFC3339)
	case desc.RedriveStatus == types.ExecutionRedriveStatusNotRedrivable:
		return NotRedrivable, aws.ToString(desc.RedriveStatusReason)
	}
	return "", ""
}

// lastEvent is the id of the execution's newest history event.
func lastEvent(ctx context.Context, api executions.API, arn string) (int64, error) {
	out, err := api.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), ReverseOrder: true, MaxResults: 1, IncludeExecutionData: aws.Bool(false)})
	if err != nil {
		return 0, fmt.Errorf("read the history of %s: %w", arn, err)
	}
	if len(out.Events) == 0 {
		return 0, nil
	}
	return out.Events[0].Id, nil
}
