// Package executions reads rotation executions from Step Functions: which states an
// execution has passed, how it ended, and when it promoted its version. It reads history
// without execution data, so no payload is ever fetched.
package executions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// API is the part of the Step Functions client this package reads with; *sfn.Client and
// the local interpreter (local/sfnlocal) satisfy it.
type API interface {
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	GetExecutionHistory(ctx context.Context, in *sfn.GetExecutionHistoryInput, optFns ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error)
}

// Reader reads the executions of one state machine.
type Reader struct {
	API             API
	StateMachineARN string
}

// ARN returns the ARN of the execution called name.
func (r *Reader) ARN(name string) string { return ExecutionARN(r.StateMachineARN, name) }

// ExecutionARN derives an execution's ARN from its state machine's ARN and its name.
func ExecutionARN(stateMachineARN, name string) string {
	return strings.Replace(stateMachineARN, ":stateMachine:", ":execution:", 1) + ":" + name
}

// Progress is what an execution has done so far.
type Progress struct {
	Found  bool
	Status types.ExecutionStatus
	// Exited holds, for each state that has exited, when it last did. A state whose error
	// was caught exits too: use Passed for success.
	Exited map[string]time.Time
	// Entered holds, for each state that was entered, when it first was.
	Entered map[string]time.Time
	// FailedState is the state that was running when the execution failed, if any.
	FailedState string
	Error       string
	Cause       string
}

// Passed reports whether state succeeded: the next state of the main path was entered (a
// caught failure also exits its state, so "exited" proves nothing), or, for the last one,
// the execution succeeded.
func (p Progress) Passed(state string) bool {
	for i, s := range workflow.MainPath {
		if s != state {
			continue
		}
		if i+1 == len(workflow.MainPath) {
			return p.Status == types.ExecutionStatusSucceeded
		}
		_, ok := p.Entered[workflow.MainPath[i+1]]
		return ok
	}
	return false
}

// Ended reports whether the execution is closed and not successful.
func (p Progress) Ended() bool {
	switch p.Status {
	case types.ExecutionStatusFailed, types.ExecutionStatusTimedOut, types.ExecutionStatusAborted:
		return true
	}
	return false
}

// Progress reads the execution called name.
func (r *Reader) Progress(ctx context.Context, name string) (Progress, error) {
	arn := r.ARN(name)
	desc, err := r.API.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var missing *types.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return Progress{}, nil
	}
	if err != nil {
		return Progress{}, fmt.Errorf("describe execution %s: %w", name, err)
	}
	p := Progress{Found: true, Status: desc.Status, Exited: map[string]time.Time{}, Entered: map[string]time.Time{}, Error: aws.ToString(desc.Error), Cause: aws.ToString(desc.Cause)}
	scan := historyScan{p: &p}
	var token *string
	for {
		out, err := r.API.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{
			ExecutionArn:         aws.String(arn),
			IncludeExecutionData: aws.Bool(false),
			MaxResults:           1000,
			NextToken:            token,
		})
		if err != nil {
			return Progress{}, fmt.Errorf("read history of execution %s: %w", name, err)
		}
		for _, ev := range out.Events {
			scan.event(ev)
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	if p.Ended() {
		// The state of the last failure before NotifyFailure (earlier failures may have
		// been retried away); an aborted execution stopped in the last state it entered.
		p.FailedState = scan.failed
		if p.FailedState == "" {
			p.FailedState = scan.lastTop
		}
	}
	return p, nil
}

// historyScan reads an execution's history, oldest event first, into p.
type historyScan struct {
	p        *Progress
	lastTop  string // the last top-level state entered before NotifyFailure
	failed   string // the top-level state of the last failure before NotifyFailure
	notified bool   // NotifyFailure was entered since the last redrive
}

func (h *historyScan) event(ev types.HistoryEvent) {
	if ev.Type == types.HistoryEventTypeExecutionRedriven {
		// A redrive resumes at the failed state: a new failure is a new answer.
		h.notified, h.failed = false, ""
	}
	if d := ev.StateEnteredEventDetails; d != nil {
		h.entered(aws.ToString(d.Name), aws.ToTime(ev.Timestamp))
	}
	if d := ev.StateExitedEventDetails; d != nil {
		h.p.Exited[aws.ToString(d.Name)] = aws.ToTime(ev.Timestamp)
	}
	if !h.notified && isFailure(ev.Type) {
		h.failed = h.lastTop
	}
}

func (h *historyScan) entered(name string, at time.Time) {
	// The first entry: a redriven Redeploy must not move the promotion time later.
	if _, seen := h.p.Entered[name]; !seen {
		h.p.Entered[name] = at
	}
	if !workflow.IsTopLevel(name) {
		return
	}
	if name == workflow.StateNotifyFailure {
		h.notified = true
	} else if !h.notified {
		h.lastTop = name
	}
}

// StateResumeAt is the Choice a redriven execution passes to resume at its failed state.
const StateResumeAt = "ResumeAt"

func isFailure(t types.HistoryEventType) bool {
	s := string(t)
	return strings.HasSuffix(s, "Failed") || strings.HasSuffix(s, "TimedOut")
}

// PromotedAt returns when the rotation to version (its newest execution, see Latest) left
// its Promote state.
func (r *Reader) PromotedAt(ctx context.Context, version string) (time.Time, bool, error) {
	_, p, err := r.LatestProgress(ctx, version)
	if err != nil || !p.Found {
		return time.Time{}, false, err
	}
	if !p.Passed(workflow.StatePromote) {
		return time.Time{}, false, nil
	}
	return p.Entered[workflow.StateRedeploy], true, nil
}
