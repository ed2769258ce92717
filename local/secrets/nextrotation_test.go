package localsecrets

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
)

// DescribeSecret's NextRotationDate: null without a rotation schedule, then the
// schedule's days after it was set, then after the last rotation.
func TestDescribeSecretNextRotationDate(t *testing.T) {
	t1 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now := t1
	s, arn := newSecret(t, WithClock(func() time.Time { return now }))
	next := func() *time.Time {
		t.Helper()
		d, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		return d.NextRotationDate
	}
	if n := next(); n != nil {
		t.Errorf("NextRotationDate %v before any rotation schedule, want null", n)
	}
	s.RegisterFunction(fnARN, (&recordingFunction{t: t, s: s}).invoke)
	if _, err := s.RotateSecret(testctx.Context(t), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(15)},
	}); err != nil {
		t.Fatal(err)
	}
	if n, want := next(), t1.AddDate(0, 0, 15); n == nil || !n.Equal(want) {
		t.Errorf("NextRotationDate %v after the schedule was set, want %v", n, want)
	}
	now = t1.Add(72 * time.Hour)
	put(t, s, tok(2), `{"password":"v2"}`, StagePending)
	if _, err := s.UpdateSecretVersionStage(testctx.Context(t), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(arn), VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(tok(2)), RemoveFromVersionId: aws.String(tok(1)),
	}); err != nil {
		t.Fatal(err)
	}
	if n, want := next(), now.AddDate(0, 0, 15); n == nil || !n.Equal(want) {
		t.Errorf("NextRotationDate %v after a rotation, want %v", n, want)
	}
	if err := s.SetRotation(arn, false, fnARN); err != nil {
		t.Fatal(err)
	}
	if n := next(); n != nil {
		t.Errorf("NextRotationDate %v with rotation turned off, want null", n)
	}
}
