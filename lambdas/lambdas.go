// Package lambdas builds each Lambda function's handler from its environment and AWS
// clients: the constructors of the registry (lambdas/spec). The mains call Main; local/
// calls the same constructors with its simulated clients, so the proof wires the product's
// handlers the way the deployment does.
package lambdas

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// Clients are the AWS APIs the handlers use: the SDK clients in a Lambda, the local models
// in local/.
type Clients struct {
	SecretsManager secretstore.API
	StepFunctions  rotator.StepFunctions
	ECS            ecsservice.API
	// S3 is the evidence bucket's API (the evidence function only).
	S3 evidence.Objects
}

// Deps is what a constructor builds from: the function's environment, its clients and
// the logger of its handler (nil: slog.Default).
type Deps struct {
	Env     *lambdaenv.Env
	Clients Clients
	Log     *slog.Logger
}

func (d Deps) secrets() *secretstore.Store { return secretstore.New(d.Clients.SecretsManager) }
func (d Deps) ecs() *ecsservice.Services   { return ecsservice.New(d.Clients.ECS) }
func (d Deps) pg() postgres.PG             { return postgres.PG{Options: d.Env.Postgres()} }

// constructors build each function's handler, as a value for lambda.Start.
var constructors = map[string]func(Deps) any{
	spec.Rotator: func(d Deps) any { return NewRotator(d).Handle },
	// One function, two modes: the state machine's State, or the CLI's dry run (tasks.DryRunInput).
	spec.Preflight:     func(d Deps) any { return NewPreflight(d).Invoke },
	spec.CloneUser:     func(d Deps) any { return tasks.NewCloneUser(d.secrets(), d.pg(), d.Log).Handle },
	spec.SetPassword:   func(d Deps) any { return tasks.NewSetPassword(d.secrets(), d.pg(), d.Log).Handle },
	spec.TestLogin:     func(d Deps) any { return tasks.NewTestLogin(d.secrets(), d.pg(), d.Log).Handle },
	spec.CheckReplicas: func(d Deps) any { return (&tasks.CheckReplicas{Secrets: d.secrets(), DB: d.pg(), Log: d.Log}).Handle },
	spec.Redeploy:      func(d Deps) any { return (&tasks.Redeploy{ECS: d.ecs(), Log: d.Log}).Handle },
	spec.CheckRollout: func(d Deps) any {
		return (&tasks.CheckRollout{ECS: d.ecs(), MaxChecks: d.Env.Int(spec.EnvRolloutMaxChecks, tasks.DefaultMaxRolloutChecks), Log: d.Log}).Handle
	},
	spec.RetirePrevious: func(d Deps) any { return tasks.NewRetirePrevious(d.secrets(), d.pg(), d.Log).Handle },
	spec.Rethrow:        func(d Deps) any { return (&tasks.Rethrow{Log: d.Log}).Handle },
	spec.Evidence:       func(d Deps) any { return NewEvidence(d).Handle },
	spec.Bootstrap: func(d Deps) any {
		// CloudFormation invokes it directly; it answers the response URL itself.
		return cfn.LambdaWrap((&tasks.Bootstrap{Secrets: d.secrets(), DB: d.pg(), Log: d.Log}).Handle)
	},
}

// NewRotator builds the rotation function.
func NewRotator(d Deps) *rotator.Rotator {
	return &rotator.Rotator{
		Secrets: d.secrets(),
		SFN:     d.Clients.StepFunctions,
		// The configuration test only describes the services (ecs:DescribeServices).
		ECS: d.ecs(),
		Config: rotator.Config{
			StateMachineARN:   d.Env.Required(spec.EnvStateMachineARN),
			Services:          d.Env.Services(spec.EnvServices),
			PasswordLength:    d.Env.Int(spec.EnvPasswordLength, 32),
			ExcludeCharacters: d.Env.Optional(spec.EnvExcludeCharacters, rotator.DefaultExcludeCharacters),
		},
		Log: d.Log,
	}
}

// NewEvidence builds the evidence function.
func NewEvidence(d Deps) *evidence.Handler {
	return &evidence.Handler{
		Executions:      d.Clients.StepFunctions,
		Objects:         d.Clients.S3,
		StateMachineARN: d.Env.Required(spec.EnvStateMachineARN),
		Bucket:          d.Env.Required(spec.EnvEvidenceBucket),
		Prefix:          d.Env.Optional(spec.EnvEvidencePrefix, ""),
		Version:         d.Env.Optional(spec.EnvVersion, buildVersion()),
		Log:             d.Log,
	}
}

// buildVersion is the module version the binary was built from, "(devel)" for a local build.
func buildVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// NewPreflight builds the Preflight step.
func NewPreflight(d Deps) *tasks.Preflight {
	secrets := d.secrets()
	return &tasks.Preflight{
		Secrets:    secrets,
		Dates:      secrets,
		DB:         d.pg(),
		ECS:        d.ecs(),
		Promotions: &executions.Reader{API: d.Clients.StepFunctions, StateMachineARN: d.Env.Required(spec.EnvStateMachineARN)},
		Replicas:   d.Env.Endpoints(spec.EnvReplicas),
		Log:        d.Log,
	}
}

// Handler builds the handler of the function called name. A configuration problem (a
// missing or malformed variable) is returned, naming the variable.
func Handler(name string, d Deps) (any, error) {
	build, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("no Lambda function %q in the registry", name)
	}
	h := build(d)
	if err := d.Env.Err(); err != nil {
		return nil, err
	}
	return h, nil
}

// Names lists the functions that have a constructor (the registry test compares them with
// lambdas/spec).
func Names() []string {
	out := make([]string, 0, len(constructors))
	for n := range constructors {
		out = append(out, n)
	}
	return out
}

// Main is a Lambda main: the environment, the AWS SDK clients, the handler, lambda.Start.
// It exits the process when the function cannot start.
func Main(name string) {
	env := lambdaenv.FromOS()
	cfg := lambdaenv.Setup(context.Background(), env)
	h, err := Handler(name, Deps{Env: env, Clients: Clients{
		SecretsManager: secretsmanager.NewFromConfig(cfg),
		StepFunctions:  sfn.NewFromConfig(cfg),
		ECS:            ecs.NewFromConfig(cfg),
		S3:             s3.NewFromConfig(cfg),
	}})
	if err != nil {
		lambdaenv.Exit(err)
	}
	lambda.Start(h)
}
