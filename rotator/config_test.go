package rotator

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/workflow"
)

const rotatorARN = "arn:aws:lambda:local:000000000000:function:pgrotate-rotator"

// registerRotator makes the fixture's Rotator the app secret's rotation function in the local
// Secrets Manager, invoked as Secrets Manager invokes it.
func (f *fixture) registerRotator() {
	f.sm.RegisterFunction(rotatorARN, func(ctx context.Context, ev localsecrets.RotationEvent) error {
		_, err := f.handle(ctx, Event{Step: ev.Step, SecretID: ev.SecretID, ClientRequestToken: ev.ClientRequestToken, RotationToken: workflow.NewPassword(ev.RotationToken)})
		return err
	})
}

// scheduleRotation is what a CloudFormation rotation schedule does: RotateSecret with a
// schedule and RotateImmediately false.
func (f *fixture) scheduleRotation() error {
	_, err := f.sm.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(f.arn), RotationLambdaARN: aws.String(rotatorARN), RotateImmediately: aws.Bool(false),
	})
	return err
}

// TestConfigurationTest: RotateSecret without rotating immediately runs testSecret on an
// AWSPENDING version no execution belongs to; the rotation function checks the
// configuration, changes nothing, and names every problem.
func TestConfigurationTest(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(f *fixture)
		want    []string // parts of the RotationMisconfigured message; none: passes
	}{
		{name: "passes"},
		{
			name:    "state machine missing",
			prepare: func(f *fixture) { f.r.Config.StateMachineARN = machineARN + "-gone" },
			want:    []string{"state machine " + machineARN + "-gone", "StateMachineDoesNotExist"},
		},
		{
			name: "state machine may not be described",
			prepare: func(f *fixture) {
				f.sfn.failOnce("DescribeStateMachine", errors.New("AccessDeniedException: not authorized to perform states:DescribeStateMachine"))
			},
			want: []string{"AccessDeniedException"},
		},
		{
			name:    "express state machine",
			prepare: func(f *fixture) { f.sfn.machineType = types.StateMachineTypeExpress },
			want:    []string{"of type EXPRESS, not STANDARD"},
		},
		{
			name:    "service missing",
			prepare: func(f *fixture) { f.ecs.missing["prod/worker"] = true },
			want:    []string{"service prod/worker", "missing"},
		},
		{
			name: "admin secret names another primary",
			prepare: func(f *fixture) {
				admin := `{"engine":"postgres","host":"other.example.internal","port":5432,"dbname":"postgres","username":"dbadmin","password":"Adm-Pw-2c4e6a8b0d1f3e5a7c9b"}`
				if _, err := f.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(f.adminARN), SecretString: aws.String(admin)}); err != nil {
					f.t.Fatal(err)
				}
			},
			want: []string{"app and admin secrets", "other.example.internal"},
		},
		{
			name: "admin secret unreadable",
			prepare: func(f *fixture) {
				if _, err := f.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(f.adminARN), SecretString: aws.String(`{"engine":"postgres"}`)}); err != nil {
					f.t.Fatal(err)
				}
			},
			want: []string{"admin secret (masterarn)", "invalid admin secret"},
		},
		{
			name: "two problems at once",
			prepare: func(f *fixture) {
				f.ecs.missing["prod/web"] = true
				f.sfn.machineStatus = types.StateMachineStatusDeleting
			},
			want: []string{"service prod/web", "is DELETING, not ACTIVE"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.registerRotator()
			if tc.prepare != nil {
				tc.prepare(f)
			}
			puts := len(f.sm.CallsOf(localsecrets.OpPutSecretValue))
			err := f.scheduleRotation()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("configuration test: %v", err)
				}
			} else {
				var failed *localsecrets.RotationFunctionFailed
				if !errors.As(err, &failed) || failed.ErrorType != "RotationMisconfigured" || failed.Step != StepTest {
					t.Fatalf("configuration test error %v, want testSecret failing with RotationMisconfigured", err)
				}
				wantErrContains(t, errors.New(failed.ErrorMessage), tc.want...)
			}
			// A real check, with no side effect: it described the state machine and the
			// services, started nothing, wrote nothing, and AWSPENDING is gone again.
			if len(f.sfn.callsWith("DescribeStateMachine")) != 1 {
				t.Errorf("DescribeStateMachine calls: %v", f.sfn.callLog())
			}
			if len(f.ecs.checked) != len(f.services) {
				t.Errorf("services checked: %v, want %v", f.ecs.checked, f.services)
			}
			if n := len(f.sfn.callsWith("StartExecution")) + len(f.sfn.callsWith("RedriveExecution")) + len(f.sfn.callsWith("StopExecution")); n != 0 {
				t.Errorf("executions touched: %v", f.sfn.callLog())
			}
			if n := len(f.sm.CallsOf(localsecrets.OpPutSecretValue)) - puts; n != 0 {
				t.Errorf("%d PutSecretValue calls", n)
			}
			if n := len(f.sm.CallsOf(localsecrets.OpUpdateSecretVersionStage)); n != 0 {
				t.Errorf("%d UpdateSecretVersionStage calls", n)
			}
			if v := f.stages(); len(v) != 1 || !v.Has(v1, workflow.StageCurrent) || v.With(workflow.StagePending) != "" {
				t.Errorf("stages after the test = %v, want %s AWSCURRENT alone", v, v1)
			}
		})
	}
}

// TestTestSecretOfARealRotationWithoutExecution: a version createSecret wrote (the alternate
// user) with no execution is not a configuration test: testSecret fails as before.
func TestTestSecretOfARealRotationWithoutExecution(t *testing.T) {
	f := newFixture(t, Config{})
	pending := f.appSecret(v1).Pending(workflow.NewPassword("Pend-Pw-0a1b2c3d4e5f6a7b8c9d"))
	f.putVersion(tok, pending, workflow.StagePending)
	_, err := f.handle(context.Background(), f.event(StepTest, tok))
	wantErrContains(t, err, "no rotation execution for version "+tok)
	if len(f.sfn.callsWith("DescribeStateMachine")) != 0 {
		t.Errorf("the configuration was tested: %v", f.sfn.callLog())
	}
}
