// Command redeploy is the Redeploy Map's UpdateService Lambda: it forces a new deployment of
// one ECS service so its tasks relaunch with the promoted secret.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/tasks"
)

func main() {
	cfg := lambdaenv.Setup(context.Background(), lambdaenv.FromOS())
	h := &tasks.Redeploy{ECS: ecsservice.New(ecs.NewFromConfig(cfg))}
	lambda.Start(h.Handle)
}
