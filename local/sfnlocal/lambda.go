package sfnlocal

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
)

// Handler runs one Task invocation: payload is the Task's effective input (after
// InputPath and Parameters) as JSON, the result its raw output as JSON. A returned error
// fails the invocation with the error name ErrorName reports, as a Go Lambda function would.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// LambdaFunc wraps a Go Lambda handler function (any signature lambda.Start accepts) with
// aws-lambda-go's own JSON handling, so the local run sees exactly what the deployed
// function would return.
func LambdaFunc(handlerFunc any) Handler {
	return lambda.NewHandler(handlerFunc).Invoke
}

// ErrorName is the errorType aws-lambda-go reports for an error a handler returns, and so
// the error name Step Functions matches in Retry and Catch: the Go type name of the error
// value, not unwrapped (a pointer's element type name), or the Type of a
// messages.InvokeResponse_Error value. It mirrors lambdaErrorResponse in
// aws-lambda-go/lambda/errors.go.
func ErrorName(err error) string {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Type
	}
	return typeName(err)
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Ptr {
		return t.Elem().Name()
	}
	return t.Name()
}

// ServiceError is a failure of the Lambda service, not of the function: the Invoke call
// itself failed, so the function did not run. Step Functions reports it as "Lambda." + Code
// ("Errors are reported as Lambda.<ErrorName>",
// https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html); the
// codes are the Invoke API's errors
// (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors), for
// example ResourceNotReadyException, which an idle VPC function meets after Lambda reclaimed
// its network interfaces (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html).
// A Handler returns one, unwrapped, to simulate the service failing; see ServiceErrors.
type ServiceError struct {
	Code    string // the Invoke API error code, e.g. "ResourceNotReadyException"
	Message string
}

func (e *ServiceError) Error() string { return "Lambda." + e.Code + ": " + e.Message }

// ServiceErrors puts the Lambda service in front of h: before each invocation, fail is asked
// which service error the invocation meets (nil: none), and then h does not run.
func ServiceErrors(h Handler, fail func(payload []byte) *ServiceError) Handler {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		if se := fail(payload); se != nil {
			return nil, se
		}
		return h(ctx, payload)
	}
}

// errorMessage is the errorMessage aws-lambda-go reports for err.
func errorMessage(err error) string {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Message
	}
	return err.Error()
}

// invokeResult is what the task server answers the runner.
type invokeResult struct {
	Output       json.RawMessage `json:"output,omitempty"`
	ErrorType    string          `json:"errorType,omitempty"`
	ErrorMessage string          `json:"errorMessage,omitempty"`
	Cause        string          `json:"cause,omitempty"`
}

// invoke calls h and shapes its outcome as Step Functions would see it for resource. A
// panic is reported like aws-lambda-go's lambdaPanicResponse: the panic value's type name.
func invoke(ctx context.Context, h Handler, resource string, payload []byte) (res invokeResult) {
	defer func() {
		if v := recover(); v != nil {
			name := typeName(v)
			if ive, ok := v.(messages.InvokeResponse_Error); ok {
				name = ive.Type
			}
			res = failure(resource, name, fmt.Sprintf("%v", v))
		}
	}()
	out, err := h(ctx, payload)
	if se, ok := err.(*ServiceError); ok && !isServiceIntegration(resource) {
		// The service's error: no function error payload, the cause is the message.
		return invokeResult{ErrorType: "Lambda." + se.Code, ErrorMessage: se.Message, Cause: se.Message}
	}
	if err != nil {
		return failure(resource, ErrorName(err), errorMessage(err))
	}
	if len(out) == 0 {
		out = []byte("null")
	}
	if !json.Valid(out) {
		return failure(resource, "Lambda.Unknown", "the handler returned a response that is not JSON")
	}
	return invokeResult{Output: json.RawMessage(out)}
}

// failure builds an error result. For a Lambda function the cause is the function's error
// payload as JSON, {"errorMessage":…,"errorType":…}, as aws-lambda-go sends it; for a
// service integration (arn:aws:states:::…) it is the message.
func failure(resource, name, message string) invokeResult {
	cause := message
	if !isServiceIntegration(resource) {
		b, err := json.Marshal(messages.InvokeResponse_Error{Message: message, Type: name})
		if err == nil {
			cause = string(b)
		}
	}
	return invokeResult{ErrorType: name, ErrorMessage: message, Cause: cause}
}

const serviceIntegrationPrefix = "arn:aws:states:::"

func isServiceIntegration(resource string) bool {
	return strings.HasPrefix(resource, serviceIntegrationPrefix)
}

// serviceResource splits "arn:aws:states:::sns:publish" into ("sns", "publish"), the
// ResourceType and Resource of Task history events.
func serviceResource(resource string) (resourceType, name string) {
	rest := strings.TrimPrefix(resource, serviceIntegrationPrefix)
	resourceType, name, _ = strings.Cut(rest, ":")
	return resourceType, name
}
