package apirec

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/smithy-go"
)

type doCall struct {
	op      string
	version string
	err     error
}

func newAPI() API[doCall] {
	return API[doCall]{
		Rec:     New(func(c doCall) string { return c.op }, func(c doCall) doCall { return c }),
		Service: "Fake",
		SetErr:  func(c *doCall, err error) { c.err = err },
	}
}

type output struct{ version string }

// Do runs the interceptor and the context check before the operation, lets done complete
// the call, records it, and wraps errors as the SDK does.
func TestDo(t *testing.T) {
	refused := errors.New("refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		intercept error
		runErr    error
		wantRun   bool
		wantErr   error // the cause inside the OperationError; nil for success
	}{
		{"success", context.Background(), nil, nil, true, nil},
		{"operation fails", context.Background(), nil, refused, true, refused},
		{"interceptor fails", context.Background(), refused, nil, false, refused},
		{"context done", cancelled, nil, nil, false, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newAPI()
			if tc.intercept != nil {
				api.Rec.FailNext("Op", tc.intercept)
			}
			ran := false
			run := func(_ context.Context, in string) (*output, error) {
				ran = true
				if tc.runErr != nil {
					return nil, tc.runErr
				}
				return &output{version: in}, nil
			}
			done := func(c *doCall, out *output, _ error) {
				if out != nil {
					c.version = out.version
				}
			}
			out, err := Do(tc.ctx, api, doCall{op: "Op"}, "v1", run, done)
			if ran != tc.wantRun {
				t.Errorf("ran = %v, want %v", ran, tc.wantRun)
			}
			calls := api.Rec.Calls()
			if len(calls) != 1 || calls[0].op != "Op" {
				t.Fatalf("calls = %+v, want the one call of Op", calls)
			}
			if tc.wantErr == nil {
				if err != nil || out == nil || out.version != "v1" || calls[0].version != "v1" || calls[0].err != nil {
					t.Fatalf("Do = %+v, %v; call %+v: want v1 recorded, no error", out, err, calls[0])
				}
				return
			}
			var oe *smithy.OperationError
			if !errors.As(err, &oe) || oe.ServiceID != "Fake" || oe.OperationName != "Op" || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Do error = %v, want an OperationError of Fake Op wrapping %v", err, tc.wantErr)
			}
			if out != nil || calls[0].err != err || calls[0].version != "" {
				t.Errorf("Do = %+v; call %+v: want no output and the wrapped error recorded", out, calls[0])
			}
		})
	}
}
