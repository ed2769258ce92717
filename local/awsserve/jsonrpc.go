package awsserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/aws/smithy-go"
)

// maxBody bounds a request body read into memory.
const maxBody = 16 << 20

// jsonService serves one awsJson service: the operations are the SDK-shaped methods of a
// backend.
type jsonService struct {
	target  string // the X-Amz-Target prefix, the service shape's name
	version string // "1.0" or "1.1"
	// name maps a Go field name to its member name, for outputs without a Serialize
	// method (older SDK clients such as sfn); nil where every output has one.
	name func(string) string
	ops  map[string]reflect.Value
}

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
)

// newJSONService collects backend's operations: each method Op with the signature of the
// SDK client's method, func(context.Context, *P.OpInput, ...func(*P.Options))
// (*P.OpOutput, error), where P is the SDK package sdkPkg. Other methods are not served.
func newJSONService(target, version, sdkPkg string, name func(string) string, backend any) (*jsonService, error) {
	s := &jsonService{target: target, version: version, name: name, ops: map[string]reflect.Value{}}
	v := reflect.ValueOf(backend)
	for i := range v.NumMethod() {
		name := v.Type().Method(i).Name
		m := v.Method(i)
		if sdkShaped(m.Type(), name, sdkPkg) {
			s.ops[name] = m
		}
	}
	if len(s.ops) == 0 {
		return nil, fmt.Errorf("awsserve: %T has no method shaped like a %s client method", backend, sdkPkg)
	}
	return s, nil
}

func sdkShaped(t reflect.Type, name, pkg string) bool {
	named := func(p reflect.Type, suffix string) bool {
		return p.Kind() == reflect.Pointer && p.Elem().Kind() == reflect.Struct &&
			p.Elem().PkgPath() == pkg && p.Elem().Name() == name+suffix
	}
	return t.NumIn() == 3 && t.IsVariadic() && t.In(0) == contextType && named(t.In(1), "Input") &&
		t.NumOut() == 2 && named(t.Out(0), "Output") && t.Out(1) == errorType
}

// Operations lists the served operation names, sorted.
func (s *jsonService) operations() []string {
	names := make([]string, 0, len(s.ops))
	for name := range s.ops {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (s *jsonService) serve(w http.ResponseWriter, r *http.Request, op string) {
	m, ok := s.ops[op]
	if !ok {
		s.writeError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("%s.%s is not served here", s.target, op))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		s.writeError(w, http.StatusBadRequest, "SerializationException", "read request body: "+err.Error())
		return
	}
	in := reflect.New(m.Type().In(1).Elem())
	if err := decodeInput(body, in.Interface()); err != nil {
		s.writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	// A real service finishes an accepted request whether or not the client waits for it.
	res, panicked := call(m, context.WithoutCancel(r.Context()), in)
	if panicked {
		s.writeError(w, http.StatusInternalServerError, "InternalFailure", op+" panicked")
		return
	}
	if err, _ := res[1].Interface().(error); err != nil {
		status, code, msg := errorShape(err)
		s.writeError(w, status, code, msg)
		return
	}
	payload := []byte("{}")
	if !res[0].IsNil() {
		payload, err = encodeOutput(res[0].Interface(), s.name)
		if err != nil {
			s.writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-"+s.version)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// call runs one operation, turning a panic of the model into an InternalFailure rather
// than a dropped connection (which the SDK would retry).
func call(m reflect.Value, ctx context.Context, in reflect.Value) (res []reflect.Value, panicked bool) {
	defer func() {
		if recover() != nil {
			res, panicked = nil, true
		}
	}()
	return m.Call([]reflect.Value{reflect.ValueOf(ctx), in}), false
}

// errorShape maps an error from a model to the HTTP status, error code and message AWS
// would send: a modelled error keeps its code (ErrorCode(), also through
// smithy.OperationError), with 500 for server faults; anything else is an InternalFailure.
func errorShape(err error) (status int, code, msg string) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		status = http.StatusBadRequest
		if apiErr.ErrorFault() == smithy.FaultServer {
			status = http.StatusInternalServerError
		}
		return status, apiErr.ErrorCode(), apiErr.ErrorMessage()
	}
	return http.StatusInternalServerError, "InternalFailure", err.Error()
}

// writeError sends an awsJson error: the code in the X-Amzn-Errortype header and as the
// body's __type, which the SDK reads to pick the modelled error type
// (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#operation-error-serialization).
func (s *jsonService) writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSONError(w, "application/x-amz-json-"+s.version, status, code, msg)
}

func writeJSONError(w http.ResponseWriter, contentType string, status int, code, msg string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	body := []byte(`{"__type":`)
	body = appendJSONString(body, code)
	body = append(body, `,"message":`...)
	body = appendJSONString(body, msg)
	body = append(body, '}')
	_, _ = w.Write(body)
}

// splitTarget splits "secretsmanager.GetSecretValue" into its service and operation.
func splitTarget(target string) (service, op string, ok bool) {
	i := strings.LastIndexByte(target, '.')
	if i <= 0 || i == len(target)-1 {
		return "", "", false
	}
	return target[:i], target[i+1:], true
}
