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
				if !slices.Equal(strs(c["ErrorEquals"]), []string{"States.ALL"}) || c["Next"] != "RotationFailed" {
					t.Errorf("NotifyFailure must catch States.ALL to RotationFailed, got %v", c)
				}
				if c["ResultPath"] == "$.error" {
					t.Errorf("NotifyFailure's catch must not overwrite $.error, the rotation's own error")
				}
				if s["Next"] != "RotationFailed" || s["ResultPath"] != nil {
					t.Errorf("NotifyFailure: Next = %v, ResultPath = %v; want RotationFailed, null", s["Next"], s["ResultPath"])
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
	// A Task that rethrows the caught error (see rotator.Fail), so a redrive re-runs it and
	// resumes at the failed state; a Fail state would only fail again.
	want := map[string]any{"action": "fail", "error.$": "$.error.Error", "cause.$": "$.error.Cause", "failedState.$": "$.failure.state",
		"failedInRedrive.$": "$.failure.redriveCount", "redriveCount.$": "$$.Execution.RedriveCount"}
	if fail["Type"] != "Task" || fail["Resource"] != testValues()[statemachine.RotationFunctionArn] || !reflect.DeepEqual(fail["Parameters"], want) ||
		fail["ResultPath"] != nil || fail["Next"] != "ResumeAt" {
		t.Errorf("RotationFailed = %v, want the rotation function's fail action, then ResumeAt", fail)
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
