package statemachine_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/workflow"
)

// testValues are plausible deployed ARNs, one per key.
func testValues() map[string]string {
	v := map[string]string{}
	for _, k := range statemachine.Keys() {
		name := strings.TrimSuffix(k, "FunctionArn")
		v[k] = "arn:aws:lambda:eu-west-1:123456789012:function:pgrotate-" + strings.ToLower(name)
	}
	v[statemachine.AlarmTopicArn] = "arn:aws:sns:eu-west-1:123456789012:pgrotate-alarms"
	v[statemachine.RetirePreviousAfter] = "24h0m0s"
	return v
}

func render(t *testing.T) map[string]any {
	t.Helper()
	out, err := statemachine.Render(testValues())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var def map[string]any
	if err := json.Unmarshal([]byte(out), &def); err != nil {
		t.Fatalf("rendered definition: %v", err)
	}
	return def
}

// tools finds Node and node_modules; a missing install is a failure, not a skip.
func tools(t *testing.T) sfnlocal.Tools {
	t.Helper()
	tl, err := sfnlocal.FindTools("", "")
	if err != nil {
		t.Fatalf("Node tooling is required for this test: %v", err)
	}
	return tl
}

func runValidator(t *testing.T, tl sfnlocal.Tools, definition string, args ...string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "definition.json")
	if err := os.WriteFile(path, []byte(definition), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tl.Node, append(append([]string{tl.ASLValidator()}, args...), "--json-path", path)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDefinitionPassesASLValidator(t *testing.T) {
	tl := tools(t)
	rendered, err := statemachine.Render(testValues())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		definition string
		args       []string
		valid      bool
	}{
		{"rendered", rendered, nil, true},
		{"template", statemachine.Definition, []string{"--no-arn-check"}, true},
		// The validator must be able to say no, or the cases above prove nothing.
		{"broken Next", strings.Replace(rendered, `"Next": "CloneUser"`, `"Next": "NoSuchState"`, 1), nil, false},
		{"bad JSONPath", strings.Replace(rendered, `"ResultPath": "$.promotion"`, `"ResultPath": "promotion["`, 1), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.definition == rendered && !tc.valid {
				t.Fatal("test case did not change the definition")
			}
			out, err := runValidator(t, tl, tc.definition, tc.args...)
			if tc.valid && err != nil {
				t.Fatalf("asl-validator rejected the definition: %v\n%s", err, out)
			}
			if !tc.valid {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("asl-validator: want exit 1 for an invalid definition, got %v\n%s", err, out)
				}
			}
		})
	}
}

var lambdaErrors = []string{"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"}

type state = map[string]any

// walk calls fn for every state, nested ones (Map ItemProcessor) included.
func walk(states map[string]any, nested bool, fn func(name string, s state, nested bool)) {
	for name, v := range states {
		s := v.(map[string]any)
		fn(name, s, nested)
		if p, ok := s["ItemProcessor"].(map[string]any); ok {
			walk(p["States"].(map[string]any), true, fn)
		}
	}
}

func retriers(s state) []map[string]any {
	var out []map[string]any
	for _, r := range asSlice(s["Retry"]) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func strs(v any) []string {
	var out []string
	for _, x := range asSlice(v) {
		out = append(out, x.(string))
	}
	return out
}

func num(r map[string]any, key string, def float64) float64 {
	if v, ok := r[key].(float64); ok {
		return v
	}
	return def
}

// expectedRetryWait is the mean total pause of a retrier that uses all its attempts under
// FULL jitter: each pause is uniform in [0, min(Interval·Rate^k, MaxDelay)], so half the sum
// of the caps.
func expectedRetryWait(r map[string]any) float64 {
	interval, rate, attempts := num(r, "IntervalSeconds", 1), num(r, "BackoffRate", 2), num(r, "MaxAttempts", 3)
	maxDelay := num(r, "MaxDelaySeconds", 0)
	var sum float64
	cap := interval
	for range int(attempts) {
		c := cap
		if maxDelay > 0 && c > maxDelay {
			c = maxDelay
		}
		sum += c
		cap *= rate
	}
	return sum / 2
}

func TestExpectedRetryWait(t *testing.T) {
	// 3+6+12+24 then capped at 30 eight times: 45+240 = 285, half under full jitter.
	r := map[string]any{"IntervalSeconds": 3.0, "BackoffRate": 2.0, "MaxDelaySeconds": 30.0, "MaxAttempts": 12.0}
	if got := expectedRetryWait(r); got != 142.5 {
		t.Fatalf("expectedRetryWait = %v, want 142.5", got)
	}
}

// caps are the upper bounds of a retrier's pauses, one per retry: IntervalSeconds ×
// BackoffRate^k, capped at MaxDelaySeconds. Defaults are the ASL's: IntervalSeconds 1,
// MaxAttempts 3, BackoffRate 2.0, no cap.
// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html#error-handling-retrying-after-an-error
func caps(r map[string]any) []float64 {
	interval, rate, attempts := num(r, "IntervalSeconds", 1), num(r, "BackoffRate", 2), num(r, "MaxAttempts", 3)
	maxDelay := num(r, "MaxDelaySeconds", 0)
	var out []float64
	c := interval
	for range int(attempts) {
		out = append(out, c)
		if maxDelay > 0 && out[len(out)-1] > maxDelay {
			out[len(out)-1] = maxDelay
		}
		c *= rate
	}
	return out
}

// retryWait is the total pause of a retrier that uses all its attempts: worst is the sum of
// the caps; least is the shortest it can be (zero under FULL jitter, which draws each pause
// uniformly between 0 and its cap); expected is the mean (half the caps under FULL jitter).
func retryWait(r map[string]any) (least, expected, worst float64) {
	for _, c := range caps(r) {
		worst += c
	}
	if r["JitterStrategy"] == "FULL" {
		return 0, worst / 2, worst
	}
	return worst, worst, worst
}

// retrierFor returns the retrier Step Functions applies to err in s: the first whose
// ErrorEquals names it or a wildcard that matches it.
func retrierFor(s state, err string) map[string]any {
	for _, r := range retriers(s) {
		for _, n := range strs(r["ErrorEquals"]) {
			if n == err || n == "States.ALL" || (n == "States.TaskFailed" && !strings.HasPrefix(err, "States.")) {
				return r
			}
		}
	}
	return nil
}

func TestRetryWait(t *testing.T) {
	r := map[string]any{"IntervalSeconds": 5.0, "BackoffRate": 2.0, "MaxDelaySeconds": 60.0, "MaxAttempts": 6.0, "JitterStrategy": "FULL"}
	if got := caps(r); !slices.Equal(got, []float64{5, 10, 20, 40, 60, 60}) {
		t.Fatalf("caps = %v", got)
	}
	if least, exp, worst := retryWait(r); least != 0 || exp != 97.5 || worst != 195 {
		t.Fatalf("FULL: retryWait = %v, %v, %v; want 0, 97.5, 195", least, exp, worst)
	}
	delete(r, "JitterStrategy")
	if least, exp, worst := retryWait(r); least != 195 || exp != 195 || worst != 195 {
		t.Fatalf("no jitter: retryWait = %v, %v, %v; want 195 each", least, exp, worst)
	}
	if got := caps(map[string]any{}); !slices.Equal(got, []float64{1, 2, 4}) {
		t.Fatalf("defaults: caps = %v, want [1 2 4]", got)
	}
}

// lambdaTasks calls fn for every Task state that invokes a Lambda function directly.
func lambdaTasks(t *testing.T, fn func(name string, s state)) int {
	t.Helper()
	n := 0
	walk(render(t)["States"].(map[string]any), false, func(name string, s state, _ bool) {
		if s["Type"] == "Task" && strings.HasPrefix(s["Resource"].(string), "arn:aws:lambda:") {
			n++
			fn(name, s)
		}
	})
	return n
}

// Issue 8, item 2. After long inactivity Lambda reclaims a VPC function's network interfaces;
// the next invocation fails while they are re-created ("This invocation fails, and the
// function enters a Pending state again until a network interface is available",
// https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html), and Step Functions
// reports it as Lambda.ResourceNotReadyException ("The function is inactive and its VPC
// connection is no longer available. Wait for the VPC connection to reestablish and try
// again", https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html). With a 45-day
// schedule every rotation starts that way, so every Lambda Task retries it, with real pauses.
func TestEveryLambdaTaskRidesOutAnIdleFunction(t *testing.T) {
	const idle = "Lambda.ResourceNotReadyException"
	n := lambdaTasks(t, func(name string, s state) {
		t.Run(name, func(t *testing.T) {
			r := retrierFor(s, idle)
			if r == nil || !slices.Contains(strs(r["ErrorEquals"]), idle) {
				t.Fatalf("no retrier names %s: %v", idle, s["Retry"])
			}
			least, _, worst := retryWait(r)
			if first := caps(r)[0]; first < 5 || r["JitterStrategy"] == "FULL" {
				t.Errorf("first pause %vs (jitter %v): want at least 5 s every time, for the network interface to come back", first, r["JitterStrategy"])
			}
			if num(r, "MaxAttempts", 3) < 3 || least < 60 {
				t.Errorf("%v attempts over %vs: want several attempts over at least a minute", r["MaxAttempts"], least)
			}
			t.Logf("%s: pauses %v, %vs in all", idle, caps(r), worst)
		})
	})
	if n < 9 {
		t.Fatalf("found %d Lambda Tasks, want every one (at least 9)", n)
	}
}

// dbStates are the states whose handlers open database connections (tasks.Preflight, tasks.RetirePrevious,
// CloneUser, SetPassword, TestLogin and CheckReplicas use postgres.PG); Promote and the
// Redeploy Map talk to Secrets Manager and ECS only.
var dbStates = []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateTestLogin, workflow.StateCheckReplicas, workflow.StateRetirePrevious}

// Issue 8, item 3. A Multi-AZ failover takes 60–120 s
// (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.MultiAZ.Failover.html);
// every database state retries DatabaseUnavailable with exponential backoff and full jitter
// (JitterStrategy FULL: each pause random between 0 and the computed backoff,
// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) for at
// least 5 minutes in all, on average and at worst, before it fails.
func TestDatabaseStatesRideOutAFailover(t *testing.T) {
	const minTotal = 300.0
	states := render(t)["States"].(map[string]any)
	for _, name := range dbStates {
		t.Run(name, func(t *testing.T) {
			s := states[name].(map[string]any)
			r := retrierFor(s, "DatabaseUnavailable")
			if r == nil || !slices.Contains(strs(r["ErrorEquals"]), "DatabaseUnavailable") {
				t.Fatalf("no retrier names DatabaseUnavailable: %v", s["Retry"])
			}
			if r["JitterStrategy"] != "FULL" || num(r, "BackoffRate", 2) <= 1 || num(r, "MaxDelaySeconds", 0) <= 0 {
				t.Errorf("retrier %v: want exponential backoff (BackoffRate > 1) capped by MaxDelaySeconds, with FULL jitter", r)
			}
			_, expected, worst := retryWait(r)
			if expected < minTotal || worst < minTotal {
				t.Errorf("DatabaseUnavailable is retried for %.1fs on average, %.1fs at worst: want ≥ %.0fs", expected, worst, minTotal)
			}
			named := strs(asSlice(s["Catch"])[0].(map[string]any)["ErrorEquals"])
			if !slices.Contains(named, "DatabaseUnavailable") {
				t.Errorf("the named Catch %v does not list DatabaseUnavailable", named)
			}
			t.Logf("DatabaseUnavailable: %v attempts, pauses up to %v: %.1fs expected, %.1fs at worst", r["MaxAttempts"], caps(r), expected, worst)
		})
	}
	for name, v := range states {
		if s := v.(map[string]any); !slices.Contains(dbStates, name) && s["Type"] == "Task" {
			if r := retrierFor(s, "DatabaseUnavailable"); r != nil && slices.Contains(strs(r["ErrorEquals"]), "DatabaseUnavailable") {
				t.Errorf("%s retries DatabaseUnavailable but is not in dbStates: keep the list true", name)
			}
		}
	}
}

// Issue 8, item 4. RotationFailed rethrows the caught error under its own name. A caught
// Lambda.* error would then be matched by RotationFailed's retriers for its own invocation
// failures and retried for nothing; Rethrow renames it first. Any other error reaches
// RotationFailed as it was caught.
func TestRethrownLambdaErrorIsNotRetried(t *testing.T) {
	states := render(t)["States"].(map[string]any)
	fail := states["RotationFailed"].(map[string]any)
	rethrow, ok := states["Rethrow"].(map[string]any)
	if !ok || rethrow["Type"] != "Choice" || rethrow["Default"] != "RotationFailed" {
		t.Fatalf("Rethrow = %v, want a Choice that defaults to RotationFailed", rethrow)
	}
	// route follows Rethrow for a caught error name and returns the name RotationFailed gets.
	route := func(caught string) string {
		next := rethrow["Default"].(string)
		for _, c := range asSlice(rethrow["Choices"]) {
			c := c.(map[string]any)
			pattern, _ := c["StringMatches"].(string)
			if c["Variable"] != "$.error.Error" || pattern == "" {
				t.Fatalf("Rethrow choice %v: want StringMatches on $.error.Error", c)
			}
			if ok, _ := filepath.Match(pattern, caught); ok {
				next = c["Next"].(string)
				break
			}
		}
		name := caught
		for next != "RotationFailed" {
			p := states[next].(map[string]any)
			params, _ := p["Parameters"].(map[string]any)
			if p["Type"] != "Pass" || p["ResultPath"] != "$.error" || params["Error"] == nil || params["Cause.$"] == nil {
				t.Fatalf("%s = %v, want a Pass that sets $.error's Error and Cause", next, p)
			}
			name = params["Error"].(string)
			next = p["Next"].(string)
		}
		return name
	}
	var retried []string
	for _, r := range retriers(fail) {
		retried = append(retried, strs(r["ErrorEquals"])...)
	}
	if !slices.Contains(retried, "Lambda.ServiceException") || !slices.Contains(retried, "Lambda.ResourceNotReadyException") {
		t.Fatalf("RotationFailed retries %v: its own invocation must be retried", retried)
	}
	caught := append(slices.Clone(retried), "Lambda.Unknown", "DatabaseUnavailable", "PrivilegeMismatch", "States.Timeout")
	for _, name := range caught {
		got := route(name)
		if r := retrierFor(fail, got); r != nil {
			t.Errorf("caught %s reaches RotationFailed as %s, which its retrier %v would retry", name, got, r["ErrorEquals"])
		}
		if !strings.HasPrefix(name, "Lambda.") && got != name {
			t.Errorf("caught %s reaches RotationFailed renamed %s: only Lambda.* errors are renamed", name, got)
		}
	}
}

func TestTaskRetriesAndCatches(t *testing.T) {
	def := render(t)
	states := def["States"].(map[string]any)
	var tasks int
	walk(states, false, func(name string, s state, nested bool) {
		typ := s["Type"].(string)
		if typ != "Task" && typ != "Map" {
			return
		}
		t.Run(name, func(t *testing.T) {
			if typ == "Task" {
				tasks++
				if n := num(s, "TimeoutSeconds", 0); n <= 0 {
					t.Errorf("no TimeoutSeconds")
				}
			}
			rs := retriers(s)
			if typ == "Task" && name != workflow.StateNotifyFailure {
				if num(s, "TimeoutSeconds", 0) != 120 && name != "RotationFailed" {
					t.Errorf("TimeoutSeconds = %v, want 120", s["TimeoutSeconds"])
				}
				if !strings.HasPrefix(s["Resource"].(string), "arn:aws:lambda:") {
					t.Errorf("Resource %v is not a direct Lambda function ARN", s["Resource"])
				}
				if len(rs) == 0 || !slices.Equal(strs(rs[0]["ErrorEquals"]), lambdaErrors) {
					t.Fatalf("first retrier must be %v, got %v", lambdaErrors, rs)
				}
				r := rs[0]
				if num(r, "IntervalSeconds", 0) != 2 || num(r, "MaxAttempts", 0) != 6 || num(r, "BackoffRate", 0) != 2 || r["JitterStrategy"] != "FULL" {
					t.Errorf("Lambda retrier = %v, want IntervalSeconds 2, MaxAttempts 6, BackoffRate 2, JitterStrategy FULL", r)
				}
			}
			if name == workflow.StateNotifyFailure {
				if s["Resource"] != "arn:aws:states:::sns:publish" {
					t.Errorf("Resource = %v", s["Resource"])
				}
				if len(rs) == 0 || !slices.Contains(strs(rs[0]["ErrorEquals"]), "States.TaskFailed") {
					t.Errorf("NotifyFailure must retry its own failures, got %v", rs)
				}
				catches := asSlice(s["Catch"])
				if len(catches) != 1 {
					t.Fatalf("NotifyFailure Catch = %v", catches)
				}
				c := catches[0].(map[string]any)
				// Rethrow is the Choice in front of RotationFailed (see TestRethrownLambdaErrorIsNotRetried).
				if !slices.Equal(strs(c["ErrorEquals"]), []string{"States.ALL"}) || c["Next"] != "Rethrow" {
					t.Errorf("NotifyFailure must catch States.ALL to Rethrow, got %v", c)
				}
				if c["ResultPath"] == "$.error" {
					t.Errorf("NotifyFailure's catch must not overwrite $.error, the rotation's own error")
				}
				if s["Next"] != "Rethrow" || s["ResultPath"] != nil {
					t.Errorf("NotifyFailure: Next = %v, ResultPath = %v; want Rethrow, null", s["Next"], s["ResultPath"])
				}
				return
			}
			if name == "RotationFailed" {
				// It fails the execution with the caught error: catching would hide it.
				if s["Catch"] != nil {
					t.Errorf("RotationFailed must not catch: %v", s["Catch"])
				}
				return
			}
			if nested {
				// Errors inside the Map propagate to the Map's own Catch.
				if s["Catch"] != nil {
					t.Errorf("a state inside the Map must not catch: %v", s["Catch"])
				}
				return
			}
			catches := asSlice(s["Catch"])
			if len(catches) < 2 {
				t.Fatalf("want a named Catch and a States.ALL Catch, got %v", catches)
			}
			for i, c := range catches {
				c := c.(map[string]any)
				if c["Next"] != "Caught"+name || c["ResultPath"] != "$.error" {
					t.Errorf("Catch[%d] = %v, want Next Caught%s, ResultPath $.error", i, c, name)
				}
			}
			caught := states["Caught"+name].(map[string]any)
			params, _ := caught["Parameters"].(map[string]any)
			if caught["Type"] != "Pass" || caught["Next"] != workflow.StateNotifyFailure || caught["ResultPath"] != "$.failure" ||
				params["state"] != name || params["redriveCount.$"] != "$$.Execution.RedriveCount" {
				t.Errorf("Caught%s = %v, want a Pass recording the state and redrive count in $.failure, then NotifyFailure", name, caught)
			}
			last := catches[len(catches)-1].(map[string]any)
			if !slices.Equal(strs(last["ErrorEquals"]), []string{"States.ALL"}) {
				t.Errorf("last Catch must be States.ALL alone, got %v", last["ErrorEquals"])
			}
			for _, n := range strs(catches[0].(map[string]any)["ErrorEquals"]) {
				if strings.HasPrefix(n, "States.") {
					t.Errorf("first Catch must list named errors only, got %s", n)
				}
			}
		})
	})
	if tasks < 9 {
		t.Fatalf("found %d Task states, want at least 9", tasks)
	}
}

func TestLagRetriesRideOutAMinute(t *testing.T) {
	states := render(t)["States"].(map[string]any)
	for _, tc := range []struct{ state, err string }{
		{workflow.StateCheckReplicas, "ReplicaNotReady"},
		{workflow.StatePreflight, "PendingUserInUse"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			var found map[string]any
			for _, r := range retriers(states[tc.state].(map[string]any)) {
				if slices.Contains(strs(r["ErrorEquals"]), tc.err) {
					found = r
				}
			}
			if found == nil {
				t.Fatalf("%s does not retry %s", tc.state, tc.err)
			}
			if found["JitterStrategy"] != "FULL" {
				t.Errorf("JitterStrategy = %v, want FULL", found["JitterStrategy"])
			}
			if num(found, "MaxDelaySeconds", 0) <= 0 {
				t.Errorf("no MaxDelaySeconds: backoff would grow without bound")
			}
			if w := expectedRetryWait(found); w < 60 {
				t.Errorf("expected total wait %.1fs under full jitter, want >= 60s", w)
			}
		})
	}
}

func TestFailurePath(t *testing.T) {
	states := render(t)["States"].(map[string]any)
	fail, ok := states["RotationFailed"].(map[string]any)
	if !ok {
		t.Fatal("no RotationFailed state")
	}
	// A Task that rethrows the caught error (see tasks.Rethrow), so a redrive re-runs it and
	// resumes at the failed state; a Fail state would only fail again.
	want := map[string]any{"action": "fail", "error.$": "$.error.Error", "cause.$": "$.error.Cause", "failedState.$": "$.failure.state",
		"failedInRedrive.$": "$.failure.redriveCount", "redriveCount.$": "$$.Execution.RedriveCount"}
	if fail["Type"] != "Task" || fail["Resource"] != testValues()[statemachine.RethrowFunctionArn] || !reflect.DeepEqual(fail["Parameters"], want) ||
		fail["ResultPath"] != nil || fail["Next"] != "ResumeAt" {
		t.Errorf("RotationFailed = %v, want the rethrow function's fail action, then ResumeAt", fail)
	}
	resume := states["ResumeAt"].(map[string]any)
	targets := map[string]bool{}
	for _, c := range asSlice(resume["Choices"]) {
		c := c.(map[string]any)
		if c["Variable"] != "$.failure.state" || c["StringEquals"] != c["Next"] {
			t.Errorf("ResumeAt choice %v must go back to the state it names", c)
		}
		targets[c["Next"].(string)] = true
	}
	for name := range states {
		if _, caught := states["Caught"+name]; caught && !targets[name] {
			t.Errorf("ResumeAt cannot resume at %s", name)
		}
	}
	notify := states[workflow.StateNotifyFailure].(map[string]any)
	params := notify["Parameters"].(map[string]any)
	if params["TopicArn"] != testValues()[statemachine.AlarmTopicArn] {
		t.Errorf("TopicArn = %v", params["TopicArn"])
	}
	if !strings.HasPrefix(params["Message.$"].(string), "States.Format(") {
		t.Errorf("Message.$ = %v", params["Message.$"])
	}
	if def := render(t); def["StartAt"] != workflow.StatePreflight {
		t.Errorf("StartAt = %v", def["StartAt"])
	}
}

func TestErrorNamesMatchWorkflow(t *testing.T) {
	states := render(t)["States"].(map[string]any)
	inASL := map[string]bool{}
	walk(states, false, func(_ string, s state, _ bool) {
		for _, list := range []any{s["Retry"], s["Catch"]} {
			for _, x := range asSlice(list) {
				for _, n := range strs(x.(map[string]any)["ErrorEquals"]) {
					inASL[n] = true
				}
			}
		}
	})
	for n := range inASL {
		if strings.HasPrefix(n, "Lambda.") || strings.HasPrefix(n, "States.") || strings.HasPrefix(n, "SNS.") {
			continue
		}
		if !slices.Contains(workflow.ErrorNames, n) {
			t.Errorf("ASL matches %q, which is not in workflow.ErrorNames", n)
		}
	}
	for _, n := range workflow.ErrorNames {
		if !inASL[n] {
			t.Errorf("workflow.ErrorNames has %q, which no Retry or Catch matches", n)
		}
	}
}

func TestStateNamesMatchWorkflow(t *testing.T) {
	states := render(t)["States"].(map[string]any)
	for _, n := range []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateTestLogin,
		workflow.StateCheckReplicas, workflow.StatePromote, workflow.StateRedeploy, workflow.StateNotifyFailure, workflow.StateRetirePrevious} {
		if _, ok := states[n]; !ok {
			t.Errorf("no state %q", n)
		}
	}
}

func TestNoJSONata(t *testing.T) {
	// aws-local-stepfunctions ignores JSONata silently, so a JSONata state would pass the
	// local tests while meaning something else on AWS.
	for _, bad := range []string{`"QueryLanguage"`, `{%`, `"Arguments"`, `"Output"`, `"Assign"`, `"Items"`} {
		if strings.Contains(statemachine.Definition, bad) {
			t.Errorf("definition contains %s", bad)
		}
	}
}

func TestRender(t *testing.T) {
	t.Run("placeholders are the keys", func(t *testing.T) {
		var got []string
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(statemachine.Definition, -1) {
			if !slices.Contains(got, m[1]) {
				got = append(got, m[1])
			}
		}
		want := slices.Clone(statemachine.Keys())
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("placeholders %v, keys %v", got, want)
		}
	})
	t.Run("substitutes every key", func(t *testing.T) {
		out, err := statemachine.Render(testValues())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "${") {
			t.Fatal("placeholder left after Render")
		}
		for _, v := range testValues() {
			if !strings.Contains(out, `"`+v+`"`) {
				t.Errorf("value %s not in output", v)
			}
		}
	})
	t.Run("escapes values", func(t *testing.T) {
		v := testValues()
		v[statemachine.AlarmTopicArn] = `arn:"quoted"\<x>`
		out, err := statemachine.Render(v)
		if err != nil {
			t.Fatal(err)
		}
		var def struct {
			States map[string]struct{ Parameters map[string]any }
		}
		if err := json.Unmarshal([]byte(out), &def); err != nil {
			t.Fatal(err)
		}
		if got := def.States["NotifyFailure"].Parameters["TopicArn"]; got != v[statemachine.AlarmTopicArn] {
			t.Fatalf("TopicArn = %q", got)
		}
	})
	errCases := []struct {
		name   string
		change func(map[string]string)
		want   string
	}{
		{"missing key", func(v map[string]string) { delete(v, statemachine.CheckReplicasFunctionArn) }, "missing CheckReplicasFunctionArn"},
		{"unknown key", func(v map[string]string) { v["CheckReplicaFunctionArn"] = "arn:x" }, "unknown CheckReplicaFunctionArn"},
		{"empty value", func(v map[string]string) { v[statemachine.AlarmTopicArn] = "" }, "empty AlarmTopicArn"},
		{"nil map", nil, "missing PreflightFunctionArn"},
		{"retirement not a duration", func(v map[string]string) { v[statemachine.RetirePreviousAfter] = "tomorrow" }, "RetirePreviousAfter \"tomorrow\""},
		{"retirement not positive", func(v map[string]string) { v[statemachine.RetirePreviousAfter] = "0s" }, "RetirePreviousAfter \"0s\""},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			var v map[string]string
			if tc.change != nil {
				v = testValues()
				tc.change(v)
			}
			_, err := statemachine.Render(v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
