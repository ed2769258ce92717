package tasks

import (
	"context"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

func TestFailActionRethrowsTheCaughtError(t *testing.T) {
	lambdaCause := `{"errorMessage":"login as \"app_user_clone\" on db:5432 rejected: password authentication failed","errorType":"CredentialRejected"}`
	tests := []struct {
		name     string
		ev       CaughtFailure
		wantName string // "" means the action succeeds
		wantMsg  []string
	}{
		{
			name:     "first failure",
			ev:       CaughtFailure{Action: ActionFail, Error: "CredentialRejected", Cause: lambdaCause, FailedState: "SetPassword"},
			wantName: "CredentialRejected",
			wantMsg:  []string{"SetPassword failed", "password authentication failed"},
		},
		{
			name:     "a cause that is not a Lambda error",
			ev:       CaughtFailure{Action: ActionFail, Error: "States.Timeout", Cause: "the task timed out", FailedState: "CheckReplicas", FailedInRedrive: 1, RedriveCount: 1},
			wantName: "States.Timeout",
			wantMsg:  []string{"CheckReplicas failed", "the task timed out"},
		},
		{
			name: "redriven since the failure",
			ev:   CaughtFailure{Action: ActionFail, Error: "CredentialRejected", Cause: lambdaCause, FailedState: "SetPassword", FailedInRedrive: 0, RedriveCount: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Rethrow{}).Handle(context.Background(), tc.ev)
			if tc.wantName == "" {
				if err != nil {
					t.Fatalf("a redriven execution must resume: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want the caught error rethrown")
			}
			if got := sfnlocal.ErrorName(err); got != tc.wantName {
				t.Errorf("errorType = %q, want %q (the execution must fail under the original name)", got, tc.wantName)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q lacks %q", err.Error(), m)
				}
			}
		})
	}
}
