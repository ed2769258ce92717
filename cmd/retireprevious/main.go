// Command retireprevious is the RetirePrevious step's Lambda: once every service's redeploy
// completed, it makes the AWSPREVIOUS user's password expire after the grace the state
// machine passes (opt-in retirement).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/tasks/postgres"
	"github.com/pgrotate/pgrotate/tasks/secretstore"
)

func main() {
	env := lambdaenv.FromOS()
	pg := postgres.PG{Options: env.Postgres()}
	cfg := lambdaenv.Setup(context.Background(), env)
	h := &tasks.RetirePrevious{Secrets: secretstore.New(secretsmanager.NewFromConfig(cfg)), DB: pg}
	lambda.Start(h.Handle)
}
