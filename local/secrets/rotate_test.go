package localsecrets

import (
	"context"
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

const fnARN = "arn:aws:lambda:local:000000000000:function:rotator"

// Misconfigured is a named error a rotation function returns.
type Misconfigured struct{ What string }

func (e *Misconfigured) Error() string { return "misconfigured: " + e.What }

// seenStep is what the rotation function saw during one invocation.
type seenStep struct {
	ev      RotationEvent
	stages  map[string][]string
	pending string // the value of the version being rotated to, read during the call
}

// recordingFunction records each invocation and answers with fail(step).
type recordingFunction struct {
	t    *testing.T
	s    *Store
	mu   sync.Mutex
	seen []seenStep
	fail func(step string) error
}

func (f *recordingFunction) invoke(ctx context.Context, ev RotationEvent) error {
	out, err := f.s.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretID), VersionId: aws.String(ev.ClientRequestToken)})
	var val string
	if err == nil {
		val = aws.ToString(out.SecretString)
	}
	st := stages(f.t, f.s)
	f.mu.Lock()
	f.seen = append(f.seen, seenStep{ev: ev, stages: st, pending: val})
	f.mu.Unlock()
	if f.fail != nil {
		return f.fail(ev.Step)
	}
	return nil
}

func TestRotateSecretConfigurationTest(t *testing.T) {
	tests := []struct {
		name     string
		fail     func(step string) error
		wantType string
	}{
		{"passes", nil, ""},
		{"fails with the function's named error", func(string) error { return &Misconfigured{"no state machine"} }, "Misconfigured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, arn := newSecret(t)
			fn := &recordingFunction{t: t, s: s, fail: tc.fail}
			s.RegisterFunction(fnARN, fn.invoke)
			_, err := s.RotateSecret(testctx.Context(t), &secretsmanager.RotateSecretInput{
				SecretId: aws.String(arn), RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false),
				RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(15)},
			})
			var failed *RotationFunctionFailed
			switch {
			case tc.wantType == "" && err != nil:
				t.Fatalf("RotateSecret: %v", err)
			case tc.wantType != "" && (!errors.As(err, &failed) || failed.ErrorType != tc.wantType || failed.Step != StepTest || failed.ErrorMessage != "misconfigured: no state machine"):
				t.Fatalf("RotateSecret error %v, want a RotationFunctionFailed of testSecret with %s", err, tc.wantType)
			}
			// testSecret alone ran, on an AWSPENDING version Secrets Manager created.
			if len(fn.seen) != 1 || fn.seen[0].ev.Step != StepTest {
				t.Fatalf("invocations: %+v, want one testSecret", fn.seen)
			}
			got := fn.seen[0]
			if got.ev.SecretID != arn || got.ev.ClientRequestToken == tok(1) || len(got.ev.RotationToken) < 36 {
				t.Errorf("event %+v", got.ev)
			}
			if !slices.Equal(got.stages[got.ev.ClientRequestToken], []string{StagePending}) || got.pending != `{"password":"v1"}` {
				t.Errorf("during the test: stages %v, value %q", got.stages, got.pending)
			}
			// And then removed it: AWSCURRENT alone, unchanged.
			wantStages(t, s, map[string][]string{tok(1): {StageCurrent}})
			d, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
			if err != nil {
				t.Fatal(err)
			}
			if !aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != fnARN || d.RotationRules == nil || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 15 {
				t.Errorf("rotation configuration: %+v", d)
			}
			if n := len(s.CallsOf(OpPutSecretValue)); n != 0 {
				t.Errorf("%d PutSecretValue calls", n)
			}
		})
	}
}

func TestRotateSecretImmediately(t *testing.T) {
	s, arn := newSecret(t)
	fn := &recordingFunction{t: t, s: s}
	s.RegisterFunction(fnARN, fn.invoke)
	out, err := s.RotateSecret(testctx.Context(t), &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String(tok(2))})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitRotations()
	var steps []string
	for _, st := range fn.seen {
		steps = append(steps, st.ev.Step)
		if st.ev.ClientRequestToken != tok(2) {
			t.Errorf("%s for version %s, want %s", st.ev.Step, st.ev.ClientRequestToken, tok(2))
		}
	}
	if !slices.Equal(steps, []string{StepCreate, StepSet, StepTest, StepFinish}) || aws.ToString(out.VersionId) != tok(2) {
		t.Errorf("steps %v, version %s", steps, aws.ToString(out.VersionId))
	}
}

func TestRotateSecretRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Store)
		in    secretsmanager.RotateSecretInput
		want  string
	}{
		{"no rotation function", nil, secretsmanager.RotateSecretInput{RotateImmediately: aws.Bool(false)}, "InvalidRequestException"},
		{"a rotation in progress", func(t *testing.T, s *Store) { put(t, s, tok(2), `{"password":"v2"}`, StagePending) },
			secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false)}, "InvalidRequestException"},
		{"bad schedule", nil, secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(0)}}, "InvalidParameterException"},
		{"short token", nil, secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String("short")}, "InvalidParameterException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, arn := newSecret(t)
			fn := &recordingFunction{t: t, s: s}
			s.RegisterFunction(fnARN, fn.invoke)
			if tc.setup != nil {
				tc.setup(t, s)
			}
			before := stages(t, s)
			in := tc.in
			in.SecretId = aws.String(arn)
			_, err := s.RotateSecret(testctx.Context(t), &in)
			s.WaitRotations()
			if code := errorCode(err); code != tc.want {
				t.Fatalf("error %v (code %q), want %s", err, code, tc.want)
			}
			if len(fn.seen) != 0 {
				t.Errorf("the function ran: %+v", fn.seen)
			}
			wantStages(t, s, before)
		})
	}
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
