package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda/messages"
)

// ActionFail is the "action" RotationFailed sends (the input says what it asks for).
const ActionFail = "fail"

// CaughtFailure is RotationFailed's input: the caught error, the state that failed, the
// redrive count at the failure and now.
type CaughtFailure struct {
	Action          string `json:"action,omitempty"`
	Error           string `json:"error,omitempty"`
	Cause           string `json:"cause,omitempty"`
	FailedState     string `json:"failedState,omitempty"`
	FailedInRedrive int    `json:"failedInRedrive,omitempty"`
	RedriveCount    int    `json:"redriveCount,omitempty"`
}

// Rethrow is the RotationFailed step, the state machine's last state after a caught failure.
// It runs in a function of its own whose role only writes its logs: rethrowing needs none of
// the rotation function's rights on the app secret.
type Rethrow struct {
	Log *slog.Logger
}

// Handle rethrows the caught error under its original name and message, so the execution
// fails as if the failed state had not been caught (the SNS notification has gone out by
// then). In a redriven execution (the redrive count grew since the failure) it returns nil
// and the state machine resumes at the failed state. A Fail state could not do this: a
// redrive restarts the unsuccessful state, and a Fail state only fails again.
// https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html
func (h *Rethrow) Handle(ctx context.Context, ev CaughtFailure) error {
	if ev.RedriveCount > ev.FailedInRedrive {
		logger(h.Log).InfoContext(ctx, "redriven: resuming", "state", ev.FailedState, "redrive", ev.RedriveCount)
		return nil
	}
	name := ev.Error
	if name == "" {
		name = "RotationFailed"
	}
	msg := ev.Cause
	var lambdaErr struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(ev.Cause), &lambdaErr) == nil && lambdaErr.ErrorMessage != "" {
		msg = lambdaErr.ErrorMessage
	}
	return messages.InvokeResponse_Error{Type: name, Message: fmt.Sprintf("%s failed: %s", stateOrUnknown(ev.FailedState), msg)}
}

func stateOrUnknown(s string) string {
	if s == "" {
		return "a state"
	}
	return s
}
