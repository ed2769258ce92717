package awsserve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// LambdaHandler runs one invocation of a local function: payload is the Invoke request's
// payload, the result is marshalled to JSON as the response payload (a json.RawMessage is
// sent as is). A returned error is the function's error, reported as a Go Lambda function
// reports it: errorType is the error value's Go type name (sfnlocal.ErrorName).
type LambdaHandler func(ctx context.Context, payload json.RawMessage) (any, error)

// LambdaFunc adapts a handler of the local state machine (for example
// sfnlocal.LambdaFunc(tasks.Preflight)) so the same function can be invoked over the wire.
func LambdaFunc(h sfnlocal.Handler) LambdaHandler {
	return func(ctx context.Context, payload json.RawMessage) (any, error) {
		out, err := h(ctx, payload)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(out), nil
	}
}

const lambdaPrefix = "/2015-03-31/functions/"

// serveLambda serves Invoke, POST /2015-03-31/functions/{FunctionName}/invocations
// (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): the function's result
// with 200; a function error with 200, X-Amz-Function-Error: Unhandled and the payload
// {"errorMessage","errorType"}; InvocationType Event answers 202 and runs the function in
// the background, DryRun answers 204 without running it.
func (s *Server) serveLambda(w http.ResponseWriter, r *http.Request) {
	name, h, get, ok := s.lambdaFunction(w, r)
	if !ok {
		return
	}
	if get {
		s.getFunction(w, name)
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeJSONError(w, "application/json", http.StatusBadRequest, "InvalidRequestContentException", "read request body: "+err.Error())
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		writeJSONError(w, "application/json", http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json")
		return
	}

	switch typ := r.Header.Get("X-Amz-Invocation-Type"); typ {
	case "", "RequestResponse":
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_, _ = invokeLambda(s.ctx, h, payload)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	default:
		writeJSONError(w, "application/json", http.StatusBadRequest, "InvalidParameterValueException", "bad InvocationType "+typ)
		return
	}

	out, fnErr := invokeLambda(r.Context(), h, payload)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if fnErr != nil {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		out, _ = json.Marshal(fnErr)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// lambdaFunction routes a Lambda request to its function: Invoke (POST …/invocations) or
// GetFunction (GET). When ok is false the error response is written.
func (s *Server) lambdaFunction(w http.ResponseWriter, r *http.Request) (name string, h LambdaHandler, get, ok bool) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), lambdaPrefix)
	escaped, invoke := strings.CutSuffix(rest, "/invocations")
	get = !invoke && r.Method == http.MethodGet
	if (!invoke && !get) || (invoke && r.Method != http.MethodPost) || strings.Contains(escaped, "/") {
		writeJSONError(w, "application/json", http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("%s %s is not served here: only Lambda Invoke and GetFunction are", r.Method, r.URL.Path))
		return "", nil, false, false
	}
	ref, err := url.PathUnescape(escaped)
	if err != nil {
		writeJSONError(w, "application/json", http.StatusBadRequest, "InvalidParameterValueException", "bad function name")
		return "", nil, false, false
	}
	name = functionName(ref)
	if h, ok = s.lambdas[name]; !ok {
		// Lambda's ResourceNotFoundException carries Type and Message.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", "ResourceNotFoundException")
		w.WriteHeader(http.StatusNotFound)
		body := append([]byte(`{"Type":"User","Message":`), appendJSONString(nil, "Function not found: "+s.functionARN(name))...)
		_, _ = w.Write(append(body, '}'))
	}
	return name, h, get, ok
}

// getFunction serves GetFunction, GET /2015-03-31/functions/{FunctionName}
// (https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html): the function's name
// and ARN, and its tags (Lambda returns them to a caller allowed lambda:ListTags), which is
// what the pgrotate CLI discovers a deployment from.
func (s *Server) getFunction(w http.ResponseWriter, name string) {
	type configuration struct {
		FunctionName, FunctionArn, Runtime, State string
	}
	out, err := json.Marshal(struct {
		Configuration configuration
		Tags          map[string]string `json:",omitempty"`
	}{configuration{name, s.functionARN(name), "provided.al2023", "Active"}, s.lambdaTags[name]})
	if err != nil {
		writeJSONError(w, "application/json", http.StatusInternalServerError, "ServiceException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// invokeLambda runs h and returns its JSON result, or the error payload aws-lambda-go
// would send for its error or panic.
func invokeLambda(ctx context.Context, h LambdaHandler, payload []byte) (out []byte, fnErr *messages.InvokeResponse_Error) {
	defer func() {
		if v := recover(); v != nil {
			out, fnErr = nil, &messages.InvokeResponse_Error{Type: panicType(v), Message: fmt.Sprint(v)}
		}
	}()
	res, err := h(ctx, payload)
	if err != nil {
		return nil, &messages.InvokeResponse_Error{Type: sfnlocal.ErrorName(err), Message: errorMessage(err)}
	}
	out, err = json.Marshal(res)
	if err != nil {
		return nil, &messages.InvokeResponse_Error{Type: "Runtime.MarshalError", Message: err.Error()}
	}
	return out, nil
}

func errorMessage(err error) string {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Message
	}
	return err.Error()
}

func panicType(v any) string {
	if ive, ok := v.(messages.InvokeResponse_Error); ok {
		return ive.Type
	}
	if err, ok := v.(error); ok {
		return sfnlocal.ErrorName(err)
	}
	return fmt.Sprintf("%T", v)
}

// functionName accepts what Invoke's FunctionName accepts: a name, a partial ARN
// (ACCOUNT:function:NAME) or an ARN, each with an optional :QUALIFIER.
func functionName(ref string) string {
	parts := strings.Split(ref, ":")
	for i, p := range parts {
		if p == "function" && i+1 < len(parts) {
			return parts[i+1]
		}
	}
	return parts[0]
}

func (s *Server) functionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", s.region, s.account, name)
}
