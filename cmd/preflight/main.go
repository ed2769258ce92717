// Command preflight is the Preflight step's Lambda: it validates the rotation and proves
// nobody still holds the pending user's password before anything changes.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/tasks"
)

func main() {
	env := lambdaenv.FromOS()
	pg := postgres.PG{Options: env.Postgres()}
	machine := env.Required(spec.EnvStateMachineARN)
	replicas := env.Endpoints(spec.EnvReplicas)
	cfg := lambdaenv.Setup(context.Background(), env)
	secrets := secretstore.New(secretsmanager.NewFromConfig(cfg))
	h := &tasks.Preflight{
		Secrets:    secrets,
		Dates:      secrets,
		DB:         pg,
		ECS:        ecsservice.New(ecs.NewFromConfig(cfg)),
		Promotions: &executions.Reader{API: sfn.NewFromConfig(cfg), StateMachineARN: machine},
		Replicas:   replicas,
	}
	lambda.Start(h.Handle)
}
