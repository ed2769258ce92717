package sfnlocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/lambda/messages"
)

type customError struct{ msg string }

func (e *customError) Error() string { return e.msg }

type valueError struct{}

func (valueError) Error() string { return "value" }

func TestErrorName(t *testing.T) {
	// The expectations of aws-lambda-go's TestCustomErrorMarshaling, plus wrapping.
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"pointer type", &customError{"boom"}, "customError"},
		{"value type", valueError{}, "valueError"},
		{"errors.New", errors.New("boring"), "errorString"},
		{"wrapped is not unwrapped", fmt.Errorf("step: %w", &customError{"boom"}), "wrapError"},
		{"InvokeResponse_Error value", messages.InvokeResponse_Error{Type: "yolo", Message: "m"}, "yolo"},
		{"InvokeResponse_Error pointer", &messages.InvokeResponse_Error{Type: "yolo"}, "InvokeResponse_Error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorName(tc.err); got != tc.want {
				t.Fatalf("ErrorName(%T) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestInvokeShapesOutcome(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:123456789012:function:f"
	tests := []struct {
		name      string
		resource  string
		h         Handler
		wantOut   string
		wantType  string
		wantCause string
	}{
		{"output", fn, func(context.Context, []byte) ([]byte, error) { return []byte(`{"a":1}`), nil }, `{"a":1}`, "", ""},
		{"empty output is null", fn, func(context.Context, []byte) ([]byte, error) { return nil, nil }, `null`, "", ""},
		{"lambda error cause is the error payload", fn, func(context.Context, []byte) ([]byte, error) { return nil, &customError{`bad "x"`} },
			"", "customError", `{"errorMessage":"bad \"x\"","errorType":"customError"}`},
		{"service integration cause is the message", "arn:aws:states:::sns:publish", func(context.Context, []byte) ([]byte, error) {
			return nil, messages.InvokeResponse_Error{Type: "SNS.NotFoundException", Message: "no topic"}
		}, "", "SNS.NotFoundException", "no topic"},
		{"panic", fn, func(context.Context, []byte) ([]byte, error) { panic(&customError{"oops"}) }, "", "customError", `{"errorMessage":"oops","errorType":"customError"}`},
		{"not JSON", fn, func(context.Context, []byte) ([]byte, error) { return []byte("{"), nil }, "", "Lambda.Unknown", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := invoke(context.Background(), tc.h, tc.resource, []byte(`{}`))
			if string(res.Output) != tc.wantOut || res.ErrorType != tc.wantType {
				t.Fatalf("invoke = %+v, want output %q, errorType %q", res, tc.wantOut, tc.wantType)
			}
			if tc.wantCause != "" && res.Cause != tc.wantCause {
				t.Fatalf("cause = %s, want %s", res.Cause, tc.wantCause)
			}
		})
	}
}

func TestLambdaFunc(t *testing.T) {
	type in struct{ N int }
	h := LambdaFunc(func(ctx context.Context, v in) (in, error) {
		if v.N < 0 {
			return in{}, &customError{"negative"}
		}
		return in{N: v.N + 1}, nil
	})
	out, err := h(context.Background(), []byte(`{"N":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var got in
	if err := json.Unmarshal(out, &got); err != nil || got.N != 2 {
		t.Fatalf("output %s, %v", out, err)
	}
	_, err = h(context.Background(), []byte(`{"N":-1}`))
	if ErrorName(err) != "customError" {
		t.Fatalf("error %T %v, want the handler's *customError", err, err)
	}
}

func TestServiceErrorIsTheLambdaServicesError(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:123456789012:function:f"
	ran := 0
	h := ServiceErrors(func(context.Context, []byte) ([]byte, error) { ran++; return []byte(`{}`), nil },
		func(payload []byte) *ServiceError {
			if string(payload) == `{"idle":true}` {
				return &ServiceError{Code: "ResourceNotReadyException", Message: "The function is inactive and its VPC connection is no longer available."}
			}
			return nil
		})
	res := invoke(context.Background(), h, fn, []byte(`{"idle":true}`))
	if res.ErrorType != "Lambda.ResourceNotReadyException" || res.Cause != "The function is inactive and its VPC connection is no longer available." || ran != 0 {
		t.Fatalf("idle: invoke = %+v, function ran %d times; want Lambda.ResourceNotReadyException with the service's message, the function not run", res, ran)
	}
	res = invoke(context.Background(), h, fn, []byte(`{}`))
	if res.ErrorType != "" || string(res.Output) != `{}` || ran != 1 {
		t.Fatalf("active: invoke = %+v, function ran %d times", res, ran)
	}
	// Only the value itself is the service's error: a handler that wraps one failed itself.
	wrapped := func(context.Context, []byte) ([]byte, error) {
		return nil, fmt.Errorf("call: %w", &ServiceError{Code: "ServiceException", Message: "m"})
	}
	if res := invoke(context.Background(), wrapped, fn, nil); res.ErrorType != "wrapError" {
		t.Fatalf("wrapped: errorType %q, want wrapError", res.ErrorType)
	}
}
