// Command checkrollout is the Redeploy Map's CheckRollout Lambda: one read of the forced
// deployment's rollout state per invocation.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/tasks"
)

func main() {
	env := lambdaenv.FromOS()
	max := env.Int(spec.EnvRolloutMaxChecks, tasks.DefaultMaxRolloutChecks)
	cfg := lambdaenv.Setup(context.Background(), env)
	h := &tasks.CheckRollout{ECS: ecsservice.New(ecs.NewFromConfig(cfg)), MaxChecks: max}
	lambda.Start(h.Handle)
}
