// Command rotator is the Secrets Manager rotation function of pgrotate (and the state
// machine's Promote target): the only writer of the app secret.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/rotator"
)

func main() {
	env := lambdaenv.FromOS()
	conf := rotator.Config{
		StateMachineARN:   env.Required(spec.EnvStateMachineARN),
		Services:          env.Services(spec.EnvServices),
		PasswordLength:    env.Int(spec.EnvPasswordLength, 32),
		ExcludeCharacters: env.Optional(spec.EnvExcludeCharacters, rotator.DefaultExcludeCharacters),
	}
	cfg := lambdaenv.Setup(context.Background(), env)
	r := &rotator.Rotator{
		Secrets: secretstore.New(secretsmanager.NewFromConfig(cfg)),
		SFN:     sfn.NewFromConfig(cfg),
		// The configuration test only describes the services (ecs:DescribeServices).
		ECS:    ecsservice.New(ecs.NewFromConfig(cfg)),
		Config: conf,
	}
	lambda.Start(r.Handle)
}
