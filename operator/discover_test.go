package operator

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/lambdas/spec"
)

const rotatorARN = "arn:aws:lambda:eu-west-1:123456789012:function:rotator"

type fakeSecrets struct{ rotationFn string }

func (f fakeSecrets) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if aws.ToString(in.SecretId) != "app" {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("not found")}
	}
	out := &secretsmanager.DescribeSecretOutput{ARN: aws.String(secret), Name: aws.String("app"), RotationEnabled: aws.Bool(true),
		RotationRules:      &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(15), Duration: aws.String("2h")},
		VersionIdsToStages: map[string][]string{current: {"AWSCURRENT"}}}
	if f.rotationFn != "" {
		out.RotationLambdaARN = aws.String(f.rotationFn)
	}
	return out, nil
}

type fakeFunctions struct {
	tags  map[string]string
	calls int
}

func (f *fakeFunctions) GetFunction(_ context.Context, in *lambda.GetFunctionInput, _ ...func(*lambda.Options)) (*lambda.GetFunctionOutput, error) {
	f.calls++
	if aws.ToString(in.FunctionName) != rotatorARN {
		return nil, &lambdatypes.ResourceNotFoundException{Message: aws.String("Function not found")}
	}
	return &lambda.GetFunctionOutput{Tags: f.tags}, nil
}

// Discovery needs the secret alone; each flag overrides its discovered value, and a part
// that cannot be found names the flag that gives it.
func TestDiscover(t *testing.T) {
	all := map[string]string{spec.TagStateMachine: machine, spec.TagPreflightFunction: "preflight-arn", spec.TagEvidenceBucket: "bucket", spec.TagEvidencePrefix: "p/"}
	empty := ""
	tests := []struct {
		name      string
		secret    string
		fn        string
		tags      map[string]string
		o         Overrides
		want      Deployment
		wantCalls int
		err       func(error) bool
	}{
		{name: "all from the tags", secret: "app", fn: rotatorARN, tags: all, wantCalls: 1,
			want: Deployment{StateMachine: machine, PreflightFunction: "preflight-arn", EvidenceBucket: "bucket", EvidencePrefix: "p/"}},
		{name: "flags win", secret: "app", fn: rotatorARN, tags: all, wantCalls: 1, o: Overrides{StateMachine: "sm2", Prefix: &empty},
			want: Deployment{StateMachine: "sm2", PreflightFunction: "preflight-arn", EvidenceBucket: "bucket"}},
		{name: "every flag: no GetFunction", secret: "app", o: Overrides{StateMachine: "sm2", PreflightFunction: "pf", Bucket: "b", Prefix: &empty},
			want: Deployment{StateMachine: "sm2", PreflightFunction: "pf", EvidenceBucket: "b"}},
		{name: "unknown secret", secret: "nope", err: func(err error) bool { var e *SecretNotFound; return errors.As(err, &e) }},
		{name: "no rotation function", secret: "app", err: notDiscovered("--state-machine")},
		{name: "the rotation function is gone", secret: "app", fn: rotatorARN + "-gone", err: notDiscovered("--state-machine"), wantCalls: 1},
		{name: "untagged rotation function", secret: "app", fn: rotatorARN, tags: map[string]string{}, err: notDiscovered("--state-machine"), wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fns := &fakeFunctions{tags: tt.tags}
			d, err := Discover(context.Background(), fakeSecrets{rotationFn: tt.fn}, fns, tt.secret, tt.o)
			if fns.calls != tt.wantCalls {
				t.Errorf("GetFunction called %d times, want %d", fns.calls, tt.wantCalls)
			}
			if tt.err != nil {
				if !tt.err(err) {
					t.Errorf("Discover error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := Deployment{StateMachine: d.StateMachine, PreflightFunction: d.PreflightFunction, EvidenceBucket: d.EvidenceBucket, EvidencePrefix: d.EvidencePrefix}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("discovered %+v, want %+v", got, tt.want)
			}
			if d.SecretARN != secret || d.Schedule != "every 15 days, within 2h" || !d.RotationEnabled || len(d.Versions) != 1 {
				t.Errorf("deployment %+v", d)
			}
		})
	}
	t.Run("status needs the Preflight function", func(t *testing.T) {
		_, err := GetStatus(context.Background(), StatusClients{}, &Deployment{StateMachine: machine})
		if !notDiscovered("--preflight-function")(err) {
			t.Errorf("GetStatus without a Preflight function: %v", err)
		}
	})
}

func notDiscovered(flag string) func(error) bool {
	return func(err error) bool { var e *NotDiscovered; return errors.As(err, &e) && e.Flag == flag }
}
