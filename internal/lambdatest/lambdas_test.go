package lambdatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const (
	stateMachineARN = "arn:aws:states:us-east-1:123456789012:stateMachine:x"
	servicesJSON    = `[{"cluster":"c","service":"s"}]`
	// rotationToken stands for the token Secrets Manager sends to createSecret: a secret
	// that may go to PutSecretValue and nowhere else.
	rotationToken = "lambdatestRotationToken0Qx9Zp2Lk4Vb8Nm3w"
)

// startEnv is what each main needs to start (the variables it requires).
var startEnv = map[string]map[string]string{
	"rotator":   {"PGROTATE_STATE_MACHINE_ARN": stateMachineARN, "PGROTATE_SERVICES": servicesJSON},
	"preflight": {"PGROTATE_STATE_MACHINE_ARN": stateMachineARN},
	"evidence":  {"PGROTATE_STATE_MACHINE_ARN": stateMachineARN, "PGROTATE_EVIDENCE_BUCKET": "evidence"},
}

// invocation is one event and the answer expected through the Runtime API. Every event
// fails (or succeeds) before any AWS or database call.
type invocation struct {
	name    string
	payload string
	// wantType is the errorType (the Step Functions error name); empty for a success,
	// whose body must be wantBody.
	wantType    string
	wantMessage string // a substring of errorMessage
	wantBody    string
}

// A State without secretArn, and a Rollout without service.
var (
	noSecretARN = invocation{name: "state without secretArn", payload: `{}`, wantType: "InvalidSecret", wantMessage: `"secretArn"`}
	noService   = invocation{name: "rollout without service", payload: `{}`, wantType: "InvalidSecret", wantMessage: `"service"`}
)

const failEvent = `{"action":"fail","error":"ReplicaNotReady","cause":"{\"errorMessage\":\"replica r:5432 not ready\",\"errorType\":\"ReplicaNotReady\"}","failedState":"CheckReplicas","failedInRedrive":0,"redriveCount":%s}`

var invocations = map[string][]invocation{
	"rotator": {
		{name: "promote without secretArn", payload: `{"action":"promote"}`, wantType: "InvalidSecret", wantMessage: "secretArn"},
		{
			name:        "unknown step with a RotationToken",
			payload:     `{"Step":"bogus","SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf","ClientRequestToken":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","RotationToken":"` + rotationToken + `"}`,
			wantMessage: "bogus",
		},
	},
	"preflight":     {noSecretARN},
	"cloneuser":     {noSecretARN},
	"setpassword":   {noSecretARN},
	"testlogin":     {noSecretARN},
	"checkreplicas": {noSecretARN},
	"redeploy":      {noService},
	"checkrollout":  {noService},
	// RotationFailed's own function (the rotation function no longer takes "fail").
	"rethrow": {
		{name: "fail rethrows the caught error", payload: strings.Replace(failEvent, "%s", "0", 1), wantType: "ReplicaNotReady", wantMessage: "CheckReplicas failed: replica r:5432 not ready"},
		{name: "fail in a redrive resumes", payload: strings.Replace(failEvent, "%s", "1", 1), wantBody: "null"},
	},
	"retireprevious": {noSecretARN},
	"evidence": {
		{name: "not an EventBridge event", payload: `[]`, wantType: "InvalidEvent", wantMessage: "not an EventBridge event"},
		{name: "another state machine", payload: `{"id":"e1","source":"aws.states","detail-type":"Step Functions Execution Status Change",` +
			`"detail":{"executionArn":"arn:aws:states:us-east-1:123456789012:execution:y:n","stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:y","name":"n","status":"SUCCEEDED"}}`,
			wantType: "InvalidEvent", wantMessage: "is not the rotation state machine"},
	},
}

// The rotator's unknown-step event must fail with some error name.
func (inv invocation) wantsError() bool { return inv.wantType != "" || inv.wantBody == "" }

func TestMainsAnswerThroughTheRuntimeAPI(t *testing.T) {
	for _, name := range lambdas {
		if len(invocations[name]) == 0 {
			t.Fatalf("no invocation for %s", name)
		}
	}
	for _, name := range lambdas {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			aws := awsSentinel(t)
			e := startEmulator(t, name, startEnv[name], aws.URL)
			var bodies []string
			for _, inv := range invocations[name] {
				status, body := e.invoke(t, inv.payload)
				bodies = append(bodies, body)
				if status != http.StatusOK {
					t.Fatalf("%s: status %d, body %q; emulator output:\n%s", inv.name, status, body, e.out.String())
				}
				checkAnswer(t, inv, body)
			}
			e.stop()
			out := e.out.String()
			if !strings.Contains(out, "INIT RTDONE(status: success)") {
				t.Errorf("the emulator did not report a successful init; output:\n%s", out)
			}
			checkNoSecrets(t, append(bodies, out)...)
			if n := aws.requests.Load(); n != 0 {
				t.Errorf("%s made %d AWS requests; these events must fail before any", name, n)
			}
		})
	}
}

func checkAnswer(t *testing.T, inv invocation, body string) {
	t.Helper()
	if !inv.wantsError() {
		if body != inv.wantBody {
			t.Errorf("%s: body %q, want %q", inv.name, body, inv.wantBody)
		}
		return
	}
	var got struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%s: answer %q is not a Lambda error: %v", inv.name, body, err)
	}
	switch {
	case got.ErrorType == "":
		t.Errorf("%s: no errorType in %q", inv.name, body)
	case inv.wantType != "" && got.ErrorType != inv.wantType:
		t.Errorf("%s: errorType %q, want %q (message %q)", inv.name, got.ErrorType, inv.wantType, got.ErrorMessage)
	}
	if !strings.Contains(got.ErrorMessage, inv.wantMessage) {
		t.Errorf("%s: errorMessage %q does not contain %q", inv.name, got.ErrorMessage, inv.wantMessage)
	}
}

// TestBadConfigurationStopsTheStart starts mains without (or with a malformed) variable:
// the init fails, the emulator answers 502 without running the handler, and the main's
// "cannot start" line names the variable.
func TestBadConfigurationStopsTheStart(t *testing.T) {
	tests := []struct {
		main    string
		env     map[string]string
		wantVar string
		payload string
	}{
		{"rotator", map[string]string{"PGROTATE_SERVICES": servicesJSON}, "PGROTATE_STATE_MACHINE_ARN is not set", `{"action":"promote"}`},
		{"rotator", map[string]string{"PGROTATE_STATE_MACHINE_ARN": stateMachineARN, "PGROTATE_SERVICES": `{"cluster":"c"}`}, "PGROTATE_SERVICES", `{"action":"promote"}`},
		{"preflight", nil, "PGROTATE_STATE_MACHINE_ARN is not set", `{}`},
		{"evidence", map[string]string{"PGROTATE_STATE_MACHINE_ARN": stateMachineARN}, "PGROTATE_EVIDENCE_BUCKET is not set", `{}`},
		{"checkrollout", map[string]string{"PGROTATE_ROLLOUT_MAX_CHECKS": "many"}, "PGROTATE_ROLLOUT_MAX_CHECKS", `{}`},
		{"testlogin", map[string]string{"PGROTATE_CONNECT_TIMEOUT": "soon"}, "PGROTATE_CONNECT_TIMEOUT", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.main+"/"+strings.Fields(tt.wantVar)[0], func(t *testing.T) {
			t.Parallel()
			aws := awsSentinel(t)
			e := startEmulator(t, tt.main, tt.env, aws.URL)
			status, body := e.invoke(t, tt.payload)
			e.stop()
			out := e.out.String()
			if status != http.StatusBadGateway {
				t.Errorf("status %d (body %q), want %d for a failed init; output:\n%s", status, body, http.StatusBadGateway, out)
			}
			if strings.Contains(body, "errorType") {
				t.Errorf("the handler answered %q although the init failed", body)
			}
			for _, want := range []string{"cannot start", tt.wantVar, "Runtime.ExitError"} {
				if !strings.Contains(out, want) {
					t.Errorf("emulator output does not contain %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "INIT RTDONE(status: success)") {
				t.Errorf("the init succeeded:\n%s", out)
			}
			checkNoSecrets(t, body, out)
			if n := aws.requests.Load(); n != 0 {
				t.Errorf("%d AWS requests before a failed start", n)
			}
		})
	}
}

// secretAssignment matches a secret-named key or variable followed by a value that is not
// the redaction marker ("[REDACTED]").
var secretAssignment = regexp.MustCompile(`(?i)(password|rotation_?token|secret_?access_?key|session_?token)["']?\s*[:=]\s*["']?[^"'\s\[,}]`)

// checkNoSecrets fails if any text holds a secret value (see secretsIn).
func checkNoSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, problem := range secretsIn(texts...) {
		t.Error(problem)
	}
}

// secretsIn describes, without printing any match, every secret value in texts: the
// RotationToken, the dummy AWS secret key, or a secret-named field with a clear value.
func secretsIn(texts ...string) []string {
	var problems []string
	for i, s := range texts {
		if strings.Contains(s, rotationToken) {
			problems = append(problems, fmt.Sprintf("text %d contains the RotationToken", i))
		}
		if strings.Contains(s, dummySecretKey) {
			problems = append(problems, fmt.Sprintf("text %d contains the AWS secret access key", i))
		}
		if loc := secretAssignment.FindStringIndex(s); loc != nil {
			problems = append(problems, fmt.Sprintf("text %d has a secret-looking assignment at byte %d", i, loc[0]))
		}
	}
	return problems
}

func TestSecretsInFindsSecrets(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{`{"errorMessage":"unknown rotation step \"bogus\"","errorType":"errorString"}`, 0},
		{`level=INFO message="x" password="[REDACTED]"`, 0},
		{"Starting runtime without AWS_SESSION_TOKEN , Expected?: false", 0},
		{`{"RotationToken":"` + rotationToken + `"}`, 2},
		{"AWS_SECRET_ACCESS_KEY=" + dummySecretKey, 2},
		{`{"password":"hunter2hunter2"}`, 1},
		{`level=ERROR password=hunter2`, 1},
	}
	for _, tt := range tests {
		if got := secretsIn(tt.text); len(got) != tt.want {
			t.Errorf("secretsIn(%q) = %q, want %d problems", tt.text, got, tt.want)
		}
	}
}

// sentinel stands in for every AWS endpoint and counts the requests it gets.
type sentinel struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	targets  []string // X-Amz-Target of each request (JSON protocols name the operation)
}

func (s *sentinel) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.targets...)
}

func awsSentinel(t *testing.T) *sentinel {
	t.Helper()
	s := &sentinel{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.targets = append(s.targets, r.Header.Get("X-Amz-Target"))
		s.mu.Unlock()
		http.Error(w, "no AWS in this test", http.StatusForbidden)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestAWSCallsReachOnlyTheSentinel shows that the zero-request checks above mean something:
// a valid Rollout makes redeploy call ECS, and the call lands on the local sentinel.
func TestAWSCallsReachOnlyTheSentinel(t *testing.T) {
	aws := awsSentinel(t)
	e := startEmulator(t, "redeploy", nil, aws.URL)
	status, body := e.invoke(t, `{"secretArn":"arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf","token":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","service":{"cluster":"c","service":"s"},"promotedAt":"2026-01-02T03:04:05Z","checks":0,"done":false}`)
	e.stop()
	if status != http.StatusOK || !strings.Contains(body, `"errorType"`) {
		t.Errorf("status %d, body %q: want the handler's error for a refused ECS call; output:\n%s", status, body, e.out.String())
	}
	targets := aws.seen()
	if len(targets) == 0 || !strings.HasSuffix(targets[0], ".DescribeServices") {
		t.Errorf("sentinel saw %q, want ECS DescribeServices", targets)
	}
	checkNoSecrets(t, body, e.out.String())
}
