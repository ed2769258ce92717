// Package statemachine holds the rotation state machine: rotation.asl.json, in the Amazon
// States Language (JSONPath, the default query language), is the single source of truth.
// The CDK app deploys it with DefinitionSubstitutions; local mode and the tests render it
// with Render and run it in aws-local-stepfunctions.
//
// Every Task names a Lambda function ARN directly (not arn:aws:states:::lambda:invoke), so
// the error name Step Functions matches in Retry and Catch is the errorType the Go runtime
// reports: the Go type name of the error a handler returns (see the workflow package).
//
// What the retries rely on (the tests compute each retrier's total from its fields):
//   - Lambda service errors are named "Lambda.<ErrorName>"
//     (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
//     An idle VPC function meets Lambda.ResourceNotReadyException on its next invocation while
//     Lambda re-creates its network interfaces
//     (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html,
//     https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): every Lambda Task
//     retries it with real pauses (10 s, doubling to 60 s, no jitter).
//   - A retrier pauses IntervalSeconds × BackoffRate^n, capped by MaxDelaySeconds, for at most
//     MaxAttempts retries; JitterStrategy FULL draws each pause between 0 and that
//     (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
//   - A Multi-AZ failover typically takes 60–120 s
//     (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.MultiAZ.Failover.html):
//     every database state retries DatabaseUnavailable for 367 s on average, 735 s at most.
package statemachine

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Definition is rotation.asl.json as written, with ${Key} placeholders.
//
//go:embed rotation.asl.json
var Definition string

// Substitution keys of Definition: CloudFormation DefinitionSubstitutions use the same names.
const (
	PreflightFunctionArn     = "PreflightFunctionArn"
	CloneUserFunctionArn     = "CloneUserFunctionArn"
	SetPasswordFunctionArn   = "SetPasswordFunctionArn"
	TestLoginFunctionArn     = "TestLoginFunctionArn"
	CheckReplicasFunctionArn = "CheckReplicasFunctionArn"
	RotationFunctionArn      = "RotationFunctionArn"
	RedeployFunctionArn      = "RedeployFunctionArn"
	CheckRolloutFunctionArn  = "CheckRolloutFunctionArn"
	RethrowFunctionArn       = "RethrowFunctionArn"
	AlarmTopicArn            = "AlarmTopicArn"
	// RetirePreviousFunctionArn runs RetirePrevious, which the state machine enters only
	// when RetirePreviousAfter is not RetireOff.
	RetirePreviousFunctionArn = "RetirePreviousFunctionArn"
	// RetirePreviousAfter is the grace after which the previous user's password expires, a
	// positive Go duration ("24h0m0s"), or RetireOff.
	RetirePreviousAfter = "RetirePreviousAfter"
)

// RetireOff is the RetirePreviousAfter value that turns retirement off.
const RetireOff = "off"

// Keys returns every substitution key of Definition, in a fixed order.
func Keys() []string {
	return []string{
		PreflightFunctionArn,
		CloneUserFunctionArn,
		SetPasswordFunctionArn,
		TestLoginFunctionArn,
		CheckReplicasFunctionArn,
		RotationFunctionArn,
		RedeployFunctionArn,
		CheckRolloutFunctionArn,
		RethrowFunctionArn,
		AlarmTopicArn,
		RetirePreviousFunctionArn,
		RetirePreviousAfter,
	}
}

// placeholder matches ${Key} as CloudFormation's DefinitionSubstitutions do.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Render substitutes every ${Key} of Definition. values must hold exactly the keys of Keys,
// each non-empty: a missing key would leave a placeholder Step Functions rejects, and an
// unknown one is most likely a typo. Values are JSON-escaped, so the result is valid JSON
// whatever they hold.
func Render(values map[string]string) (string, error) {
	problems := keyProblems(values)
	if len(problems) > 0 {
		return "", fmt.Errorf("render state machine: substitution keys: %s", strings.Join(problems, "; "))
	}

	var renderErr error
	out := placeholder.ReplaceAllStringFunc(Definition, func(m string) string {
		key := placeholder.FindStringSubmatch(m)[1]
		v, ok := values[key]
		if !ok {
			// Definition names a key Keys does not list: a bug in this package.
			renderErr = fmt.Errorf("render state machine: placeholder ${%s} is not a known key", key)
			return m
		}
		return jsonStringBody(v)
	})
	if renderErr != nil {
		return "", renderErr
	}
	if !json.Valid([]byte(out)) {
		return "", fmt.Errorf("render state machine: result is not valid JSON")
	}
	return out, nil
}

// keyProblems lists what is wrong with the substitution values: missing, empty and unknown
// keys, and a RetirePreviousAfter that is neither off nor a positive duration.
func keyProblems(values map[string]string) []string {
	var missing, unknown, empty []string
	for _, k := range Keys() {
		v, ok := values[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case v == "":
			empty = append(empty, k)
		}
	}
	for k := range values {
		if !slices.Contains(Keys(), k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
	}
	if len(empty) > 0 {
		problems = append(problems, "empty "+strings.Join(empty, ", "))
	}
	if len(unknown) > 0 {
		problems = append(problems, "unknown "+strings.Join(unknown, ", "))
	}
	if v, ok := values[RetirePreviousAfter]; ok && v != "" && v != RetireOff {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			problems = append(problems, fmt.Sprintf("%s %q is neither %q nor a positive Go duration", RetirePreviousAfter, v, RetireOff))
		}
	}
	return problems
}

// jsonStringBody returns s escaped for use inside a JSON string literal.
func jsonStringBody(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	q := strings.TrimSuffix(b.String(), "\n")
	return q[1 : len(q)-1]
}
