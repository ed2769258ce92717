// Command bootstrap is the Lambda behind the CloudFormation custom resource that creates the
// first app user of a new deployment from the app secret (see tasks.Bootstrap). cfn.LambdaWrap
// sends the answer to CloudFormation's response URL.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/cfn"
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
	h := &tasks.Bootstrap{Secrets: secretstore.New(secretsmanager.NewFromConfig(cfg)), DB: pg}
	lambda.Start(cfn.LambdaWrap(h.Handle))
}
