package sfnlocal_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// A Lambda service error injected by the bridge reaches the interpreter's Retry and Catch as
// "Lambda.<Code>", for any code, and the function only runs on the attempt that gets through.
func TestInjectedLambdaServiceErrors(t *testing.T) {
	def := fmt.Sprintf(`{
  "StartAt": "Work",
  "States": {
    "Work": {
      "Type": "Task", "Resource": %q,
      "Retry": [{"ErrorEquals": ["Lambda.ResourceNotReadyException"], "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 2}],
      "Catch": [{"ErrorEquals": ["Lambda.ServiceException"], "ResultPath": "$.error", "Next": "Caught"}],
      "End": true
    },
    "Caught": {"Type": "Fail", "Error": "Caught"}
  }
}`, fnArn("work"))
	tests := []struct {
		name   string
		codes  []string // the service errors of the first invocations
		status types.ExecutionStatus
		ran    int
		trace  []string
	}{
		{"retried, then through", []string{"ResourceNotReadyException", "ResourceNotReadyException"}, types.ExecutionStatusSucceeded, 1,
			[]string{"LambdaFunctionFailed Lambda.ResourceNotReadyException", "LambdaFunctionFailed Lambda.ResourceNotReadyException", "LambdaFunctionSucceeded"}},
		{"caught by name", []string{"ServiceException"}, types.ExecutionStatusFailed, 0,
			[]string{"LambdaFunctionFailed Lambda.ServiceException"}},
		{"retries exhausted", []string{"ResourceNotReadyException", "ResourceNotReadyException", "ResourceNotReadyException", "ResourceNotReadyException"},
			types.ExecutionStatusFailed, 0, slices.Repeat([]string{"LambdaFunctionFailed Lambda.ResourceNotReadyException"}, 4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := &recorder{}
			calls := 0
			h := sfnlocal.ServiceErrors(work.handle, func([]byte) *sfnlocal.ServiceError {
				calls++
				if calls <= len(tc.codes) {
					return &sfnlocal.ServiceError{Code: tc.codes[calls-1], Message: "injected by the test"}
				}
				return nil
			})
			m := newMachine(t, sfnlocal.Options{
				Definition:             def,
				Handlers:               map[string]sfnlocal.Handler{fnArn("work"): h},
				RetryIntervalOverrides: map[string]time.Duration{"*": 10 * time.Millisecond},
			})
			arn := start(t, m, "svc", `{}`)
			d := waitFor(t, m, arn, tc.status)
			var got []string
			for _, l := range trace(events(t, m, arn)) {
				if strings.HasPrefix(l, "LambdaFunctionFailed") || strings.HasPrefix(l, "LambdaFunctionSucceeded") {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tc.trace) || work.calls() != tc.ran {
				t.Fatalf("history %v, function ran %d times; want %v, %d", got, work.calls(), tc.trace, tc.ran)
			}
			if tc.status == types.ExecutionStatusFailed && tc.ran == 0 && len(tc.codes) == 1 && aws.ToString(d.Error) != "Caught" {
				t.Fatalf("error %s, want the Catch to match Lambda.ServiceException", aws.ToString(d.Error))
			}
		})
	}
}
