package lambdas

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func deps(env map[string]string) Deps {
	return Deps{
		Env: &lambdaenv.Env{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }},
		// Clients that are never called here: no request leaves the test.
		Clients: Clients{
			SecretsManager: secretsmanager.New(secretsmanager.Options{Region: "eu-west-1"}),
			StepFunctions:  sfn.New(sfn.Options{Region: "eu-west-1"}),
			ECS:            ecs.New(ecs.Options{Region: "eu-west-1"}),
		},
	}
}

func TestHandlerBuildsEveryRegisteredFunction(t *testing.T) {
	full := map[string]string{
		spec.EnvStateMachineARN: "arn:aws:states:eu-west-1:123456789012:stateMachine:pgrotate",
		spec.EnvServices:        `[{"cluster":"prod","service":"api"}]`,
		spec.EnvReplicas:        `[{"host":"replica-1","port":5432}]`,
		spec.EnvEvidenceBucket:  "pgrotate-evidence",
	}
	for _, f := range spec.Functions() {
		t.Run(f.Name, func(t *testing.T) {
			h, err := Handler(f.Name, deps(full))
			if err != nil || h == nil {
				t.Fatalf("Handler(%s) = %v, %v", f.Name, h, err)
			}
		})
	}
}

func TestHandlerRefusesABadConfiguration(t *testing.T) {
	tests := []struct {
		name, function string
		env            map[string]string
		want           string
	}{
		{"rotator without its state machine", spec.Rotator, nil, spec.EnvStateMachineARN + " is not set"},
		{"preflight without its state machine", spec.Preflight, nil, spec.EnvStateMachineARN + " is not set"},
		{"preflight with malformed replicas", spec.Preflight,
			map[string]string{spec.EnvStateMachineARN: "arn", spec.EnvReplicas: `{"host":"r"}`}, spec.EnvReplicas},
		{"checkrollout with a bad bound", spec.CheckRollout, map[string]string{spec.EnvRolloutMaxChecks: "-1"}, spec.EnvRolloutMaxChecks},
		{"a function not in the registry", "nosuch", nil, `no Lambda function "nosuch"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Handler(tc.function, deps(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Handler(%s) error = %v, want one naming %q", tc.function, err, tc.want)
			}
		})
	}
}
