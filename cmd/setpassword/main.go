// Command setpassword is the SetPassword step's Lambda: it sets the pending user's password
// on the primary as a SCRAM verifier and records the WAL position.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/tasks"
)

func main() {
	env := lambdaenv.FromOS()
	pg := postgres.PG{Options: env.Postgres()}
	cfg := lambdaenv.Setup(context.Background(), env)
	h := &tasks.SetPassword{Secrets: secretstore.New(secretsmanager.NewFromConfig(cfg)), DB: pg}
	lambda.Start(h.Handle)
}
